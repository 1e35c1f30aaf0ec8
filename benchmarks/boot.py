"""Issue 13 benchmark: boot times under QEMU (TCG), side by side with the floor, in one run.

- specs/minimal.yml from start to clean power-off, against the floor: the same kernel with an
  initramfs of busybox alone whose /init powers off at once (QEMU's lifetime, as `distrokit run`
  reports it; same QEMU options for both);
- specs/sshd.yml: from starting `distrokit run` to ssh answering on the published port;
- the size of minimal's initrd.

With `--before REV` the same specs are also built from the tree at git revision REV (its own
components and code, its own store) and booted in the same rounds, so the figures compare before
and after on the same machine at the same load. Boots of each kind take turns; medians are printed,
with the load average before and after (the machine is shared).

    .venv/bin/python benchmarks/boot.py [--runs 3] [--ssh-runs 2] [--before main] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from buildlib.guest import runner  # noqa: E402
from buildlib.outputs.initrd import write_segment  # noqa: E402
from buildlib.rootfs.tree import dir_entry, file_entry  # noqa: E402

FLOOR_INIT = b"#!/bin/busybox sh\n/bin/busybox poweroff -f\n"
SSH_WAIT = 600.0


@dataclass(frozen=True)
class Tree:
    """A source tree to build with (this one, or an older revision) and where its outputs go."""

    label: str
    source: Path
    cache: Path
    out: Path

    def distrokit(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(self.source), **kwargs.pop("env", {})}  # type: ignore[dict-item]
        command = [sys.executable, "-m", "buildlib.cli", "--cache", str(self.cache), *args]
        return subprocess.run(command, cwd=self.source, env=env, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]

    def build(self, spec: str, home: Path) -> None:
        done = self.distrokit("build", f"specs/{spec}.yml", "--dir", str(self.out), "-q", env={"HOME": str(home)})
        if done.returncode != 0:
            raise SystemExit(f"{self.label}: building {spec} failed: {done.stderr}")


def checkout(rev: str, target: Path) -> Path:
    """The tree at REV, unpacked from `git archive` (so the worktree is not touched)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    archive_path = target.with_suffix(".tar")
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(target, filter="tar")
    archive_path.unlink()
    return target


def shared_debs(cache: Path, debs: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / "debs").exists():
        (cache / "debs").symlink_to(debs, target_is_directory=True)


def make_floor(kernel: Path, out: Path) -> Path:
    """The floor: the same kernel, an initramfs of a static busybox and an /init that powers off."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    entries = [
        dir_entry("bin"),
        file_entry("bin/busybox", busybox, 0o755),
        dir_entry("dev"),
        dir_entry("proc"),
        file_entry("init", FLOOR_INIT, 0o755),
    ]
    prefix = out / "floor"
    write_segment(entries, prefix.with_name("floor-initrd.img"))
    shutil.copyfile(kernel, prefix.with_name("floor-kernel"))
    prefix.with_name("floor-cmdline").write_text("console=ttyS0 quiet")
    return prefix


def boot_seconds(prefix: Path) -> float:
    """QEMU's lifetime for one boot to power-off."""
    result = runner.run(runner.RunOptions(prefix=prefix, accel="tcg", timeout=600))
    return result.seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ssh(key: Path, port: int, command: str) -> subprocess.CompletedProcess[str]:
    options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]
    options += ["-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-i", str(key), "-p", str(port)]
    return subprocess.run(["ssh", *options, "root@127.0.0.1", command], capture_output=True, text=True, timeout=60)


def ssh_seconds(tree: Tree, key: Path) -> float:
    """From starting `distrokit run` on sshd to the first command answered over ssh; then power off."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree.source), "DISTROKIT_ACCEL": "tcg"}
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(tree.cache), "run", str(tree.out / "sshd")]
    command += ["--publish", f"{port}:22", "--timeout", str(SSH_WAIT)]
    if "/run/config/ssh" in (tree.source / "specs" / "sshd.yml").read_text():
        # sshd bakes no key since the metadata container came: the key arrives as LinuxKit's --data
        key_line = key.with_suffix(".pub").read_text()
        data = {"ssh": {"entries": {"authorized_keys": {"perm": "0600", "content": key_line}}}}
        command += ["--data", json.dumps(data)]
    started = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=tree.source,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as guest:
        try:
            while time.monotonic() - started < SSH_WAIT and guest.poll() is None:
                if ssh(key, port, "true").returncode == 0:
                    answered = time.monotonic() - started
                    ssh(key, port, "poweroff")
                    guest.wait(timeout=120)
                    return answered
                time.sleep(0.2)
            raise SystemExit(f"{tree.label}: sshd never answered")
        finally:
            if guest.poll() is None:
                guest.kill()


def median(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s" if values else "   -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-boot-bench"))
    parser.add_argument("--runs", type=int, default=3, help="boots of minimal (and of the floor) per tree")
    parser.add_argument("--ssh-runs", type=int, default=2, help="sshd boots per tree (0: skip)")
    parser.add_argument("--before", metavar="REV", help="also build and boot the tree at this git revision")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    debs, home = workdir / "debs", workdir / "home"
    debs.mkdir(exist_ok=True)
    key = home / ".ssh" / "id_ed25519"
    if not key.is_file():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)

    trees = [Tree("after", REPO, workdir / "cache-after", workdir / "out-after")]
    if args.before:
        source = checkout(args.before, workdir / "src-before")
        trees.insert(0, Tree(f"before ({args.before})", source, workdir / "cache-before", workdir / "out-before"))
    specs = ["minimal"] + (["sshd"] if args.ssh_runs else [])
    for tree in trees:
        shared_debs(tree.cache, debs)
        for spec in specs:
            tree.build(spec, home)
    floor = make_floor(trees[-1].out / "minimal-kernel", workdir)

    load_before = os.getloadavg()
    minimal: dict[str, list[float]] = {tree.label: [] for tree in trees}
    floors: list[float] = []
    for _ in range(args.runs):
        floors.append(boot_seconds(floor))
        for tree in trees:
            minimal[tree.label].append(boot_seconds(tree.out / "minimal"))
    to_ssh: dict[str, list[float]] = {tree.label: [] for tree in trees}
    for _ in range(args.ssh_runs):
        for tree in trees:
            to_ssh[tree.label].append(ssh_seconds(tree, key))
    load_after = os.getloadavg()

    floor_median = statistics.median(floors)
    print(
        f"load average (1, 5, 15 min) before: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}; "
        f"after: {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f} (2 cores)"
    )
    print(f"floor (same kernel, busybox-only initramfs): {median(floors)}  runs {fmt(floors)}")
    for tree in trees:
        runs = minimal[tree.label]
        size = (tree.out / "minimal-initrd.img").stat().st_size
        ratio = statistics.median(runs) / floor_median
        print(
            f"minimal, {tree.label}: {median(runs)}  {ratio:4.2f}x floor  initrd {size / 1e6:5.1f} MB  runs {fmt(runs)}"
        )
    for tree in trees:
        if to_ssh[tree.label]:
            print(f"sshd to ssh answering, {tree.label}: {median(to_ssh[tree.label])}  runs {fmt(to_ssh[tree.label])}")


def fmt(values: list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    main()
