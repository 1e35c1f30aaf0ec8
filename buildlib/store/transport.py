"""skopeo, driven with `sh`: where an image is fetched from, with which flags, and our retry loop around it.

Part of the `images` room; only this module and `images` run skopeo. skopeo itself retries little:
a clean close mid-blob (`unexpected EOF`), a stall (`--command-timeout`), a 5xx or a 429 whose wait it
will not take all end the copy. This loop retries those with exponential backoff and jitter, and fails
at once, saying what to do, on what retrying cannot fix (credentials, a missing tag, a missing platform,
TLS). A retry loses no finished blob: skopeo writes each one into the shared blob dir as it completes.
"""

from __future__ import annotations

import enum
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadInput, ImageNotFound, TransportError
from ..spec.refs import DEFAULT_DOMAIN, ImageRef
from .trust import Trust

if TYPE_CHECKING:
    import sh

DOCKER_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
MIRRORS_ENV = "DISTROKIT_MIRRORS"
INSECURE_ENV = "DISTROKIT_INSECURE_REGISTRIES"
AUTH_ENVS = ("DISTROKIT_AUTH_FILE", "REGISTRY_AUTH_FILE")
POLL_SECONDS = 0.25


# retry policy and progress events ----------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts in all; seconds per attempt (skopeo's --command-timeout); seconds without a
    new byte after which an attempt counts as stalled and is ended; the backoff between attempts."""

    attempts: int = 6
    timeout: float = 1800.0
    stall: float = 60.0
    backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.5

    def delay(self, failures: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th failure: doubling, cut by up to `jitter`, never below Retry-After."""
        base = min(self.max_backoff, self.backoff * 2 ** max(0, failures - 1))
        wait = base * (1.0 - self.jitter * rng.random())
        return max(wait, retry_after or 0.0)


class EventKind(enum.Enum):
    START = "start"
    PROGRESS = "progress"
    RETRY = "retry"
    WARNING = "warning"
    DONE = "done"


@dataclass(frozen=True, eq=False)
class Event:
    """What a transfer reports: `bytes` landed in the store so far, the attempt, a message."""

    kind: EventKind
    name: str
    bytes: int = 0
    attempt: int = 1
    message: str = ""
    seconds: float = 0.0


Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The listener used when nobody listens."""


# where an image comes from -------------------------------------------------------------------
@dataclass(frozen=True)
class Mirror:
    """LinuxKit's `--mirror [REGISTRY=]URL`: REGISTRY `*` stands for every registry without a mirror of its own."""

    registry: str
    url: str

    @property
    def location(self) -> str:
        return self.url.split("://", 1)[1].rstrip("/")

    @property
    def plain_http(self) -> bool:
        return self.url.startswith("http://")


def parse_mirror(text: str) -> Mirror:
    registry, sep, url = text.partition("=")
    if not sep:
        registry, url = "*", text
    if not url.startswith(("http://", "https://")) or not url.split("://", 1)[1].strip("/"):
        raise BadInput(
            f"mirror {text!r}: the URL must start with http:// or https:// (e.g. docker.io=https://mirror.example)"
        )
    if registry in DOCKER_ALIASES or registry == "docker.io/":
        registry = DEFAULT_DOMAIN
    return Mirror(registry, url)


