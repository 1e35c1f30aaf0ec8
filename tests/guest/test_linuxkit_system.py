"""The booted system as LinuxKit's own test cases check it (a spec, a check inside the guest, a PASS line
on the console), every check in tests/specs/linuxkit-system.yml: one build, one boot. Beside it, fast
checks of what the build writes for the same items (the components' image configs and files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bootkit import boot_path
from conftest import COMPONENTS, build

from buildlib.debian import components, recipes
from buildlib.rootfs import bundles
from buildlib.spec.model import Container

SPEC = Path(__file__).resolve().parents[1] / "specs" / "linuxkit-system.yml"
# In the order the guest prints them: the onboot containers', then the host's boot.d check.
CHECKS = [
    "sh-through-path",
    "bind-var-tmp",
    "volume-image-binds",
    "volume-rw-write",
    "volume-image-mounts",
    "volume-image-binds-add",
    "volume-ro-on-ro",
    "volume-ro-on-rw",
    "mount-hostroot",
    "volume-ro-mounted",
    "volume-lower-untouched",
    "var-tmp-shared",
    "root-layout",
    "var-tmp-sticky",
    "var-run-link",
    "tmp-run-tmpfs",
    "dev-links",
    "device-mapper",
    "sysctl-linuxkit",
]


def linuxkit_sysctls() -> dict[str, str]:
    """LinuxKit's 00-linuxkit.conf as the spec's check lists it (KEY VALUE lines of its here-document)."""
    text = SPEC.read_text()
    body = text.split("<<'END'\n", 1)[1].split("\n      END\n", 1)[0]
    pairs = (line.strip().split(None, 1) for line in body.splitlines())
    return {key: value for key, value in pairs}


@pytest.mark.boot
def test_linuxkit_system_checks_pass_in_one_boot(shared_cache: Path, tmp_path: Path) -> None:
    built = build(SPEC, shared_cache, tmp_path)
    console = boot_path(built, built.prefix, "--networking", "none")
    results = re.findall(r"(PASS|FAIL): (\S+)", console)
    assert results == [("PASS", name) for name in CHECKS], console[-5000:]
    # every sysctl write was taken (the one the check cannot read back included)
    assert "onboot container sysctl failed" not in console and "were not applied" not in console
    # the banner from /etc/issue, printed by the init before any container runs
    banner = console.find("a small Linux from Debian packages")
    assert 0 <= banner < console.find("PASS: sh-through-path"), console[:3000]


def _label(name: str) -> Container:
    recipe = recipes.load_recipe(COMPONENTS / name)
    config = components._image_config(recipe, [], diff_id="sha256:" + "0" * 64)
    return bundles.parse_label(config["config"]["Labels"][bundles.MOBY_LABEL], name)


def test_mount_binds_the_host_root_as_linuxkit_mount_does() -> None:
    assert "/:/hostroot" in (_label("mount").binds or ())


def test_sysctl_sets_every_value_of_linuxkit_00_linuxkit_conf() -> None:
    expected = linuxkit_sysctls()
    assert len(expected) == 25
    ours: dict[str, str] = {}
    for conf in sorted((COMPONENTS / "sysctl").glob("*.conf")):
        for line in conf.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, value = (part.strip() for part in line.split("=", 1))
                ours[key] = " ".join(value.split())
    assert {key: ours.get(key) for key in expected} == expected


def test_init_gives_linuxkit_s_root_layout_banner_and_volume_hook() -> None:
    files = {entry.path: entry for entry in recipes.load_recipe(COMPONENTS / "init").files}
    for folder in ("/var/tmp", "/tmp"):
        assert files[folder].directory and files[folder].mode == 0o1777
    assert files["/var/run"].symlink == "/run"
    assert all(files[path].directory for path in ("/home", "/mnt", "/srv", "/var/cache", "/var/spool/cron/crontabs"))
    assert (COMPONENTS / "init" / files["/etc/issue"].source).read_text().strip()
    # the banner first, the volumes before the onboot containers (50-onboot)
    assert "/usr/libexec/distrokit/issue" in (files["/etc/distrokit/boot.d/00-issue"].contents or "")
    assert "/usr/libexec/distrokit/volumes" in (files["/etc/distrokit/boot.d/20-volumes"].contents or "")
