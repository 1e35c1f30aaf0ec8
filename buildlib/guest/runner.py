"""Boot built images in QEMU: command lines, accelerator choice, console, timeouts.

The guest's serial console is streamed to a callback (the CLI prints it); a clean power-off is
success, a kernel panic or a timeout is a BootError that says which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, BootError
from . import bootmode, instance, machines, metadata, ports, processes, virtiofs
from .console import Console, attach, serial_args

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
NETWORKING = ("user", "none")
DISK_FORMATS = ("raw", "qcow2")
DEFAULT_DISK_SIZE = "1G"
NEW_DISK_FORMAT = "qcow2"  # what a --disk without format= makes when its file does not exist
PANIC_MARKER = b"Kernel panic - not syncing"
# A halted guest (busybox init halts on SIGPWR or SIGUSR1, as LinuxKit's does) never leaves QEMU:
# it is finished all the same, so the run ends there as a power-off would.
HALT_MARKER = b"reboot: System halted"
EFI_VARS = "efi-vars.fd"  # an instance's UEFI variable store, in its state folder
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Disk:
    """A disk for the guest (LinuxKit's `--disk [file=]path[,size=N][,format=F]`), attached as virtio.

    No format= means: an existing file's format is read from the file (a raw image or an ISO attached as
    LinuxKit lets QEMU probe it), and a file that does not exist yet is made as qcow2."""

    path: Path
    size: str = DEFAULT_DISK_SIZE
    format: str | None = None

    @classmethod
    def parse(cls, text: str) -> Disk:
        path, *options = text.split(",")
        path = path.removeprefix("file=")
        if not path:
            raise BadInput(f"--disk {text!r}: give a file, e.g. --disk data.img,size=1G,format=raw")
        values: dict[str, str | None] = {"size": DEFAULT_DISK_SIZE, "format": None}
        for option in options:
            key, _, value = option.partition("=")
            if key not in values or not value:
                raise BadInput(f"--disk {text!r}: {option!r} is not size=N or format=F")
            values[key] = value
        size, format = values["size"] or DEFAULT_DISK_SIZE, values["format"]
        if format is not None and format not in DISK_FORMATS:
            raise BadInput(f"--disk {text!r}: format must be one of {', '.join(DISK_FORMATS)}")
        if not re.fullmatch(r"\d+[KMGT]?", size):
            raise BadInput(f"--disk {text!r}: size {size!r} is not a number with K, M, G or T")
        return cls(Path(path), size, format)

    def resolved_format(self) -> str:
        """format= as given; else the existing file's own format (qemu-img reads it), or qcow2 for a new file.
        Naming the probed format keeps QEMU from restricting writes to a raw image's first sector."""
        if self.format is not None:
            return self.format
        if not self.path.exists():
            return NEW_DISK_FORMAT
        return probed_format(self.path)


def probed_format(path: Path) -> str:
    """The image format qemu-img finds in `path` (an ISO or a plain file is raw)."""
    found = subprocess.run([QEMU_IMG, "info", "--output=json", str(path)], capture_output=True, text=True)
    if found.returncode != 0:
        detail = found.stderr.strip().splitlines()[-1:] or ["no output"]
        raise BadInput(f"--disk {path}: qemu-img cannot read it: {detail[0]} (give format=raw or format=qcow2)")
    format = str(json.loads(found.stdout).get("format", ""))
    if format not in DISK_FORMATS:
        raise BadInput(f"--disk {path}: it is a {format or 'unknown'} image; give one of {', '.join(DISK_FORMATS)}")
    return format


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
class Instance:
    """What makes a run one instance of an image: its console, data, state folder, emulator, shares."""

    console: Console = Console.PIPE
    data: bytes | None = None  # --data/--data-file: attached as a config ISO
    data_iso: Path | None = None  # a config ISO made by an earlier run (the state folder's): attached as it is
    state: Path | None = None  # --state: disks, console log, pid, QMP socket, data ISO
    qemu: str | None = None  # --qemu: the emulator to run instead of the default
    virtiofs: tuple[Path, ...] = ()  # --virtiofs: host folders shared with the guest


