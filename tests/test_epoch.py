"""buildlib.epoch: SOURCE_DATE_EPOCH or a fixed epoch, never the clock."""

from __future__ import annotations

import pytest

from buildlib.epoch import FIXED_EPOCH, build_epoch
from buildlib.errors import BadInput


def test_without_source_date_epoch_the_fixed_epoch():
    assert build_epoch({}) == FIXED_EPOCH
    assert build_epoch({"SOURCE_DATE_EPOCH": " "}) == FIXED_EPOCH


def test_source_date_epoch_is_taken():
    assert build_epoch({"SOURCE_DATE_EPOCH": "1700000000"}) == 1700000000


@pytest.mark.parametrize("text", ["yesterday", "-5", "1.5"])
def test_a_bad_source_date_epoch_is_bad_input(text):
    with pytest.raises(BadInput, match="SOURCE_DATE_EPOCH"):
        build_epoch({"SOURCE_DATE_EPOCH": text})
