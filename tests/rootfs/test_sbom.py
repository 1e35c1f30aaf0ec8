"""distrokit sbom: an SPDX 2.3 document of every image and Debian package, reproducible, and the same
bytes the image carries at /etc/distrokit/sbom.spdx.json."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import REPO, SPECS, Built

from buildlib.outputs.compress import decompress
from buildlib.outputs.initrd import segment_path
from buildlib.rootfs.parts import INSTALLED_PATH
from buildlib.rootfs.sbom import SBOM_PATH


def _sbom(built: Built) -> bytes:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(built.cache), "sbom", str(SPECS / "minimal.yml")]
    return subprocess.run(command, cwd=REPO, capture_output=True, check=True).stdout


def _carried(built: Built, path: str, tmp_path: Path) -> bytes:
    """A file of the image's files segment, read with GNU cpio."""
    pointer = built.state_dir / "files.segment"
    segment = segment_path(built.cache, pointer.read_text().strip())
    archive = tmp_path / "files.cpio"
    archive.write_bytes(decompress(segment.read_bytes()))
    with archive.open("rb") as stdin:
        command = ["cpio", "-i", "--quiet", "--to-stdout", path]
        return subprocess.run(command, stdin=stdin, capture_output=True, check=True).stdout


def test_sbom_lists_busybox_and_the_kernel_with_their_debian_versions(minimal_build: Built, tmp_path: Path) -> None:
    first, second = _sbom(minimal_build), _sbom(minimal_build)
    assert first == second  # no random UUID, no clock
    document: dict[str, Any] = json.loads(first)
    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["name"] == "minimal"  # the spec's name: the document says which system it describes
    system = next(p for p in document["packages"] if p["SPDXID"] == "SPDXRef-System")
    assert system["name"] == "minimal"
    assert re.fullmatch(r"https://\S+-[0-9a-f]{64}", document["documentNamespace"])
    versions = {p["name"]: p.get("versionInfo") for p in document["packages"]}
    # The versions are the Debian ones the images record (as /etc/distrokit/installed lists them).
    installed = _carried(minimal_build, INSTALLED_PATH, tmp_path).decode()
    recorded = dict(line.split()[:2] for line in installed.splitlines() if line.startswith("  "))
    kernel = [name for name in recorded if name.startswith("linux-image-")]
    assert len(kernel) == 1 and versions[kernel[0]] == recorded[kernel[0]]
    assert versions["busybox-static"] == recorded["busybox-static"] and "deb12" in recorded["busybox-static"]
    purls = {ref["referenceLocator"] for p in document["packages"] for ref in p.get("externalRefs", ())}
    assert any(purl.startswith("pkg:deb/debian/busybox-static@1%3A1.") for purl in purls)


def test_the_image_carries_the_same_document(minimal_build: Built, tmp_path: Path) -> None:
    assert _carried(minimal_build, SBOM_PATH, tmp_path) == _sbom(minimal_build)


def test_the_document_is_named_for_the_spec_file_never_the_build_name() -> None:
    """The name the SBOM gives the system is the first spec file's base name, whatever --name or --arch
    the build has (they would make one spec's images differ by name alone), and the tool's own for stdin."""
    from buildlib.rootfs.sbom import DOCUMENT_NAME, spec_name
    from buildlib.spec.model import Spec

    assert spec_name(Spec(files_read=("specs/minimal.yml", "extra.yml"))) == "minimal"
    assert spec_name(Spec(files_read=("-",))) == DOCUMENT_NAME