@dataclass(frozen=True)
class RunOptions:
    prefix: Path
    mem: str = "512M"
    cpus: int = 1
    timeout: float | None = 300.0  # None: no limit (a console on a terminal, a detached guest)
    accel: str = "auto"  # auto, kvm or tcg
    extra_cmdline: str = ""
    qemu_args: tuple[str, ...] = field(default_factory=tuple)
    networking: str = "user"
    publish: tuple[Publish, ...] = ()
    disks: tuple[Disk, ...] = ()
    arch: str | None = None  # the emulated architecture; None: the kernel's own
    instance: Instance = field(default_factory=Instance)
    boot: bootmode.BootRequest = field(default_factory=bootmode.BootRequest)


@dataclass(frozen=True)
class RunResult:
    accel: str
    seconds: float
    console_tail: bytes
    halted: bool = False
    detached: bool = False


def kvm_usable() -> bool:
    """KVM only when the CPU offers it and /dev/kvm opens; here it often exists but cannot run guests."""
    return kvm_status()[0]


def kvm_status() -> tuple[bool, str]:
    """Whether KVM can run guests here, and why (or why not), in words (`distrokit doctor`)."""
    if os.environ.get("DISTROKIT_ACCEL") in ("tcg", "kvm"):
        return os.environ["DISTROKIT_ACCEL"] == "kvm", f"DISTROKIT_ACCEL={os.environ['DISTROKIT_ACCEL']} says so"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError as error:
        return False, f"/proc/cpuinfo cannot be read ({error.strerror})"
    if " vmx" not in flags and " svm" not in flags:
        return False, "the CPU offers no virtualisation (no vmx or svm flag: a VM without nested virtualisation?)"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as error:
        return False, f"/dev/kvm cannot be opened ({error.strerror}; is the kvm module loaded, may you use it?)"
    os.close(fd)
    if not _probe_kvm():
        return False, "/dev/kvm opens, but QEMU cannot start a guest with it"
    return True, "a guest starts under KVM"


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


def guest_machine(options: RunOptions, boot: bootmode.Boot | None = None) -> machines.Machine:
    """The emulated machine: --arch when given, else the one the kernel to boot is built for, else the
    one whose EFI loader an ISO or a disk holds (else a PC)."""
    boot = boot or bootmode.resolve(options.prefix, options.boot)
    arch = options.arch
    if arch is None and boot.kernel is None and boot.image is not None:
        arch = machines.medium_arch(boot.image)
    return machines.machine_for(boot.kernel or Path(os.devnull), arch)


def firmware_args(boot: bootmode.Boot, machine: machines.Machine, settings: Instance) -> list[str]:
    """The UEFI firmware when the boot goes through it: OVMF as -bios on a PC; on arm64 AAVMF's code,
    read-only, and this instance's own copy of its variable store, as the two flash devices."""
    if not boot.needs_firmware(machine):
        return []
    code = bootmode.firmware_code(boot, machine)
    if bootmode.machine_firmware(boot, machine).vars is None:
        return ["-bios", str(code)]
    return [
        "-drive",
        f"if=pflash,format=raw,unit=0,file={code},readonly=on",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={efi_vars_path(settings)}",
    ]


def efi_vars_path(settings: Instance) -> Path:
    """The instance's UEFI variable store: kept in its state folder (boot entries survive a restart),
    else a file of this run, removed when it ends."""
    if settings.state is not None:
        return settings.state / EFI_VARS
    return Path(tempfile.gettempdir()) / f"distrokit-efivars-{os.getpid()}-{id(settings):x}.fd"


