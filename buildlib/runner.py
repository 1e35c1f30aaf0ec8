"""Boot built images in QEMU: command lines, accelerator choice, console, timeouts.

The guest's serial console is streamed to a callback (the CLI prints it); a clean power-off is
success, a kernel panic or a timeout is a BootError that says which.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import machines
from .errors import BadInput, BootError

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
NETWORKING = ("user", "none")
DISK_FORMATS = ("raw", "qcow2")
DEFAULT_DISK_SIZE = "1G"
PANIC_MARKER = b"Kernel panic - not syncing"
# A halted guest (busybox init halts on SIGPWR or SIGUSR1, as LinuxKit's does) never leaves QEMU:
# it is finished all the same, so the run ends there as a power-off would.
HALT_MARKER = b"reboot: System halted"
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Disk:
    """A disk for the guest (LinuxKit's `--disk [file=]path[,size=N][,format=F]`), attached as virtio."""

    path: Path
    size: str = DEFAULT_DISK_SIZE
    format: str = "qcow2"

    @classmethod
    def parse(cls, text: str) -> Disk:
        path, *options = text.split(",")
        path = path.removeprefix("file=")
        if not path:
            raise BadInput(f"--disk {text!r}: give a file, e.g. --disk data.img,size=1G,format=raw")
        values = {"size": DEFAULT_DISK_SIZE, "format": "qcow2"}
        for option in options:
            key, _, value = option.partition("=")
            if key not in values or not value:
                raise BadInput(f"--disk {text!r}: {option!r} is not size=N or format=F")
            values[key] = value
        if values["format"] not in DISK_FORMATS:
            raise BadInput(f"--disk {text!r}: format must be one of {', '.join(DISK_FORMATS)}")
        if not re.fullmatch(r"\d+[KMGT]?", values["size"]):
            raise BadInput(f"--disk {text!r}: size {values['size']!r} is not a number with K, M, G or T")
        return cls(Path(path), values["size"], values["format"])


@dataclass(frozen=True)
class Publish:
    """A host port forwarded to a guest port (`--publish HOST:GUEST[/udp]`), on 127.0.0.1 only."""

    host: int
    guest: int
    protocol: str = "tcp"

    @classmethod
    def parse(cls, text: str) -> Publish:
        match = re.fullmatch(r"(\d+):(\d+)(?:/(tcp|udp))?", text)
        if match is None or not all(0 < int(port) < 65536 for port in match.group(1, 2)):
            raise BadInput(f"--publish {text!r}: give HOST:GUEST or HOST:GUEST/udp with ports 1-65535")
        return cls(int(match[1]), int(match[2]), match[3] or "tcp")

    def hostfwd(self) -> str:
        return f"hostfwd={self.protocol}:127.0.0.1:{self.host}-:{self.guest}"


@dataclass(frozen=True)
class RunOptions:
    prefix: Path
    mem: str = "512M"
    cpus: int = 1
    timeout: float = 300.0
    accel: str = "auto"  # auto, kvm or tcg
    extra_cmdline: str = ""
    qemu_args: tuple[str, ...] = field(default_factory=tuple)
    networking: str = "user"
    publish: tuple[Publish, ...] = ()
    disks: tuple[Disk, ...] = ()
    arch: str | None = None  # the emulated architecture; None: the kernel's own


@dataclass(frozen=True)
class RunResult:
    accel: str
    seconds: float
    console_tail: bytes
    halted: bool = False


def kvm_usable() -> bool:
    """KVM only when the CPU offers it and /dev/kvm opens; here it often exists but cannot run guests."""
    if os.environ.get("DISTROKIT_ACCEL") in ("tcg", "kvm"):
        return os.environ["DISTROKIT_ACCEL"] == "kvm"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if " vmx" not in flags and " svm" not in flags:
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return _probe_kvm()


def _probe_kvm() -> bool:
    """Start a machine with no devices under KVM: a working KVM keeps running until we stop it."""
    try:
        probe = subprocess.run(
            [QEMU, "-accel", "kvm", "-M", "q35", "-nodefaults", "-display", "none", "-S", "-monitor", "none"],
            capture_output=True,
            timeout=2,
        )
    except subprocess.TimeoutExpired:
        return True
    except OSError:
        return False
    return probe.returncode == 0


def boot_files(prefix: Path) -> tuple[Path, Path, str]:
    kernel = prefix.with_name(prefix.name + "-kernel")
    initrd = prefix.with_name(prefix.name + "-initrd.img")
    cmdline_file = prefix.with_name(prefix.name + "-cmdline")
    missing = [str(p) for p in (kernel, initrd) if not p.is_file()]
    if missing:
        raise BadInput(f"nothing to boot at {prefix}: {', '.join(missing)} missing; run `distrokit build` first")
    cmdline = cmdline_file.read_text().strip() if cmdline_file.is_file() else "console=ttyS0"
    return kernel, initrd, cmdline


def guest_machine(options: RunOptions) -> machines.Machine:
    """The emulated machine: --arch when given, else the one the kernel to boot is built for."""
    return machines.machine_for(boot_files(options.prefix)[0], options.arch)


def qemu_command(options: RunOptions, accel: str) -> list[str]:
    kernel, initrd, cmdline = boot_files(options.prefix)
    machine = guest_machine(options)
    cmdline = machines.console_for(cmdline, machine)
    if "panic=" not in cmdline:
        cmdline += " panic=1"  # with -no-reboot a panic ends QEMU at once instead of hanging until the timeout
    if options.extra_cmdline:
        cmdline += " " + options.extra_cmdline
    return [
        machine.qemu,
        *machine.args,
        "-accel",
        accel,
        "-m",
        options.mem,
        "-smp",
        str(options.cpus),
        "-display",
        "none",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        cmdline.strip(),
        *network_args(options),
        *disk_args(options.disks),
        *options.qemu_args,
    ]


def network_args(options: RunOptions) -> list[str]:
    """User-mode networking on a virtio NIC (the kernel has no e1000), forwards bound to 127.0.0.1."""
    if options.networking not in NETWORKING:
        raise BadInput(f"--networking {options.networking!r}: choose one of {', '.join(NETWORKING)}")
    if options.networking == "none":
        if options.publish:
            raise BadInput("--publish needs networking; drop --networking none")
        return ["-nic", "none"]
    netdev = ",".join(["user", "id=net0", *(p.hostfwd() for p in options.publish)])
    return ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]


