"""LinuxKit's dm-crypt, losetup, swap, ip and bpftrace as components: each recipe built with `pkg build`
(as a user runs it) holds its programs with their libraries and LinuxKit's container config; the
scripts that stand in for LinuxKit's (loopy, crypto, lk-wg-config) refuse bad command lines in one line.
tests/guest/test_linuxkit_crypt_net.py boots them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from bootkit import distrokit
from conftest import COMPONENTS

from buildlib.debian import recipes
from buildlib.rootfs import layers
from buildlib.rootfs.parts import merged_image_tree
from buildlib.rootfs.tree import Tree
from buildlib.store.images import Store

NEW = ["dm-crypt", "losetup", "swap", "ip", "bpftrace"]
# what each image must run: its programs (links followed in the image) and the loader they need
PROGRAMS = {
    "dm-crypt": ["usr/bin/crypto", "sbin/cryptsetup", "sbin/mkfs.ext4", "sbin/blkid", "bin/sh"],
    "losetup": ["usr/bin/loopy", "sbin/losetup", "bin/sh"],
    "swap": ["swap.sh", "sbin/cryptsetup", "sbin/mkswap", "sbin/swapon"],
    "ip": ["usr/bin/lk-wg-config", "usr/bin/wg", "bin/ip", "sbin/ip", "bin/dash", "bin/sh"],
    "bpftrace": ["usr/bin/bpftrace"],
}
# LinuxKit's build.yml of each package, as the org.mobyproject.config label (what a spec entry inherits)
MOBY = {
    "dm-crypt": {"binds": ["/dev:/dev", "/etc/dm-crypt:/etc/dm-crypt"], "devices": [{"path": "all", "type": "a"}]},
    "losetup": {"binds": ["/dev:/dev", "/var:/var"]},
    "swap": {"binds": ["/dev:/dev", "/var:/var"], "net": "new", "ipc": "new"},
    "ip": {"capabilities": ["CAP_NET_ADMIN", "CAP_NET_RAW"]},
}
needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox-static")


@pytest.fixture(scope="module")
def images(shared_cache: Path) -> dict[str, Tree]:
    built = distrokit(shared_cache, "pkg", "build", *(str(COMPONENTS / name) for name in NEW), timeout=900)
    assert built.returncode == 0, built.stderr
    store = Store(shared_cache)
    return {name: _tree(store, name) for name in NEW}


def _tree(store: Store, name: str) -> Tree:
    image = store.image(recipes.load_recipe(COMPONENTS / name).ref)
    return merged_image_tree(store, image, name)


def _resolved(tree: Tree, path: str) -> layers.Entry:
    entry = tree.get(path)
    for _ in range(8):
        assert entry is not None, path
        if entry.kind != layers.SYMLINK:
            return entry
        target = entry.link if entry.link.startswith("/") else f"{Path('/', path).parent}/{entry.link}"
        path = str(Path(target)).lstrip("/")
        entry = tree.get(path)
    raise AssertionError(f"{path}: a loop of links")


@pytest.mark.parametrize("name", NEW)
def test_each_image_holds_its_programs_and_their_loader(images: dict[str, Tree], name: str) -> None:
    tree = images[name]
    for program in PROGRAMS[name]:
        entry = _resolved(tree, program)
        assert entry.kind == layers.FILE and entry.mode & 0o111, program
    assert tree.get("lib64/ld-linux-x86-64.so.2") is not None or name == "losetup"  # busybox is static


def test_busybox_does_not_shadow_iproute2_in_the_ip_image(images: dict[str, Tree]) -> None:
    tree = images["ip"]
    # busybox's sh runs its own `ip` applet before PATH: sh is dash there, and `ip` is iproute2's
    assert (
        _resolved(tree, "bin/sh").read_bytes()[:4] == b"\x7fELF"
        and b"BusyBox" not in _resolved(tree, "bin/sh").read_bytes()
    )
    assert b"BusyBox" not in _resolved(tree, "sbin/ip").read_bytes()


def test_bpftrace_takes_llvm_and_clang_from_debian(images: dict[str, Tree]) -> None:
    names = {entry.path.rsplit("/", 1)[-1] for entry in images["bpftrace"].entries()}
    assert "libLLVM-14.so.1" in names and any(name.startswith("libclang-14.so") for name in names)


@pytest.mark.parametrize("name", sorted(MOBY))
def test_each_image_carries_linuxkits_container_config(shared_cache: Path, images: dict[str, Tree], name: str) -> None:
    image = Store(shared_cache).image(recipes.load_recipe(COMPONENTS / name).ref)
    moby = json.loads(image.labels[recipes.MOBY_LABEL])
    for key, value in MOBY[name].items():
        assert moby[key] == value, key


def _run(script: Path, *args: str, shell: str = "busybox") -> subprocess.CompletedProcess[str]:
    command = ["busybox", "sh", str(script)] if shell == "busybox" else [shell, str(script)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=20)


@needs_busybox
@pytest.mark.parametrize(
    ("args", "status", "first_line"),
    [
        ([], 1, "loopy: FILE is missing"),
        (["--size", "ten", "/var/x.img"], 1, "loopy: --size takes a number of MiB, not 'ten'"),
        (["--bogus", "x"], 1, "loopy: unknown option --bogus"),
        (["-d"], 1, "loopy: -d needs a value"),
        (
            ["-c", "-d", "/nonexistent/loop9", "/var/x.img"],
            2,
            "loopy: there is no loop device /nonexistent/loop9 (is /dev bound into the container?)",
        ),
    ],
)
def test_loopy_refuses_bad_command_lines(args: list[str], status: int, first_line: str) -> None:
    done = _run(COMPONENTS / "losetup" / "loopy", *args)
    assert (done.returncode, done.stdout.splitlines()[0]) == (status, first_line), done.stdout


@needs_busybox
@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        ([], "crypto: NAME (the mapping under /dev/mapper) is missing"),
        (["-l", "secret"], "crypto: DEVICE (the device to encrypt) is missing"),
        (["a", "/dev/sda", "extra"], "crypto: one NAME and one DEVICE, not: a /dev/sda extra"),
        (["--luks", "-x", "a", "/dev/sda"], "crypto: unknown option -x"),
        # a relative key file is under /etc/dm-crypt, as LinuxKit's; LinuxKit's default name is "key"
        (
            ["-k", "nokey-here", "a", "/dev/sda"],
            "crypto: no key file /etc/dm-crypt/nokey-here (add it under files: or bind it in)",
        ),
        (
            ["--key-file=/nonexistent/k", "a", "/dev/sda"],
            "crypto: no key file /nonexistent/k (add it under files: or bind it in)",
        ),
    ],
)
def test_crypto_refuses_bad_command_lines(args: list[str], first_line: str) -> None:
    done = _run(COMPONENTS / "dm-crypt" / "crypto", *args)
    assert (done.returncode, done.stdout.splitlines()[0]) == (1, first_line), done.stdout


@needs_busybox
def test_crypto_help_names_linuxkits_flags() -> None:
    done = _run(COMPONENTS / "dm-crypt" / "crypto", "--help")
    assert done.returncode == 0 and "-l, --luks" in done.stdout and "-k, --key-file FILE" in done.stdout


WG_CONF = """# a comment
[Interface]
Address = 10.9.0.1/24, fd00::1/64
MTU = 1380
DNS = 10.9.0.53
PrivateKey = KG7EKkHDkp7THfW5mOXcZzo3RbGAjq+ARMfJGFm5G1s=
ListenPort = 51820

