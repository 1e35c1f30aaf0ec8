"""A fault-injecting HTTP proxy on loopback, in front of a test registry.

It reads each request, asks its `Plan` whether to misbehave, and then either answers with an error
status itself (500, 503, 429 with Retry-After, 401) or forwards the request and relays the response,
cutting the body after a fraction of it (clean close or TCP reset) or stalling there. It counts every
body byte it relays, per request, so a test can prove what was fetched again.

Threads, one per connection, at most `max_connections`; loopback only; `stop()` ends everything.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import struct
import threading
from dataclasses import dataclass, field

BLOB_PATH = re.compile(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$")
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fault:
    """kind: `cut` (clean close), `reset` (TCP RST), `stall` (hold the connection), `flip` (send one byte
    wrong, the rest right), or `status` (answer `status` without asking the registry). Hostile servers,
    answered without asking the registry: `garbage` (200 with a body of junk), `noise` (bytes that are
    no HTTP at all), `redirect` (a 307 to the same path: a loop); and relayed: `lie` (the registry's
    answer with a Content-Length 1000 bytes too big, then a close)."""

    kind: str
    at: float = 0.5
    status: int = 0
    retry_after: int | None = None
    seconds: float = 30.0


@dataclass
class Script:
    """Faults for successive requests whose method and path match; None lets one through unharmed."""

    pattern: str
    faults: list[Fault | None]
    method: str = "GET"
    repeat: bool = False
    used: int = 0

    def next(self, method: str, path: str) -> Fault | None:
        if method != self.method or not re.search(self.pattern, path):
            return None
        if self.used >= len(self.faults) and not self.repeat:
            return None
        fault = self.faults[self.used % len(self.faults)]
        self.used += 1
        return fault


@dataclass(frozen=True)
class Transfer:
    method: str
    path: str
    status: int
    body_bytes: int
    complete: bool
    fault: str | None

    @property
    def blob(self) -> str | None:
        match = BLOB_PATH.match(self.path.split("?", 1)[0])
        return match.group(1) if match and self.method == "GET" else None


@dataclass
class Plan:
    scripts: list[Script] = field(default_factory=list)

    def decide(self, method: str, path: str) -> Fault | None:
        for script in self.scripts:
            fault = script.next(method, path)
            if fault is not None:
                return fault
        return None


class FaultProxy:
    def __init__(self, upstream_port: int, plan: Plan | None = None, max_connections: int = 32) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.plan = plan or Plan()
        self.transfers: list[Transfer] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopped = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # accounting ----------------------------------------------------------------------------
    def blob_bytes(self) -> int:
        with self._lock:
            return sum(t.body_bytes for t in self.transfers if t.blob)

    def completed_blobs(self) -> list[str]:
        """Blobs sent whole, once per time they were sent."""
        with self._lock:
            return [t.blob for t in self.transfers if t.blob and t.complete and t.status == 200]

    def reset_counts(self) -> None:
        with self._lock:
            self.transfers.clear()

    def _record(self, transfer: Transfer) -> None:
        with self._lock:
            self.transfers.append(transfer)

    # serving -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            doomed = list(self._sockets)
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._slots.acquire(timeout=5):
                client.close()
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._sockets.add if add else self._sockets.discard)(sock)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            upstream = socket.create_connection(self.upstream, timeout=60)
            for sock in (client, upstream):
                self._track(sock, True)
            self._conversation(client, upstream)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._track(sock, False)
                    with contextlib.suppress(OSError):
                        sock.close()
            self._slots.release()

    def _conversation(self, client: socket.socket, upstream: socket.socket) -> None:
        from_client = client.makefile("rb")
        from_upstream = upstream.makefile("rb")
        if from_client.peek(1)[:1] == b"\x16":
            # a TLS handshake: answer as Go's plain HTTP server does, so the client falls back to http
            client.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
            return
        while not self._stopped.is_set():
            head = _read_head(from_client)
            if head is None:
                return
            method, path, headers = _parse_request(head)
            body = from_client.read(int(headers.get("content-length", "0")))
            if "chunked" in headers.get("transfer-encoding", ""):
                raise OSError("chunked request bodies are not supported by the fault proxy")
            fault = self.plan.decide(method, path)
            if fault is not None and fault.kind == "status":
                client.sendall(_status_response(fault))
                self._record(Transfer(method, path, fault.status, 0, True, "status"))
                continue
            if fault is not None and fault.kind in HOSTILE_ANSWERS:
                client.sendall(HOSTILE_ANSWERS[fault.kind](path))
                self._record(Transfer(method, path, 0, 0, True, fault.kind))
                if fault.kind == "noise":
                    return
                continue
            upstream.sendall(head + body)
            if not self._relay_response(method, path, from_upstream, client, fault):
                return

    def _relay_response(
        self, method: str, path: str, source: io.BufferedReader, client: socket.socket, fault: Fault | None
    ) -> bool:
        head = _read_head(source)
        if head is None:
            return False
        status = int(head.split(b" ", 2)[1])
        headers = _headers(head)
        if fault is not None and fault.kind == "lie" and "content-length" in headers:
            length = int(headers["content-length"])
            client.sendall(re.sub(rb"(?i)content-length: *\d+", b"Content-Length: %d" % (length + 1000), head))
            self._pump(source, client, length)
            self._record(Transfer(method, path, status, length, False, "lie"))
            return False
        client.sendall(head)
        if method == "HEAD" or status in (204, 304):
            self._record(Transfer(method, path, status, 0, True, None))
            return True
        if "chunked" in headers.get("transfer-encoding", ""):
            body = _read_chunked(source)
            client.sendall(body)
            self._record(Transfer(method, path, status, len(body), True, None))
            return True
        length = int(headers.get("content-length", "0"))
        limit = int(length * fault.at) if fault is not None else length
        sent = self._pump(source, client, limit)
        if fault is not None and fault.kind == "flip" and status == 200 and sent < length:
            client.sendall(bytes([source.read(1)[0] ^ 0xFF]))  # one byte wrong, the length right
            sent += 1 + self._pump(source, client, length - sent - 1)
            self._record(Transfer(method, path, status, sent, False, "flip"))
            return sent == length
        if fault is None or status != 200:
            if fault is not None:
                sent += self._pump(source, client, length - sent)
            self._record(Transfer(method, path, status, sent, sent == length, None))
            return sent == length
        self._record(Transfer(method, path, status, sent, False, fault.kind))
        self._misbehave(client, fault)
        return False

    def _pump(self, source: io.BufferedReader, client: socket.socket, count: int) -> int:
        sent = 0
        while sent < count:
            data = source.read1(min(CHUNK, count - sent))
            if not data:
                break
            client.sendall(data)
            sent += len(data)
        return sent

    def _misbehave(self, client: socket.socket, fault: Fault) -> None:
        if fault.kind == "stall":
            self._stopped.wait(fault.seconds)
        elif fault.kind == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault.kind == "cut":
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)


def _read_head(stream: io.BufferedReader) -> bytes | None:
    lines = []
    while True:
        line = stream.readline(65536)
        if not line:
            return None
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines)


def _headers(head: bytes) -> dict[str, str]:
    result = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            result[name.strip().lower()] = value.strip()
    return result


def _parse_request(head: bytes) -> tuple[str, str, dict[str, str]]:
    method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return method, path, _headers(head)


def _read_chunked(stream: io.BufferedReader) -> bytes:
    parts = []
    while True:
        line = stream.readline(65536)
        parts.append(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        parts.append(stream.read(size + 2))
        if size == 0:
            return b"".join(parts)


def _garbage(path: str) -> bytes:
    body = b"<html><body>\x00\xff{not json at all" * 20
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


def _noise(path: str) -> bytes:
    return bytes(range(256)) * 8


def _redirect(path: str) -> bytes:
    return f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {path}\r\nContent-Length: 0\r\n\r\n".encode()


HOSTILE_ANSWERS = {"garbage": _garbage, "noise": _noise, "redirect": _redirect}

REASONS = {401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


def _status_response(fault: Fault) -> bytes:
    body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by the fault proxy"}]}'
    if fault.status == 401:
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    lines = [
        f"HTTP/1.1 {fault.status} {REASONS.get(fault.status, 'Error')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if fault.retry_after is not None:
        lines.append(f"Retry-After: {fault.retry_after}")
    if fault.status == 401:
        lines.append('WWW-Authenticate: Basic realm="faultproxy"')
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