@dataclass(frozen=True)
class Network:
    """How registries are reached: mirrors, registries allowed plain http, the auth file, the retry policy,
    and which images are trusted (the containers policy skopeo enforces)."""

    mirrors: tuple[Mirror, ...] = ()
    insecure: tuple[str, ...] = ()
    authfile: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    trust: Trust = field(default_factory=Trust)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        mirrors: Sequence[str] = (),
        insecure: Sequence[str] = (),
        retry: RetryPolicy | None = None,
        trust: Trust | None = None,
    ) -> Network:
        """Mirrors from DISTROKIT_MIRRORS (spaces or commas) then `mirrors`, later ones winning, as LinuxKit does;
        the policy from DISTROKIT_POLICY unless `trust` is given."""
        env = os.environ if env is None else env
        from_env = re.split(r"[,\s]+", env.get(MIRRORS_ENV, "").strip())
        parsed = [parse_mirror(text) for text in [*from_env, *mirrors] if text]
        chosen = {mirror.registry: mirror for mirror in parsed}
        hosts = [h for h in re.split(r"[,\s]+", env.get(INSECURE_ENV, "").strip()) if h] + list(insecure)
        trust = trust or Trust.from_env(env)
        return cls(tuple(chosen.values()), tuple(hosts), find_authfile(env), retry or RetryPolicy(), trust)

    def mirror_for(self, domain: str) -> Mirror | None:
        by_registry = {mirror.registry: mirror for mirror in self.mirrors}
        return by_registry.get(domain) or by_registry.get("*")

    def allows_plain_http(self, host: str) -> bool:
        return is_loopback(host) or host in self.insecure or host.rsplit(":", 1)[0] in self.insecure