def prepare_firmware(boot: bootmode.Boot, machine: machines.Machine, settings: Instance) -> Path | None:
    """This instance's copy of the firmware's variable store, when the boot uses one; returns the copy
    to remove after the run (None when there is none, or it lives in the state folder)."""
    template = bootmode.machine_firmware(boot, machine).vars if boot.needs_firmware(machine) else None
    if template is None:
        return None
    path = efi_vars_path(settings)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
    return None if settings.state is not None else path


def qemu_command(options: RunOptions, accel: str) -> list[str]:
    boot = bootmode.resolve(options.prefix, options.boot)
    machine = guest_machine(options, boot)
    boot = dataclasses.replace(boot, cmdline=machines.console_for(boot.cmdline, machine))
    return [
        options.instance.qemu or machine.qemu,
        *bootmode.machine_args(boot, machine),
        "-accel",
        accel,
        "-m",
        options.mem,
        "-smp",
        str(options.cpus),
        "-display",
        "none",
        "-no-reboot",
        *firmware_args(boot, machine, options.instance),
        # the IO-APIC timer check that TCG on a busy host can fail exists on x86 only
        *boot.qemu_args(options.extra_cmdline, tcg=accel == "tcg" and machine.arch == "amd64", machine=machine),
        *network_args(options),
        *RNG_ARGS,
        *disk_args(options.disks, first=boot.drives),
        *instance_args(options.instance, options.mem),
        *options.qemu_args,
    ]


# A hardware RNG for the guest's rngd, as `linuxkit run qemu` gives every guest.
RNG_ARGS = ("-device", "virtio-rng-pci")


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


def disk_args(disks: tuple[Disk, ...], first: int = 0) -> list[str]:
    """The user's disks, after the `first` drives the boot itself attaches."""
    args = []
    for index, disk in enumerate(disks, start=first):
        args += ["-drive", f"file={disk.path},format={disk.resolved_format()},if=virtio,index={index},media=disk"]
    return args


def create_disks(disks: tuple[Disk, ...]) -> list[Path]:
    """Create the disk files that do not exist yet with qemu-img; return the ones created."""
    created = []
    for disk in disks:
        if disk.path.exists():
            continue
        disk.path.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [QEMU_IMG, "create", "-q", "-f", disk.format or NEW_DISK_FORMAT, str(disk.path), disk.size],
            capture_output=True,
        )
        if made.returncode != 0:
            detail = made.stderr.decode(errors="replace").strip()
            raise BadInput(f"cannot create disk {disk.path}: {detail} (check the folder and the size)")
        created.append(disk.path)
    return created


def run(options: RunOptions, on_output: Callable[[bytes], None] = lambda _: None) -> RunResult:
    """Boot and wait for the guest to power off; raise BootError on a panic, a timeout or a QEMU failure.

    On a terminal (Console.TERMINAL) the console is the user's until QEMU ends; detached, QEMU is
    left running in the background and the result says so at once.
    """
    if options.instance.qemu and shutil.which(options.instance.qemu) is None:
        raise BadInput(f"--qemu {options.instance.qemu}: no such program; give the path of a qemu-system binary")
    boot = bootmode.resolve(options.prefix, options.boot)
    machine = guest_machine(options, boot)
    emulator = options.instance.qemu or machine.qemu
    if shutil.which(emulator) is None:
        raise BadInput(
            f"{emulator} is not installed: run `apt-get install {machine.package}` (the README's setup does)"
        )
    accel = options.accel if options.accel != "auto" else ("kvm" if machine.native and kvm_usable() else "tcg")
    command = qemu_command(options, accel)
    prepare_instance(options.instance)
    refuse_taken_ports(options)
    create_disks(options.disks)
    efi_vars = prepare_firmware(boot, machine, options.instance)
    started = time.monotonic()
    try:
        daemons = virtiofs.start(shares(options.instance))
        if options.instance.console is Console.DETACHED:
            assert options.instance.state is not None  # instance_args refused it otherwise
            try:
                instance.start_detached(command, instance.StateDir(options.instance.state))
            except BaseException:
                virtiofs.stop(daemons)
                raise
            return RunResult(accel, time.monotonic() - started, b"", detached=True)
        try:
            return _run_here(options, command, accel, started, on_output)
        finally:
            virtiofs.stop(daemons)
    finally:
        if efi_vars is not None:
            efi_vars.unlink(missing_ok=True)


