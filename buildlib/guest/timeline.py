"""Where a boot goes: phases from the console's own timestamps.

The guest's clock (printk times, /proc/uptime) starts when the kernel starts running; what comes
before it (QEMU, the firmware, loading and decompressing the kernel) is seen only from the host.
So each console line is stamped with its arrival time on the host, and the guest's events are put
on the host's clock by the smallest lag between a line's arrival and its guest time. The events:
the kernel's own lines (initramfs unpacking, starting /init, powering down; the init prints them from
the kernel log when timing, as `quiet` keeps them off the console) and the init's
`distrokit-timeline: UPTIME PHASE` markers (printed when the command line has `distrokit_timeline=1`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

CMDLINE_FLAG = "distrokit_timeline=1"
_MARKER = re.compile(r"distrokit-timeline: (?P<uptime>\d+(?:\.\d+)?) (?P<phase>\S+)")
_KERNEL_LINE = re.compile(r"^\[\s*(?P<uptime>\d+\.\d+)\] (?P<text>.*)$")
_KERNEL_EVENTS = (
    ("Trying to unpack rootfs image", "kernel: unpack the initramfs"),
    ("Freeing initrd memory", "kernel: after the initramfs"),
    ("Run /init as init process", "kernel: start /init"),
    ("reboot: Power down", "power-off (QEMU exits)"),
    ("reboot: Restarting system", "reboot (QEMU exits)"),
    ("reboot: System halted", "halted"),
)
_INIT_NAMES = {
    "init": "init: give the root its own mount",
    "root-mounted": "init: mount the kernel file systems",
    "kernel-fs": "init: load modules",
    "modules": "init: start rcS",
    "booted": "booted: until shutdown",
    "down": "shutdown: until power-off",
    "services-started": "services: started",
}
BEFORE_KERNEL = "QEMU, firmware, kernel load"
KERNEL_START = "kernel: boot"


@dataclass(frozen=True)
class Phase:
    name: str
    start: float  # seconds since QEMU started, on the host's clock
    seconds: float


@dataclass
class ConsoleClock:
    """Stamps each complete console line with its arrival time (seconds since the clock was made)."""

    started: float = field(default_factory=time.monotonic)
    lines: list[tuple[float, str]] = field(default_factory=list)
    _partial: bytes = b""

    def feed(self, chunk: bytes) -> None:
        now = time.monotonic() - self.started
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        self.lines.extend((now, line.decode(errors="replace").rstrip("\r")) for line in complete)


def events(lines: Iterable[tuple[float, str]]) -> list[tuple[float, float, str]]:
    """(guest uptime, host arrival, event name) for every timed event on the console, each event once."""
    found: dict[str, tuple[float, float, str]] = {}
    for arrival, line in lines:
        marker = _MARKER.search(line)
        if marker:
            phase = marker["phase"]
            name = _INIT_NAMES.get(phase, phase)
            found.setdefault(name, (float(marker["uptime"]), arrival, name))
            continue
        kernel = _KERNEL_LINE.match(line.strip())
        if kernel:
            for needle, name in _KERNEL_EVENTS:
                if needle in kernel["text"]:
                    found.setdefault(name, (float(kernel["uptime"]), arrival, name))
    # The clocks differ by their resolution (/proc/uptime has 10 ms): the end of the machine is last.
    last = max((uptime for uptime, _, _ in found.values()), default=0.0)
    ends = {name for _, name in _KERNEL_EVENTS[3:]}
    return sorted((last if name in ends else uptime, arrival, name) for uptime, arrival, name in found.values())


def phases(lines: Iterable[tuple[float, str]], total: float) -> list[Phase]:
    """The boot as consecutive phases from QEMU's start to its exit (`total` seconds, host clock)."""
    timed = events(lines)
    if not timed:
        return [Phase("boot (no timeline markers: is the init distrokit's?)", 0.0, total)]
    # A line arrives after it is printed: the smallest lag is the best guess of the guest clock's zero.
    zero = max(0.0, min(arrival - uptime for uptime, arrival, _ in timed))
    starts = [(0.0, BEFORE_KERNEL), (zero, KERNEL_START)] + [(zero + uptime, name) for uptime, _, name in timed]
    ends = [start for start, _ in starts[1:]] + [max(total, starts[-1][0])]
    return [Phase(name, start, end - start) for (start, name), end in zip(starts, ends, strict=True)]
