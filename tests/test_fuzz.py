"""Property tests with a bounded number of examples (benchmarks/fuzz.py runs many more): the spec and
label parsers, the layer indexer and merge, and the cpio and tar writers."""

from __future__ import annotations

from fuzzkit import (
    check_label_parser,
    check_layers_merge,
    check_spec_parser,
    check_writers_round_trip,
    label_text,
    layer_stack,
    spec_text,
    writer_tree,
)
from hypothesis import HealthCheck, given, settings

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@QUICK
@given(spec_text)
def test_the_spec_parser_fails_only_with_our_errors(text: str) -> None:
    check_spec_parser(text)


@QUICK
@given(label_text)
def test_the_label_parser_fails_only_with_our_errors(text: str) -> None:
    check_label_parser(text)


@SLOW
@given(layer_stack())
def test_random_layers_never_land_outside_the_root(stack) -> None:
    check_layers_merge(stack)


@SLOW
@given(writer_tree())
def test_cpio_and_tar_read_back_through_gnu_tools(tree) -> None:
    check_writers_round_trip(tree)
