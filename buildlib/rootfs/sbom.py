"""What is in an image, as an SPDX 2.3 JSON document: every image of the spec and the Debian packages
each records (the org.distrokit.packages label every component image carries).

Reproducible by construction: no random UUID and no clock. The creation time is the build epoch
(SOURCE_DATE_EPOCH, or 1970 without it: what matters is what the image holds, not when it was built);
the document namespace ends in a hash of the document's own content, so the same images give the same
bytes and others another namespace.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..debian.recipes import recorded_architectures, recorded_checksums, recorded_packages
from ..epoch import build_epoch, iso_time
from ..fsutil import canonical_json
from ..spec.model import STDIN, Spec
from ..spec.refs import ImageRef
from ..store.images import Image

SBOM_PATH = "etc/distrokit/sbom.spdx.json"
# LinuxKit's combined SBOM, at the root of the image (`linuxkit build`'s default --sbom-output)
LINUXKIT_SBOM_PATH = "sbom.spdx.json"
LINUXKIT_NAMESPACE_BASE = "https://github.com/linuxkit/linuxkit/sbom-"
LINUXKIT_LICENSE_LIST = "3.20"
DOCUMENT_NAME = "distrokit-image"
NAMESPACE_BASE = "https://spdx.distrokit.invalid/images"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
NOASSERTION = "NOASSERTION"


def spdx_id(kind: str, *words: str) -> str:
    """An SPDX element id (letters, digits, '.' and '-'), unique per kind and words."""
    readable = _ID_UNSAFE.sub("-", "-".join(words)).strip("-")[:60]
    digest = hashlib.sha256("\0".join(words).encode()).hexdigest()[:12]
    return f"SPDXRef-{kind}-{readable}-{digest}"


def _image_package(ref: str, image: Image) -> dict[str, Any]:
    parsed = ImageRef.parse(ref)
    algorithm, _, value = image.manifest_digest.partition(":")
    name = parsed.path.rsplit("/", 1)[-1]
    purl = f"pkg:oci/{name}@{quote(image.manifest_digest, safe='')}?repository_url={quote(parsed.name, safe='')}"
    return {
        "SPDXID": spdx_id("Image", ref, image.manifest_digest),
        "name": parsed.familiar(),
        "versionInfo": parsed.tag or image.manifest_digest,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": algorithm.upper(), "checksumValue": value}],
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    }


def _deb_package(name: str, version: str, sha256: str | None, arch: str) -> dict[str, Any]:
    purl = f"pkg:deb/debian/{quote(name, safe='')}@{quote(version, safe='')}?arch={quote(arch, safe='')}"
    words = (name, version) if arch in ("amd64", "all") else (name, version, arch)
    checksums = {"checksums": [{"algorithm": "SHA256", "checksumValue": sha256}]} if sha256 else {}
    return {
        **checksums,
        "SPDXID": spdx_id("Package", *words),
        "name": name,
        "versionInfo": version,
        "supplier": "Organization: Debian",
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    }


def spec_name(spec: Spec) -> str:
    """The name the document gives the system: the first spec file's base name, never the build's --name
    (nor its architecture suffix), so the same spec gives the same bytes under any --name."""
    first = spec.files_read[0] if spec.files_read else STDIN
    return DOCUMENT_NAME if first == STDIN else PurePath(first).stem


def image_arch(image: Image) -> str:
    return str(image.config.get("architecture") or "amd64")


def document(refs: tuple[str, ...], images: Mapping[str, Image], system_name: str = DOCUMENT_NAME) -> dict[str, Any]:
    """The SPDX document of a system made of `refs` (a spec's images, in spec order), named `system_name` (the
    spec's name, see `spec_name`: the document says which system it describes)."""
    system_id = "SPDXRef-System"
    packages: dict[str, dict[str, Any]] = {}
    relationships = [_relation("SPDXRef-DOCUMENT", "DESCRIBES", system_id)]
    for ref in refs:
        image = images.get(ref)
        if image is None:
            continue
        package = _image_package(ref, image)
        packages.setdefault(package["SPDXID"], package)
        relationships.append(_relation(system_id, "CONTAINS", package["SPDXID"]))
        checksums = recorded_checksums(image.labels)
        arches = recorded_architectures(image.labels, image_arch(image))
        for name, version in recorded_packages(image.labels):
            deb = _deb_package(name, version, checksums.get(name), arches[name])
            packages.setdefault(deb["SPDXID"], deb)
            relationships.append(_relation(package["SPDXID"], "CONTAINS", deb["SPDXID"]))
    system = {
        "SPDXID": system_id,
        "name": system_name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    }
    body = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": system_name,
        "creationInfo": {"created": iso_time(build_epoch()), "creators": [f"Tool: distrokit-{__version__}"]},
        "packages": [system, *packages.values()],
        "relationships": _unique(relationships),
    }
    content = hashlib.sha256(canonical_json(body)).hexdigest()
    return {**body, "documentNamespace": f"{NAMESPACE_BASE}/{quote(system_name, safe='')}-{content}"}


def _relation(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _unique(relationships: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: dict[tuple[str, ...], dict[str, str]] = {}
    for relation in relationships:
        seen.setdefault(tuple(relation.values()), relation)
    return list(seen.values())


def linuxkit_document(
    refs: tuple[str, ...], images: Mapping[str, Image], system_name: str = DOCUMENT_NAME
) -> dict[str, Any]:
    """The combined document as LinuxKit lays it out (name `sbom`, its namespace form, its license list
    version, the packages and relationships of every image). LinuxKit's namespace ends in a random UUID:
    ours is a UUID made from the content, so the same images give the same bytes."""
    ours = document(refs, images, system_name)  # the same packages as ours, the system named alike
    body = {
        "spdxVersion": ours["spdxVersion"],
        "dataLicense": ours["dataLicense"],
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "sbom",
        "creationInfo": {**ours["creationInfo"], "licenseListVersion": LINUXKIT_LICENSE_LIST},
        "packages": ours["packages"],
        "relationships": ours["relationships"],
    }
    content = hashlib.sha256(canonical_json(body)).digest()
    import uuid  # here: it loads `platform` and libuuid, which a build that only names its spec never needs

    namespace_id = uuid.UUID(bytes=content[:16], version=4)  # shaped as LinuxKit's, drawn from the content
    return {**body, "documentNamespace": f"{LINUXKIT_NAMESPACE_BASE}{namespace_id}"}


def render_linuxkit(refs: tuple[str, ...], images: Mapping[str, Image], name: str = DOCUMENT_NAME) -> bytes:
    """LinuxKit's /sbom.spdx.json: one line of JSON, as its SPDX writer gives it."""
    return json.dumps(linuxkit_document(refs, images, name), sort_keys=True, separators=(",", ":")).encode() + b"\n"


def render(refs: tuple[str, ...], images: Mapping[str, Image], name: str = DOCUMENT_NAME) -> bytes:
    """The document as the bytes the image carries and `distrokit sbom` prints."""
    return json.dumps(document(refs, images, name), indent=2, sort_keys=True).encode() + b"\n"
