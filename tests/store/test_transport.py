"""The retry loop's pieces without a registry: what skopeo's errors mean, how long to wait."""

from __future__ import annotations

import random

import pytest

from buildlib.store.transport import FailureKind, RetryPolicy, classify, is_loopback

FATAL = 'time="2026-11-26T22:42:00Z" level=fatal msg="{}"'


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("writing blob: happened during read: unexpected EOF", FailureKind.RETRY),
        (
            "writing blob: happened during read: read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer",
            FailureKind.RETRY,
        ),
        ("writing blob: happened during read: context deadline exceeded", FailureKind.RETRY),
        (
            "reading blob sha256:c1f8: invalid status code from registry 500 (Internal Server Error)",
            FailureKind.RETRY,
        ),
        (
            "reading blob sha256:1853: invalid status code from registry 503 (Service Unavailable)",
            FailureKind.RETRY,
        ),
        ("reading manifest v1 in r/x: toomanyrequests: You have reached your pull rate limit", FailureKind.RETRY),
        (
            "writing blob: happened during read: Digest did not match, expected sha256:3dce, got sha256:5544",
            FailureKind.RETRY,
        ),
        (
            "reading blob sha256:a7b6: unable to retrieve auth token: invalid username/password: unauthorized",
            FailureKind.AUTH,
        ),
        ("initializing source docker://r/x:v1: requested access to the resource is denied", FailureKind.AUTH),
        (
            "initializing source docker://r/x:nope: reading manifest nope in r/x: manifest unknown: manifest unknown",
            FailureKind.NOT_FOUND,
        ),
        (
            'pinging container registry r: Get \\"https://r/v2/\\": http: server gave HTTP response to HTTPS client',
            FailureKind.TLS,
        ),
        (
            'pinging container registry r: Get \\"https://r/v2/\\": x509: certificate signed by unknown authority',
            FailureKind.TLS,
        ),
        (
            "choosing an image from manifest list no image found in manifest list for architecture s390x",
            FailureKind.PLATFORM,
        ),
        (
            "writing manifest: uploading manifest segment-k1 to r/x: manifest blob unknown: blob unknown to registry",
            FailureKind.RETRY,
        ),
        ("open /cache/tmp/x: permission denied", FailureKind.OTHER),
        (
            'pinging container registry r.example: Get "https://r.example/v2/": dial tcp: lookup r.example on '
            "10.0.0.53:53: no such host",
            FailureKind.DNS,
        ),
    ],
)
def test_classify(message: str, kind: FailureKind):
    failure = classify("some progress line\n" + FATAL.format(message) + "\n")
    assert failure.kind is kind
    assert '\\"' not in failure.detail and failure.detail.startswith(message.split("\\")[0])


def test_a_digest_that_contains_status_digits_is_no_status():
    assert (
        classify(FATAL.format("writing blob: open sha256:a500b4290c: no space left on device")).kind
        is FailureKind.OTHER
    )


def test_retry_after_is_honoured_when_visible():
    failure = classify(FATAL.format("429 Too Many Requests; Retry-After: 7"))
    assert failure.kind is FailureKind.RETRY and failure.retry_after == 7
    assert RetryPolicy(backoff=0.1).delay(1, failure.retry_after, random.Random(1)) == 7


def test_backoff_doubles_with_jitter_and_a_ceiling():
    policy = RetryPolicy(backoff=1.0, max_backoff=8.0, jitter=0.5)
    rng = random.Random(3)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        waits = [policy.delay(failures, None, rng) for _ in range(50)]
        assert all(ceiling * 0.5 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1


def test_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1:5000", "localhost", "localhost:80", "[::1]:5000", "127.1.2.3"))
    assert not any(is_loopback(h) for h in ("docker.io", "10.0.0.1:5000", "quay.io:443", "localhost.example"))
