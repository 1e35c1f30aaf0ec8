"""The init component's shell helpers, run with the host's busybox: json-flat reads runtime.json and
config.json as the guest does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import COMPONENTS

LIBEXEC = COMPONENTS / "init" / "libexec"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DISTROKIT_LIBEXEC": str(LIBEXEC)}
pytestmark = pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox-static")


def flat(value: object, tmp_path: Path) -> list[str]:
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(value, indent=1))
    done = subprocess.run(["busybox", "awk", "-f", str(LIBEXEC / "json-flat"), str(source)], capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode().splitlines()


def test_json_flat_paths_and_values(tmp_path: Path) -> None:
    runtime = {
        "mounts": [{"destination": "/a b", "options": ["rbind", "ro"]}],
        "mkdir": ['q"uote', "back\\slash"],
        "interfaces": [{"name": "eth1", "createInRoot": True}],
        "bindNS": {"net": "/run/netns/x", "pid": ""},
        "empty": [],
        "nothing": {},
        "number": -1.5,
    }
    assert flat(runtime, tmp_path) == [
        "mounts.0.destination\t/a b",
        "mounts.0.options.0\trbind",
        "mounts.0.options.1\tro",
        'mkdir.0\tq"uote',
        "mkdir.1\tback\\slash",
        "interfaces.0.name\teth1",
        "interfaces.0.createInRoot\ttrue",
        "bindNS.net\t/run/netns/x",
        "bindNS.pid\t",
        "number\t-1.5",
    ]


def test_helpers_read_items_and_counts(tmp_path: Path) -> None:
    source = tmp_path / "runtime.json"
    source.write_text(json.dumps({"mounts": [{"type": "tmpfs"}, {"options": ["a", "b"]}], "mkdir": ["/x", "/y"]}))
    script = f"""
      . {LIBEXEC}/containers.sh
      runtime=$(flat {source})
      options=$(items "$runtime" mounts.1.options | paste -s -d, -)
      echo "$(count "$runtime" mounts) $(field "$runtime" mounts.0.type) $options"
      items "$runtime" mkdir
    """
    done = subprocess.run(
        ["busybox", "sh", "-c", script], capture_output=True, env=ENV | {"DISTROKIT_STATE": str(tmp_path)}
    )
    assert done.stdout.decode().splitlines() == ["2 tmpfs a,b", "/x", "/y"]
