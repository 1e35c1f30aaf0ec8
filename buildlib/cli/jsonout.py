"""`--json`: one JSON document on stdout per command, in the stable shapes docs/json.md describes.

Every document has `version` (JSON_VERSION: bumped only when a field changes meaning or goes away;
new fields may appear) and `command`. An error is a document too: `{"version", "command", "error":
{"message", "exit_code"}}`, besides the usual one line on stderr. Sizes are bytes, times seconds,
timestamps Unix seconds (UTC), paths absolute.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # kept out of the import of every command: `cache ls --json` needs no doit
    from ..tasks import BuildReport
    from ..tasks.explain import Explanation
    from ..upkeep import cache

JSON_VERSION = 1


def add_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="print one JSON document on stdout (docs/json.md)")


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def emit(command: str, body: dict[str, Any]) -> None:
    document = {"version": JSON_VERSION, "command": command, **body}
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def command_name(args: argparse.Namespace) -> str:
    parts = [args.command, getattr(args, "cache_command", None) or getattr(args, "pkg_command", None)]
    return " ".join(part for part in parts if part)


def error(args: argparse.Namespace, message: str, exit_code: int) -> None:
    emit(command_name(args), {"error": {"message": message, "exit_code": exit_code}})


# shapes ---------------------------------------------------------------------------------------
def build(
    name: str, out_dir: Path, formats: Sequence[str], report: BuildReport, warnings: Sequence[str]
) -> dict[str, Any]:
    fetched = set(report.fetched)
    ran = [task for task in report.executed if task not in fetched]
    return {
        "name": name,
        "outputs": output_files(out_dir / name, formats),
        "tasks": {"ran": ran, "fetched": list(report.fetched), "up_to_date": list(report.up_to_date)},
        "counts": {"ran": len(ran), "fetched": len(fetched), "up_to_date": len(report.up_to_date)},
        "timings": {
            "total_seconds": report.total_seconds,
            "tasks": {k: round(v, 3) for k, v in report.seconds.items()},
        },
        "warnings": list(warnings),
    }


def output_files(prefix: Path, formats: Sequence[str]) -> list[dict[str, Any]]:
    from .. import outputs
    from ..fsutil import sha256_file

    files = []
    for name in formats:
        for path in outputs.get_format(name).targets(prefix):
            if path.is_file():
                files.append(
                    {
                        "format": name,
                        "path": str(path),
                        "size": path.stat().st_size,
                        "sha256": sha256_file(path).partition(":")[2],
                    }
                )
    return files


def explanations(items: Iterable[Explanation]) -> dict[str, Any]:
    return {"tasks": [{"task": item.task, "status": item.status, "reasons": list(item.reasons)} for item in items]}


def image_rows(rows: Iterable[cache.ImageRow]) -> dict[str, Any]:
    return {
        "images": [
            {
                "name": row.name,
                "digest": row.digest,
                "size": row.size,
                "complete": row.complete,
                "last_used": row.last_used,
                "used_by": list(row.used_by),
            }
            for row in rows
        ]
    }


def disk_usage(usage: cache.DiskUsage) -> dict[str, Any]:
    areas = [{"area": area.area, "files": area.files, "size": area.size} for area in usage.areas]
    return {"areas": areas, "total": {"files": sum(area.files for area in usage.areas), "size": usage.total}}
