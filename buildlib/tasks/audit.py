"""Audit mode: prove that what doit called up to date really is.

With `DISTROKIT_AUDIT=1` (or `distrokit build --audit`), every part and output task that was up to
date is computed again in a temporary folder and its bytes compared with the ones in the store or the
output folder. A difference means the task's key missed an input: the build fails, naming the task
and the inputs that changed since the task last really ran. To name them, every part and output
writes beside its state a few *probes* when it runs: finer and wider than its key (every spec
section, every image digest, each source's content, mode and owner, SOURCE_DATE_EPOCH), so the
audit can say which of them moved while the key stood still. While the build runs, every action is
watched for reads it did not declare (`reads`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..epoch import build_epoch
from ..errors import AuditError
from ..fsutil import read_json, write_json_atomic, xxh_file, xxh_value
from ..spec.model import Spec
from .identity import public_task_name

AUDIT_ENV = "DISTROKIT_AUDIT"
PROBES_SUFFIX = ".probes.json"


def audit_enabled(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(AUDIT_ENV, "").strip().lower()
    return value not in ("", "0", "no", "false", "off")


def probes_path(state_folder: Path, task_part: str) -> Path:
    return state_folder / f"{task_part}{PROBES_SUFFIX}"


def spec_probes(spec: Spec) -> dict[str, str]:
    """One probe per section of the merged spec, and the epoch generated timestamps take."""
    probes = {f"spec {section}": xxh_value(value) for section, value in spec.to_dict().items()}
    probes["SOURCE_DATE_EPOCH"] = str(build_epoch())
    return probes


def source_probe(path: str) -> str:
    """A source file's content, mode and owner (only its content is read today; the audit watches all)."""
    st = os.stat(path)
    return f"{oct(st.st_mode & 0o7777)} {st.st_uid}:{st.st_gid} {xxh_file(Path(path))}"


def key_probes(inputs: Mapping[str, object]) -> dict[str, str]:
    return {f"key {name}": xxh_value(value) for name, value in inputs.items()}


def write_probes(path: Path, probes: Mapping[str, str]) -> None:
    write_json_atomic(path, dict(probes))


@dataclass(frozen=True, eq=False)
class Recheck:
    """How to audit one task: compute its result again into a folder, and where its current result is."""

    task: str
    current: Callable[[], dict[str, Path]]  # label -> the file the store or output folder holds now
    recompute: Callable[[Path], dict[str, Path]]  # into a temp folder: label -> the file computed now
    probes: Callable[[], dict[str, str]]
    probes_file: Path


def run_recheck(check: Recheck, scratch: Path) -> str | None:
    """None when the task's bytes are what computing it again gives; else what differs and why."""
    current = check.current()
    fresh = check.recompute(scratch)
    differing = [
        label
        for label in sorted(set(current) | set(fresh))
        if label not in current
        or label not in fresh
        or not current[label].is_file()
        or xxh_file(current[label]) != xxh_file(fresh[label])
    ]
    if not differing:
        return None
    saved: dict[str, str] = read_json(check.probes_file) if check.probes_file.is_file() else {}
    now = check.probes()
    moved = [name for name in sorted(set(saved) | set(now)) if saved.get(name) != now.get(name)]
    if not saved:
        why = "no probes were saved when it last ran"
    elif moved:
        why = "inputs its key missed (changed since it last ran): " + ", ".join(moved)
    else:
        why = "no probed input changed: the action reads something neither its key nor the probes name"
    task = public_task_name(check.task)
    return f"audit: {task} was up to date, but computing it again gives other bytes ({', '.join(differing)}); {why}"


def raise_findings(findings: list[str]) -> None:
    if findings:
        raise AuditError("\n".join(findings) + "\nplease report this with the spec and `distrokit explain` output")
