"""buildlib.store.usage: records filed per spec build state; an old record filed under the name alone goes."""

from __future__ import annotations

import json
from pathlib import Path

from buildlib.store.usage import UsageRecord, read_usages, usage_path, write_usage


def record(spec: str, state: str, files: tuple[str, ...]) -> UsageRecord:
    return UsageRecord(spec, files, (), (), (), (), 1.0, state)


def test_two_states_of_one_name_keep_two_records(tmp_path: Path) -> None:
    write_usage(tmp_path, record("hello", "hello@a", ("/a/hello.yml",)), [])
    write_usage(tmp_path, record("hello", "hello@b", ("/b/hello.yml",)), [])
    assert sorted(r.state_id for _, r in read_usages(tmp_path)) == ["hello@a", "hello@b"]


def test_a_version_1_record_of_the_same_files_is_replaced(tmp_path: Path) -> None:
    legacy = usage_path(tmp_path, "hello")
    legacy.parent.mkdir()
    old = record("hello", "", ("/a/hello.yml",)).to_json()
    del old["state"]
    old["version"] = 1
    legacy.write_text(json.dumps(old))
    other = usage_path(tmp_path, "other")
    other.write_text(json.dumps({**old, "spec": "other", "spec_files": ["/b/other.yml"]}))
    assert [r.state_id for _, r in read_usages(tmp_path)] == ["hello", "other"]
    write_usage(tmp_path, record("hello", "hello@a", ("/a/hello.yml",)), [])
    assert not legacy.exists() and other.exists()
    assert sorted(r.state_id for _, r in read_usages(tmp_path)) == ["hello@a", "other"]


def test_an_empty_record_left_by_a_power_cut_is_no_record(tmp_path: Path) -> None:
    """Records are written without an fsync of their own (after the outputs, see write_usage): a power
    cut may leave one empty; gc and `cache ls` read that as none rather than failing."""
    write_usage(tmp_path, record("web", "web@a", ("/a/web.yml",)), [])
    usage_path(tmp_path, "db@b").write_bytes(b"")
    assert [r.state_id for _, r in read_usages(tmp_path)] == ["web@a"]
    leftovers = [path.name for path in usage_path(tmp_path, "x").parent.iterdir() if path.name.endswith(".tmp")]
    assert leftovers == []
