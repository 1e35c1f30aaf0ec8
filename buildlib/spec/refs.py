"""Image references, expanded the way Docker and LinuxKit expand them.

`redis` means `docker.io/library/redis:latest`; `linuxkit/init:abc` means `docker.io/linuxkit/init:abc`;
a first component with a dot, a colon or named `localhost` is a registry host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BadReference

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library"
DEFAULT_TAG = "latest"

_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


@dataclass(frozen=True, order=True)
class ImageRef:
    """A fully expanded image reference: domain/path[:tag][@digest]."""

    domain: str
    path: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """Expand `text` as Docker does; raise BadReference when it is not a reference."""
        original = text
        if not text or text != text.strip():
            raise BadReference(f"invalid image reference {original!r}: it is empty or has surrounding spaces")
        digest = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not _DIGEST.match(digest):
                raise BadReference(f"invalid image reference {original!r}: {digest!r} is not a digest")
        tag = None
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            text, tag = text.rsplit(":", 1)
            if not _TAG.match(tag):
                raise BadReference(f"invalid image reference {original!r}: bad tag {tag!r}")
        domain, path = _split_domain(text)
        for component in path.split("/"):
            if not _PATH_COMPONENT.match(component):
                raise BadReference(
                    f"invalid image reference {original!r}: {component!r} must be lower-case letters, "
                    "digits and separators"
                )
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(domain=domain, path=path, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """The repository, without tag or digest."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self) -> str:
        """The short form people write: `redis:7` rather than `docker.io/library/redis:7`."""
        text = str(self)
        prefix = f"{DEFAULT_DOMAIN}/{OFFICIAL_PREFIX}/"
        if text.startswith(prefix):
            return text[len(prefix) :]
        if text.startswith(f"{DEFAULT_DOMAIN}/"):
            return text[len(DEFAULT_DOMAIN) + 1 :]
        return text


def _split_domain(text: str) -> tuple[str, str]:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, text
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_PREFIX}/{path}"
    if not path:
        raise BadReference(f"invalid image reference {text!r}: no repository name")
    return domain, path
