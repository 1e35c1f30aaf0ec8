"""The one timestamp distrokit writes into what it generates.

reproducible-builds.org's SOURCE_DATE_EPOCH when it is set, else a fixed epoch (0): never the clock, so
the same inputs give the same bytes on any day. Every writer that stamps a generated file, folder, ISO
or FAT entry takes its time from here, and a task whose output carries it keys on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from .errors import BadInput

FIXED_EPOCH = 0


def iso_time(seconds: int) -> str:
    """`seconds` as the UTC time stamps documents carry (SPDX's `created`): 1970-01-01T00:00:00Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def build_epoch(environ: Mapping[str, str] | None = None) -> int:
    """Seconds since 1970 for generated timestamps: SOURCE_DATE_EPOCH, or FIXED_EPOCH without it."""
    text = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return FIXED_EPOCH
    if not text.isdigit():
        raise BadInput(f"SOURCE_DATE_EPOCH={text!r} is not a whole number of seconds since 1970: fix or unset it")
    return int(text)