def disk_args(disks: tuple[Disk, ...]) -> list[str]:
    args = []
    for index, disk in enumerate(disks):
        args += ["-drive", f"file={disk.path},format={disk.format},if=virtio,index={index},media=disk"]
    return args


def create_disks(disks: tuple[Disk, ...]) -> list[Path]:
    """Create the disk files that do not exist yet with qemu-img; return the ones created."""
    created = []
    for disk in disks:
        if disk.path.exists():
            continue
        disk.path.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [QEMU_IMG, "create", "-q", "-f", disk.format, str(disk.path), disk.size], capture_output=True
        )
        if made.returncode != 0:
            detail = made.stderr.decode(errors="replace").strip()
            raise BadInput(f"cannot create disk {disk.path}: {detail} (check the folder and the size)")
        created.append(disk.path)
    return created


def run(options: RunOptions, on_output: Callable[[bytes], None] = lambda _: None) -> RunResult:
    """Boot and wait for the guest to power off; raise BootError on a panic, a timeout or a QEMU failure."""
    machine = guest_machine(options)
    if shutil.which(machine.qemu) is None:
        raise BadInput(
            f"{machine.qemu} is not installed: run `apt-get install {machine.package}` (the README's setup does)"
        )
    accel = options.accel if options.accel != "auto" else ("kvm" if machine.native and kvm_usable() else "tcg")
    command = qemu_command(options, accel)
    create_disks(options.disks)
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as qemu:
        tail, err, halted = _pump(qemu, options.timeout, started, on_output)
        seconds = time.monotonic() - started
        if halted and qemu.poll() is None:
            qemu.terminate()
            qemu.wait()
            return RunResult(accel, seconds, tail, halted=True)
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
            raise BootError(f"the guest did not power off within {options.timeout:.0f} s; it was stopped")
    panic = tail.find(PANIC_MARKER)
    if panic >= 0:
        line = tail[panic:].split(b"\n", 1)[0].decode(errors="replace").strip()
        raise BootError(f"the guest kernel panicked: {line}")
    if qemu.returncode != 0:
        raise BootError(f"QEMU exited with {qemu.returncode}: {err.decode(errors='replace').strip()[-500:]}")
    return RunResult(accel, seconds, tail)


def _pump(
    qemu: subprocess.Popen[bytes], timeout: float, started: float, on_output: Callable[[bytes], None]
) -> tuple[bytes, bytes, bool]:
    """Stream the console until QEMU closes it, the guest halts, or the time is up."""
    assert qemu.stdout is not None and qemu.stderr is not None
    tail, err, halted = b"", b"", False
    selector = selectors.DefaultSelector()
    selector.register(qemu.stdout, selectors.EVENT_READ, "out")
    selector.register(qemu.stderr, selectors.EVENT_READ, "err")
    open_streams = 2
    while open_streams and not halted and time.monotonic() - started < timeout:
        for key, _ in selector.select(timeout=0.5):
            chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
            if not chunk:
                selector.unregister(key.fileobj)
                open_streams -= 1
            elif key.data == "out":
                on_output(chunk)
                tail = (tail + chunk)[-TAIL_BYTES:]
                halted = HALT_MARKER in tail[-(len(chunk) + len(HALT_MARKER)) :]
            else:
                err = (err + chunk)[-TAIL_BYTES:]
    if not open_streams:
        with contextlib.suppress(subprocess.TimeoutExpired):
            qemu.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
    return tail, err, halted
