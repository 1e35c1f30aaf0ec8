"""buildlib.spec.refs: references expand as Docker and LinuxKit expand them."""

import pytest

from buildlib.errors import BadReference
from buildlib.spec.refs import ImageRef


@pytest.mark.parametrize(
    ("text", "expanded", "familiar"),
    [
        ("redis", "docker.io/library/redis:latest", "redis:latest"),
        ("redis:7", "docker.io/library/redis:7", "redis:7"),
        ("linuxkit/init:abc", "docker.io/linuxkit/init:abc", "linuxkit/init:abc"),
        ("index.docker.io/library/alpine:3", "docker.io/library/alpine:3", "alpine:3"),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b:1", "127.0.0.1:5000/a/b:1"),
        (
            "quay.io/org/img@sha256:" + "a" * 64,
            "quay.io/org/img@sha256:" + "a" * 64,
            "quay.io/org/img@sha256:" + "a" * 64,
        ),
        ("img:1@sha256:" + "b" * 64, "docker.io/library/img:1@sha256:" + "b" * 64, "img:1@sha256:" + "b" * 64),
    ],
)
def test_expansion(text: str, expanded: str, familiar: str) -> None:
    ref = ImageRef.parse(text)
    assert str(ref) == expanded
    assert ref.familiar() == familiar
    assert ImageRef.parse(str(ref)) == ref


@pytest.mark.parametrize("text", ["", " redis", "Redis/UPPER", "a/b:bad tag", "x@sha256:short", "a//b"])
def test_rejects(text: str) -> None:
    with pytest.raises(BadReference):
        ImageRef.parse(text)
