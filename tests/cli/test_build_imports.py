"""What a kernel+initrd `distrokit build` loads (issue 29): no module it does not use is imported on its
path. Structural, not timed: each check reads `sys.modules` of a fresh Python process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bootkit import REPO
from conftest import Built

from buildlib.cli.build import SHARED_CACHE_ENV
from buildlib.store import remotecache

# what a kernel+initrd build of Debian components never uses: the LinuxKit package builder, the other
# output formats' writers, EFI and Secure Boot, lock pinning, --input-tar, the shared cache, signing;
# nor, its images and layers already in the store and no lock file beside its spec, what pulls and indexes
UNUSED = (
    "buildlib.dockerfile.buildyml",
    "buildlib.dockerfile.builder",
    "buildlib.dockerfile.depends",
    "buildlib.dockerfile.instructions",
    "buildlib.tasks.packages",
    "buildlib.outputs.disk",
    "buildlib.outputs.iso",
    "buildlib.outputs.fsimage",
    "buildlib.outputs.tar",
    "buildlib.outputs.stages",
    "buildlib.outputs.fat",
    "buildlib.outputs.partition",
    "buildlib.outputs.efi",
    "buildlib.outputs.grub_modules",
    "buildlib.release.pinning",
    "buildlib.rootfs.inputtar",
    "buildlib.tasks.shared",
    "buildlib.store.remotecache",
    "buildlib.store.signing",
    "buildlib.debian.components",  # the component assembler: up-to-date components are not assembled again
    "buildlib.debian.maintainer",
    "buildlib.release.lock",  # a spec without a lock file
    "buildlib.tasks.reads",  # audit mode's read watch
    "buildlib.store.pulls",  # every image is in the store
    "buildlib.rootfs.origins",  # LinuxKit's tar headers of each path: a root written whole (tar, ISO, disks)
    "tarfile",  # every layer is indexed
    "uuid",  # the SBOM's namespace, drawn only when an SBOM is written
)
# the modules `distrokit build` reaches for on a build that runs doit (cli/build.py's lazy modules)
ENTRY = (
    "buildlib.cli.build",
    "buildlib.tasks",
    "buildlib.tasks.stamp",
    "buildlib.outputs",
    "buildlib.outputs.compress",
    "buildlib.outputs.preflight",
    "buildlib.debian.recipes",
    "buildlib.spec.model",
    "buildlib.rootfs.sbom",
)


def loaded_after(code: str, *argv: str) -> set[str]:
    """The modules loaded once `code` ran in a fresh interpreter (the environment without a shared cache)."""
    probe = f"import sys\n{code}\nprint('loaded:', *sorted(sys.modules))"
    env = {k: v for k, v in os.environ.items() if k not in SHARED_CACHE_ENV}
    done = subprocess.run([sys.executable, "-c", probe, *argv], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.rsplit("loaded:", 1)[1].split())


def test_the_build_path_imports_no_module_it_does_not_use() -> None:
    code = "import importlib\nfor name in sys.argv[1:]: importlib.import_module(name)\n"
    code += "from buildlib import outputs\noutputs.preflight  # noqa\noutputs.get_format('kernel+initrd')"
    loaded = loaded_after(code, *ENTRY)
    assert set(ENTRY) <= loaded and "doit" in loaded
    assert not loaded & set(UNUSED), sorted(loaded & set(UNUSED))


def test_a_rebuild_loads_what_it_uses_alone(minimal_build: Built, tmp_path: Path) -> None:
    """A real build that runs doit (a new spec file: no stamp), every task up to date, then -f iso-bios:
    the ISO writer and what it needs load then, and nothing else of the list."""
    spec = tmp_path / "minimal.yml"
    spec.write_text((REPO / "specs" / "minimal.yml").read_text().replace("../components", str(REPO / "components")))
    code = (
        "from buildlib.cli import main\n"
        "rc = main(['--cache', sys.argv[1], 'build', '-q', '--dir', sys.argv[2], '--name', 'probe', *sys.argv[3:]])\n"
        "assert rc == 0, rc\n"
    )
    out = tmp_path / "out"
    loaded = loaded_after(code, str(minimal_build.cache), str(out), str(spec))
    assert (out / "probe-initrd.img").read_bytes() == minimal_build.prefix.with_name("minimal-initrd.img").read_bytes()
    assert "buildlib.tasks.run" in loaded and "doit" in loaded  # it did run doit
    assert not loaded & set(UNUSED), sorted(loaded & set(UNUSED))
    loaded = loaded_after(code, str(minimal_build.cache), str(out), "-f", "iso-bios", str(spec))
    assert (out / "probe.iso").is_file()
    iso_path = {"buildlib.outputs.iso", "buildlib.outputs.stages", "buildlib.outputs.fat", "buildlib.outputs.efi"}
    assert iso_path <= loaded
    iso_uses = {"buildlib.outputs.partition", "buildlib.outputs.fsimage", "buildlib.rootfs.origins", "tarfile", "uuid"}
    assert not loaded & (set(UNUSED) - iso_path - iso_uses)


def test_the_shared_cache_variables_are_the_ones_it_reads() -> None:
    assert SHARED_CACHE_ENV == (remotecache.FROM_ENV, remotecache.TO_ENV)
