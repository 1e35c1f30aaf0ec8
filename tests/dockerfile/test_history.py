"""An image's history completed for layers its base recorded none for (see buildlib.dockerfile.history)."""

from __future__ import annotations

from buildlib.dockerfile.history import UNRECORDED, complete_history


def test_layers_without_history_get_entries_first() -> None:
    config = {
        "rootfs": {"diff_ids": ["sha256:a", "sha256:b"]},
        "history": [{"created_by": "ARG X", "empty_layer": True}, {"created_by": "RUN x"}],
    }
    fixed = complete_history(config, "1970-01-01T00:00:00Z")
    assert [entry["created_by"] for entry in fixed["history"]] == [UNRECORDED, "ARG X", "RUN x"]


def test_a_complete_history_is_left_as_it_is() -> None:
    config = {"rootfs": {"diff_ids": ["sha256:a"]}, "history": [{"created_by": "RUN x"}]}
    assert complete_history(config, "1970-01-01T00:00:00Z") is config
