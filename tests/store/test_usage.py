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