[Peer]
PublicKey = ZP7h1OjA1oIAmsAvMKujp2RAAC/f0kY814b3Xq6j/0Y=
AllowedIPs = 0.0.0.0/0, 10.9.1.0/24
Endpoint = 127.0.0.1:51821
"""


def _recording(folder: Path, name: str, output: str = "") -> None:
    """A stand-in for `ip` or `wg` that appends its command line (and what it reads, for setconf) to
    calls.log: what lk-wg-config asks of them, on a host without WireGuard (the guest test runs both)."""
    script = folder / name
    script.write_text(
        "#!/bin/sh\n"
        f'echo "{name} $*" >>"{folder}/calls.log"\n'
        f'case "$*" in *setconf*) cat >>"{folder}/calls.log" ;; esac\n'
        f"printf '%s' '{output}'\n"
    )
    script.chmod(0o755)


@pytest.mark.skipif(shutil.which("dash") is None, reason="needs dash")
def test_lk_wg_config_gives_wg_its_keys_and_applies_addresses_mtu_and_routes(tmp_path: Path) -> None:
    """The ip image's sh is dash, which finds ip and wg on PATH: here, recording stand-ins."""
    _recording(tmp_path, "ip")
    _recording(tmp_path, "wg", "ZP7h1OjA1oIAmsAvMKujp2RAAC/f0kY814b3Xq6j/0Y=\t0.0.0.0/0 10.9.1.0/24\n")
    config = tmp_path / "wg7.conf"
    config.write_text(WG_CONF)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    script = COMPONENTS / "ip" / "lk-wg-config"
    done = subprocess.run(["dash", str(script), "configure", str(config)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    setconf = calls.index("wg setconf wg7 /dev/stdin")
    given = calls[setconf + 1 : calls.index("ip address add 10.9.0.1/24 dev wg7")]
    assert [line.split("=")[0].strip() for line in given if "=" in line] == [
        "PrivateKey",
        "ListenPort",
        "PublicKey",
        "AllowedIPs",
        "Endpoint",
    ]
    assert calls[calls.index("ip address add 10.9.0.1/24 dev wg7") :] == [
        "ip address add 10.9.0.1/24 dev wg7",
        "ip address add fd00::1/64 dev wg7",
        "ip link set mtu 1380 dev wg7",
        "ip link set wg7 up",
        "wg show wg7 allowed-ips",
        "ip -4 route replace 10.9.1.0/24 dev wg7",  # the narrowest first, the default route last
        "ip -4 route replace 0.0.0.0/0 dev wg7",
    ]
    assert calls[0] == "ip link show wg7"  # made only when runtime: interfaces: did not make it
    assert f"lk-wg-config: dns in {config} is wg-quick's and ignored" in done.stdout


@pytest.mark.skipif(shutil.which("dash") is None, reason="needs dash")
@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        ([], "usage: lk-wg-config configure CONFIG_FILE (e.g. /etc/wireguard/wg0.conf)"),
        (["up", "/etc/wireguard/wg0.conf"], "usage: lk-wg-config configure CONFIG_FILE (e.g. /etc/wireguard/wg0.conf)"),
        (["configure", "/nonexistent/wg0.conf"], "lk-wg-config: no configuration file /nonexistent/wg0.conf"),
    ],
)
def test_lk_wg_config_refuses_bad_command_lines(args: list[str], first_line: str) -> None:
    done = _run(COMPONENTS / "ip" / "lk-wg-config", *args, shell="dash")
    assert (done.returncode, done.stdout.splitlines()[0]) == (1, first_line), done.stdout


@pytest.mark.skipif(shutil.which("dash") is None, reason="needs dash")
def test_lk_wg_config_refuses_a_file_name_that_is_no_interface_name(tmp_path: Path) -> None:
    config = tmp_path / "a-name-far-too-long.conf"
    config.write_text(WG_CONF)
    done = _run(COMPONENTS / "ip" / "lk-wg-config", "configure", str(config), shell="dash")
    assert done.returncode == 1
    assert done.stdout == f"lk-wg-config: 'a-name-far-too-long' (from {config}) is not an interface name\n"