def refuse_taken_ports(options: RunOptions) -> None:
    """One line naming a published host port that is in use, and who holds it, before QEMU is started."""
    if options.networking != "none":
        ports.refuse_taken([(publish.host, publish.protocol) for publish in options.publish])


def _run_here(
    options: RunOptions, command: list[str], accel: str, started: float, on_output: Callable[[bytes], None]
) -> RunResult:
    """QEMU in the foreground: on the terminal, or streamed to `on_output` with the timeout."""
    if options.instance.console is Console.TERMINAL:
        code, seconds = attach(command, 0, options.timeout)
        if code != 0:
            raise BootError(f"QEMU exited with {code}")
        return RunResult(accel, seconds, b"")
    with processes.running(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as qemu:
        limit = math.inf if options.timeout is None else options.timeout
        tail, err, halted = _pump(qemu, limit, started, on_output)
        seconds = time.monotonic() - started
        if halted and qemu.poll() is None:
            processes.stop(qemu)
            return RunResult(accel, seconds, tail, halted=True)
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
            raise BootError(f"the guest did not power off within {limit:.0f} s; it was stopped")
    panic = tail.find(PANIC_MARKER)
    if panic >= 0:
        line = tail[panic:].split(b"\n", 1)[0].decode(errors="replace").strip()
        raise BootError(f"the guest kernel panicked: {line}")
    if qemu.returncode != 0:
        raise BootError(f"QEMU exited with {qemu.returncode}: {err.decode(errors='replace').strip()[-500:]}")
    return RunResult(accel, seconds, tail)


def instance_args(settings: Instance, mem: str = "512M") -> list[str]:
    """The console, the config ISO, shared folders and, with a state folder, the pid file and QMP socket."""
    state = instance.StateDir(settings.state) if settings.state else None
    if settings.console is Console.DETACHED and state is None:
        raise BadInput("--detached needs a state folder for the console and the pid: give --state DIR")
    args = serial_args(
        settings.console,
        log=state.console_log if state else None,
        socket=state.console_socket if state else None,
    )
    if state is not None:
        args += instance.control_args(state)
    if settings.data is not None:
        args += metadata.cdrom_args(config_iso_path(settings))
    elif settings.data_iso is not None:
        args += metadata.cdrom_args(settings.data_iso)
    return args + virtiofs.qemu_args(shares(settings), mem)


def shares(settings: Instance) -> tuple[virtiofs.Share, ...]:
    if not settings.virtiofs:
        return ()
    virtiofs.find_virtiofsd()
    sockets = settings.state or Path(tempfile.gettempdir()) / f"distrokit-virtiofs-{os.getpid()}"
    return virtiofs.plan(settings.virtiofs, sockets)


def config_iso_path(settings: Instance) -> Path:
    """Where the config ISO of this run lives: the state folder, else a file named by the data's hash."""
    if settings.state is not None:
        return instance.StateDir(settings.state).data_iso
    digest = hashlib.sha256(settings.data or b"").hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"distrokit-data-{digest}.iso"


def prepare_instance(settings: Instance) -> None:
    """Make the state folder and the config ISO the command line names; refuse a state folder in use."""
    if settings.state is not None:
        state = instance.StateDir(settings.state)
        state.create()
        instance.refuse_if_running(state)
    if settings.data is not None:
        metadata.write_config_iso(settings.data, config_iso_path(settings))
    elif settings.data_iso is not None and not settings.data_iso.is_file():
        raise BadInput(f"{settings.data_iso} is gone: give the instance's --data or --data-file again")


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
            qemu.wait(timeout=min(60.0, max(1.0, timeout - (time.monotonic() - started))))
    return tail, err, halted