def find_authfile(env: Mapping[str, str]) -> Path | None:
    """The auth file skopeo should be told of; None when skopeo's own search finds the right one."""
    for name in AUTH_ENVS:
        if env.get(name):
            return Path(env[name])
    containers = [Path(env.get("XDG_RUNTIME_DIR", "/nonexistent")) / "containers" / "auth.json"]
    containers.append(Path(env.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "containers" / "auth.json")
    if any(path.is_file() for path in containers):
        return None
    docker = Path(env.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    return docker if docker.is_file() else None


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    return name in ("localhost", "::1") or name.startswith("127.")


@dataclass(frozen=True)
class Endpoint:
    """The place skopeo copies from or to: `docker://LOCATION`, the registry host, TLS on or off."""

    name: str
    location: str
    registry: str
    tls_verify: bool

    @property
    def url(self) -> str:
        return f"docker://{self.location}"


def resolve(ref: ImageRef, network: Network) -> Endpoint:
    """Where `ref` is fetched from: its registry or its mirror; TLS verified unless loopback or named insecure."""
    suffix = f"@{ref.digest}" if ref.digest else f":{ref.tag}"
    mirror = network.mirror_for(ref.domain)
    if mirror is None:
        return Endpoint(str(ref), f"{ref.name}{suffix}", ref.domain, not network.allows_plain_http(ref.domain))
    host = mirror.location.split("/", 1)[0]
    if mirror.plain_http and not network.allows_plain_http(host):
        raise BadInput(f"mirror {mirror.url} is plain http: use https://, or allow it with --insecure-registry {host}")
    return Endpoint(str(ref), f"{mirror.location}/{ref.path}{suffix}", host, not network.allows_plain_http(host))


def destination(text: str, network: Network) -> Endpoint:
    """A push destination REGISTRY/PATH[:TAG] (no mirror applies to pushes)."""
    ref = ImageRef.parse(text.removeprefix("docker://"))
    return Endpoint(str(ref), str(ref), ref.domain, not network.allows_plain_http(ref.domain))


def tls_flag(side: str, endpoint: Endpoint) -> str:
    """`--src-tls-verify=…` for side `src`, `--dest-…` for `dest`, `--tls-verify=…` for side ``."""
    prefix = f"--{side}-" if side else "--"
    return f"{prefix}tls-verify={'true' if endpoint.tls_verify else 'false'}"


def auth_flags(side: str, network: Network) -> list[str]:
    prefix = f"--{side}-" if side else "--"
    return [f"{prefix}authfile", str(network.authfile)] if network.authfile else []


# what went wrong ---------------------------------------------------------------------------
class FailureKind(enum.Enum):
    RETRY = "retry"
    AUTH = "auth"
    NOT_FOUND = "not-found"
    PLATFORM = "platform"
    TLS = "tls"
    DNS = "dns"  # the registry's name did not resolve: retried, as the network may come back
    POLICY = "policy"  # the containers policy refused the image: never retried
    OTHER = "other"


RETRIED = (FailureKind.RETRY, FailureKind.DNS)
# Registries whose names always resolve when the network works: failing to resolve them is never a typo.
WELL_KNOWN_REGISTRIES = (
    *DOCKER_ALIASES,
    "ghcr.io",
    "quay.io",
    "gcr.io",
    "registry.k8s.io",
    "public.ecr.aws",
    "mcr.microsoft.com",
    "registry.gitlab.com",
)


_PATTERNS: tuple[tuple[FailureKind, re.Pattern[str]], ...] = (
    (FailureKind.POLICY, re.compile(r"^source image rejected|is rejected by policy", re.I)),
    (
        FailureKind.DNS,
        re.compile(r"no such host|server misbehaving|name resolution|name or service not known|lookup \S+ on", re.I),
    ),
    (FailureKind.PLATFORM, re.compile(r"no image found in (manifest list|image index) for architecture", re.I)),
    (
        FailureKind.AUTH,
        re.compile(r"unauthorized|authentication required|(?<!permission )denied|\b40[13]\b|invalid username", re.I),
    ),
    (FailureKind.NOT_FOUND, re.compile(r"manifest unknown|name unknown|\b404\b|not found", re.I)),
    (FailureKind.TLS, re.compile(r"x509|certificate|http response to https client|tls: first record", re.I)),
    (
        FailureKind.RETRY,
        re.compile(
            r"\beof\b|connection reset|broken pipe|deadline exceeded|timeout|timed out|connection refused|"
            r"\b(429|500|502|503|504)\b|too many requests|toomanyrequests|unavailable|"
            r"signal: killed|http2:|use of closed network connection|no route to host|digest did not match|"
            # the registry links a blob to a repository after its upload: two pushes of one blob at once can
            # see a manifest refused for a blob the other push has not linked yet; a second try finds it
            r"blob unknown to registry",
            re.I,
        ),
    ),
)
_RETRY_AFTER = re.compile(r"retry[- ]after[:= ]+(\d+(?:\.\d+)?)", re.I)


@dataclass(frozen=True, eq=False)
class Failure:
    """Why a skopeo run failed (its kind decides whether to retry), and how long the registry asked to wait."""

    kind: FailureKind
    detail: str
    retry_after: float | None = None


def classify(stderr: str) -> Failure:
    """What one failed skopeo run means, from its last error line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else "skopeo failed without a message"
    match = re.search(r'msg="(.*)"\s*$', detail)
    if match:
        detail = match.group(1).replace('\\"', '"')
    after = _RETRY_AFTER.search(stderr)
    for kind, pattern in _PATTERNS:
        if pattern.search(detail):
            return Failure(kind, detail, float(after.group(1)) if after else None)
    return Failure(FailureKind.OTHER, detail)


class SkopeoFailed(Exception):
    """One skopeo run failed in a way retrying does not fix (internal: callers turn it into a DistrokitError)."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(failure.detail)
        self.failure = failure
        self.attempts = attempts


def explain(failure: Failure, endpoint: Endpoint, attempts: int, reached_before: bool = False) -> Exception:
    """The error the user sees, saying what to do. `reached_before`: the store holds images from this registry."""
    detail = failure.detail
    if failure.kind is FailureKind.DNS:
        return _unresolved(endpoint, attempts, detail, reached_before)
    if failure.kind is FailureKind.AUTH:
        return TransportError(
            f"{endpoint.registry} refused access to {endpoint.location} ({detail}): log in with "
            f"`skopeo login {endpoint.registry}` or point REGISTRY_AUTH_FILE at an auth file with credentials for it"
        )
    if failure.kind is FailureKind.NOT_FOUND:
        return ImageNotFound(
            f"image {endpoint.name} was not found at {endpoint.registry} ({detail}): check the name and tag"
        )
    if failure.kind is FailureKind.TLS:
        return TransportError(
            f"TLS with {endpoint.registry} failed ({detail}): fix its certificate, or if it is a test registry "
            f"you trust, allow plain http with --insecure-registry {endpoint.registry}"
        )
    if failure.kind is FailureKind.RETRY:
        return TransportError(
            f"could not copy {endpoint.name} from {endpoint.registry} after {attempts} attempts ({detail}): "
            "check the network, or try more with --retries and --timeout"
        )
    return TransportError(f"skopeo could not copy {endpoint.name} ({detail})")


def _unresolved(endpoint: Endpoint, attempts: int, detail: str, reached_before: bool) -> TransportError:
    host = endpoint.registry.rsplit(":", 1)[0] if ":" in endpoint.registry else endpoint.registry
    lookup = re.search(r"lookup (\S+?)(?: on \S+)?: (.*)$", detail)
    detail = f"lookup {lookup.group(1)}: {lookup.group(2)}" if lookup else detail
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    message = (
        f"could not resolve the registry {endpoint.registry} for {endpoint.name} after {tries} "
        f"({detail}): check the network (DNS), or try more with --retries"
    )
    if not reached_before and host not in WELL_KNOWN_REGISTRIES and not is_loopback(endpoint.registry):
        message += f"; nothing in the store came from {endpoint.registry}, so the name may be a typo"
    return TransportError(message)


# running skopeo ----------------------------------------------------------------------------
def skopeo() -> sh.Command:
    import sh  # imported when a transfer starts: importing it costs a no-change build a tenth of a second

    try:
        return sh.Command("skopeo")
    except sh.CommandNotFound as exc:
        raise BadInput("skopeo is not installed: run scripts/setup.sh (or `apt-get install skopeo`)") from exc


@dataclass(frozen=True, eq=False)
class Job:
    """One skopeo command to run until it succeeds: its arguments, the name shown, and how to count the bytes
    it has landed (for progress, and to see a stall); without `measure` only the timeout ends an attempt."""

    args: tuple[str, ...]
    name: str
    measure: Callable[[], int] | None = None


@dataclass(frozen=True, eq=False)
class Outcome:
    """A skopeo run that succeeded: after how many attempts, and what it printed."""

    attempts: int
    output: str


class _Stalled(Exception):
    """An attempt that landed no byte for `RetryPolicy.stall` seconds and was ended."""


def run(
    job: Job,
    policy: RetryPolicy,
    listener: Listener = ignore,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> Outcome:
    """Run `job` until it succeeds: its output and attempts. Raise SkopeoFailed when retrying cannot help."""
    import sh

    rng = rng or random.Random()
    command = skopeo()
    timeout = ["--command-timeout", f"{max(1, int(policy.timeout))}s"]
    for attempt in range(1, policy.attempts + 1):
        try:
            return Outcome(attempt, _attempt(command, [*timeout, *job.args], job, attempt, policy, listener))
        except sh.ErrorReturnCode as exc:
            failure = classify(exc.stderr.decode(errors="replace"))
        except sh.TimeoutException:
            failure = Failure(FailureKind.RETRY, f"no answer within {policy.timeout:.0f} s")
        except _Stalled:
            failure = Failure(FailureKind.RETRY, f"stalled: no new byte for {policy.stall:.0f} s")
        if failure.kind not in RETRIED or attempt == policy.attempts:
            raise SkopeoFailed(failure, attempt)
        wait = policy.delay(attempt, failure.retry_after, rng)
        landed = job.measure() if job.measure else 0
        listener(Event(EventKind.RETRY, job.name, landed, attempt, failure.detail, wait))
        sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")


def _attempt(
    command: sh.Command, args: list[str], job: Job, attempt: int, policy: RetryPolicy, listener: Listener
) -> str:
    """One skopeo run, with a thread that reports the bytes landed meanwhile and ends the run when it stalls."""
    import sh

    done, stalled = threading.Event(), threading.Event()
    process = command(*args, _bg=True, _bg_exc=False, _timeout=policy.timeout + 30)

    def watch() -> None:
        last, since = -1, time.monotonic()
        while job.measure is not None and not done.wait(POLL_SECONDS):
            landed = job.measure()
            listener(Event(EventKind.PROGRESS, job.name, landed, attempt))
            now = time.monotonic()
            if landed != last:
                last, since = landed, now
            elif now - since >= policy.stall and not stalled.is_set():
                stalled.set()
                process.terminate()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        process.wait()
        return str(process)
    except sh.ErrorReturnCode:
        if stalled.is_set():
            raise _Stalled() from None
        raise
    finally:
        done.set()
        watcher.join()
