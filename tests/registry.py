"""A real registry for tests and benchmarks: Debian's `docker-registry serve` on 127.0.0.1, storage in a folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from layerkit import M, store_layer

from buildlib.fsutil import canonical_json
from buildlib.spec.refs import ImageRef
from buildlib.store.images import MEDIA_MANIFEST, Layer, Store

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"

CONFIG = """version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass(frozen=True)
class Registry:
    port: int
    root: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 10.0) -> None:
    """Until `process` (not some other server on the port) listens on `port`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}")
        if _listening(port, process.pid):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not listen on 127.0.0.1:{port} within {seconds} s")


def _listening(port: int, pid: int) -> bool:
    """Whether process `pid` holds a socket listening on 127.0.0.1:`port` (from /proc, no tool needed)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(fields[9])
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd).removeprefix("socket:[").removesuffix("]") in inodes:
                    return True
    return False


@contextlib.contextmanager
def running_registry(workdir: Path, htpasswd: str | None = None) -> Iterator[Registry]:
    """A docker-registry on a free loopback port, stopped (and its process reaped) on exit.

    With `htpasswd` (lines `user:bcrypt-hash`) it asks for basic authentication. A free port can be
    taken by another process (another xdist worker's registry, a client's socket) between the probe
    and the registry's bind: then the registry exits, and it is started again on another port.
    """
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed: run scripts/setup.sh")
    workdir.mkdir(parents=True, exist_ok=True)
    if htpasswd is not None:
        (workdir / "htpasswd").write_text(htpasswd)
    log = open(workdir / "registry.log", "ab")  # noqa: SIM115 - closed below
    try:
        for attempt in range(1, 6):
            port = free_port()
            text = CONFIG.format(root=workdir / "storage", port=port)
            if htpasswd is not None:
                text += f"auth:\n  htpasswd:\n    realm: test\n    path: {workdir / 'htpasswd'}\n"
            (workdir / "config.yml").write_text(text)
            process = subprocess.Popen([binary, "serve", str(workdir / "config.yml")], stdout=log, stderr=log)
            try:
                _wait_for(port, process)
                break
            except RuntimeError:
                exited = process.poll() is not None  # it could not bind the port: another one
                _stop(process)
                if not exited or attempt == 5:
                    raise
        try:
            yield Registry(port, workdir / "storage")
        finally:
            _stop(process)
    finally:
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# test images --------------------------------------------------------------------------------
def random_layer(store: Store, size: int, name: str = "data") -> Layer:
    """A gzip layer of one file of `size` random bytes (incompressible, so the blob is about `size`)."""
    return store_layer(store, [M(name, data=os.urandom(size))], compress=True)


def stored_image(store: Store, ref: ImageRef, layers: list[Layer], arch: str = "amd64") -> str:
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"test": ref.path}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    return store.write_image(ref, config, [(layer.digest, layer.size, layer.media_type) for layer in layers])


def push_index(store: Store, manifests: dict[str, str], dest: str) -> str:
    """Push an OCI index over stored images ({arch: manifest digest}) to `dest` (plain http); return its digest."""
    entries = [
        {
            "mediaType": MEDIA_MANIFEST,
            "digest": digest,
            "size": store.blob_path(digest).stat().st_size,
            "platform": {"os": "linux", "architecture": arch},
        }
        for arch, digest in sorted(manifests.items())
    ]
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}
    index_bytes = canonical_json(index)
    digest = store.put_blob(index_bytes)
    with store.tempdir("index-") as layout:
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        top = {"mediaType": MEDIA_INDEX, "digest": digest, "size": len(index_bytes)}
        top["annotations"] = {"org.opencontainers.image.ref.name": "index"}  # type: ignore[assignment]
        (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
        subprocess.run(
            ["skopeo", "copy", "--quiet", "--multi-arch", "all", "--preserve-digests", "--dest-tls-verify=false"]
            + ["--src-shared-blob-dir", str(store.blobs), f"oci:{layout}:index", f"docker://{dest}"],
            check=True,
            capture_output=True,
        )
    return digest
