"""Small file-system helpers every stage shares: atomic writes, content hashing, the store lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import xxhash

from .errors import BadInput, NoSpace

CHUNK = 1 << 20
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


@contextlib.contextmanager
def atomic_writer(
    path: Path, mode: int = 0o644, needed: int | None = None, *, durable: bool = True
) -> Iterator[IO[bytes]]:
    """Write to a temp file beside `path`, fsync, then rename: readers see all or nothing. A full disk
    is a `NoSpace` error that says how much the file needs (`needed`, when the caller knows).
    `durable=False` skips the fsync (see write_hint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # named by this process: `cache gc` removes such files only once their process is gone
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        replace_releasing(tmp, path)
    except BaseException as exc:
        written = 0
        with contextlib.suppress(FileNotFoundError):
            written = os.stat(tmp).st_size
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise no_space(path, written, exc, needed) from exc
        raise


RELEASE_AFTER = 32 << 20  # a replaced file this big is freed on a thread (see replace_releasing)
_releasing: list[threading.Thread] = []
_releasing_lock = threading.Lock()


def replace_releasing(tmp: str | Path, path: Path) -> None:
    """os.replace, except that a big file it replaces is freed on a thread. Freeing the blocks and cached
    pages of a 128 MB initrd takes ext4 about 40 ms, which the build's last steps then overlap; until
    `released()`, the old file keeps a hidden second name beside the new one."""
    aside = _set_aside(path)
    os.replace(tmp, path)
    if aside is not None:
        thread = threading.Thread(target=_release, args=(aside,), name=f"release {path.name}")
        with _releasing_lock:
            _releasing.append(thread)
        thread.start()


def released() -> None:
    """Wait until every big file replaced so far is freed: no `.NAME.*.old` is left beside an output."""
    while True:
        with _releasing_lock:
            if not _releasing:
                return
            thread = _releasing.pop()
        thread.join()


def _set_aside(path: Path) -> Path | None:
    """A second, hidden name for the big file at `path`, so replacing it does not free it (None: small,
    missing, linked elsewhere already, or a file system without hard links)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size < RELEASE_AFTER or st.st_nlink > 1:
        return None
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.old"):  # left by a process killed meanwhile
        _release(stale)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
    try:
        os.link(path, aside)
    except OSError:
        return None
    return aside


def _release(aside: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(aside)


def no_space(path: Path, written: int, error: OSError, needed: int | None = None) -> NoSpace:
    """The error for a write the disk had no room for, saying how much room it would have needed."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    if needed is not None and needed > written:
        size = f"it needs about {_mib(needed)}"
    else:
        size = f"the disk filled after {_mib(written)} of it"
    return NoSpace(
        f"no space left to write {path} ({error.strerror}): {size}, and {_mib(free)} is free; nothing "
        "half-written was kept: free some space (e.g. `distrokit cache gc`) and run again"
    )


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


def parse_size(text: str) -> int:
    """`2G`, `500M`, `1.5GiB`, `4096` as bytes (powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise BadInput(f"size {text!r} is not a size: write a number with an optional unit, e.g. 500M or 2G")
    scale = 1024 ** " kmgt".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * scale)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(path, mode) as handle:
        handle.write(data)


def append_file(source: Path, out: IO[bytes]) -> None:
    """Append a whole file to `out`, in the kernel when it can (copy_file_range: no trip through Python)."""
    out.flush()
    with open(source, "rb") as handle:
        left = os.fstat(handle.fileno()).st_size
        try:
            while left > 0:
                copied = os.copy_file_range(handle.fileno(), out.fileno(), left)
                if copied == 0:
                    break
                left -= copied
        except OSError:
            pass  # a file system without it: the rest goes the ordinary way
        if left > 0:
            handle.seek(os.fstat(handle.fileno()).st_size - left)
            shutil.copyfileobj(handle, out, CHUNK)


class Writeback:
    """Starts the kernel writing a growing file to disk every `every` bytes (sync_file_range, which does
    not wait), so the fsync that ends an atomic write waits for the last stretch, not for all of it.
    Where the call is missing (not Linux), the fsync simply does all the work, as before."""

    def __init__(self, out: IO[bytes], every: int = 8 << 20) -> None:
        self.out, self.every = out, every
        self.started: int | None  # None: a pipe or a stream in memory, nothing to start
        try:
            self.started = out.tell()
        except (OSError, ValueError):
            self.started = None

    def write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.wrote()

    def wrote(self) -> None:
        """Call after a write: starts writeback of what has piled up since the last start."""
        if self.started is None:
            return
        position = self.out.tell()
        if position - self.started >= self.every:
            self.out.flush()
            _start_writeback(self.out.fileno(), self.started, position - self.started)
            self.started = position


_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return call


def _start_writeback(fd: int, offset: int, count: int) -> None:
    call = _sync_file_range()
    if call is not None:
        call(fd, offset, count, _SYNC_FILE_RANGE_WRITE)  # a refusal (EINVAL, ESPIPE) only loses the head start


def copy_range(handle: IO[bytes], out: IO[bytes], count: int) -> None:
    """Append the first `count` bytes of an open file to `out` (copy_file_range when it can)."""
    out.flush()
    left, position = count, 0
    try:
        while left > 0:
            copied = os.copy_file_range(handle.fileno(), out.fileno(), left, position)
            if copied == 0:
                break
            left -= copied
            position += copied
    except OSError:
        pass
    if left > 0:
        handle.seek(position)
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"{handle.name} ends {left} bytes early")
            out.write(chunk)
            left -= len(chunk)


def copy_file_atomic(source: Path, target: Path, mode: int = 0o644) -> None:
    with atomic_writer(target, mode) as out:
        append_file(source, out)


def canonical_json(value: Any) -> bytes:
    """The one JSON form whose bytes (and so digests) depend only on the value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_json_atomic(path: Path, value: Any) -> None:
    write_bytes_atomic(path, canonical_json(value))


def write_hint(path: Path, data: bytes) -> None:
    """Replace `path` with `data` all at once for readers, without waiting for the disk: for a record
    whose loss costs only time (a stamp, a cached plan), read by code that treats an unreadable or
    missing file as absent. No fsync, so it never waits behind a big file's writeback (ext4 commits
    its journal for a small fsync only after the data a big write left dirty); after a power cut the
    file may be the previous one, missing or empty, never another file's bytes."""
    with atomic_writer(path, durable=False) as handle:
        handle.write(data)


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


def digest_file(path: Path, *digests: Digest) -> None:
    """Feed the bytes of `path` to every one of `digests`, in one read of the file."""
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            for digest in digests:
                digest.update(chunk)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    digest_file(path, digest)
    return "sha256:" + digest.hexdigest()


def xxh_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def xxh_file(path: Path) -> str:
    digest = xxhash.xxh3_128()
    digest_file(path, digest)
    return digest.hexdigest()


def xxh_value(value: Any) -> str:
    """A content key for any JSON-able value."""
    return xxh_bytes(canonical_json(value))


def xxh_tree(root: Path) -> str:
    """A content key of a folder: relative paths, modes and contents, in sorted order."""
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            parts.append([rel, "l", os.readlink(path)])
        else:
            parts.append([rel, oct(path.stat().st_mode & 0o777), xxh_file(path)])
    return xxh_value(parts)


def read_json(path: Path) -> Any:
    with open(path, "rb") as handle:
        return json.load(handle)


LOCK_NAME = "lock"
SCRATCH_NAME = "tmp"  # the store's scratch folder (images.Store.tmp)


# The stores this thread holds the lock of: a command that holds it (planning a build, `lock`) may call
# one that takes it again, and a second flock on another open file would wait for itself forever. Another
# thread still waits, as another process does.
_HELD_STORES = threading.local()


@contextlib.contextmanager
def store_lock(cache: Path) -> Iterator[None]:
    """One writer at a time per store: a second build (or a gc) waits here instead of racing the first.

    Taking it removes what killed processes left in the store's tmp/ and its memory scratch (see
    `memory_scratch`); releasing it, what this process left there (an interrupted build's threads may
    still be at work). The folders in both are named by their process (`process_prefix`): one of a live
    process stays, as a monorepo's `doit` builds without the lock and its folders are in use.
    Taken again inside itself (in the same thread), it is already held: nothing more happens.
    """
    cache.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(cache)
    held: set[str] = _HELD_STORES.__dict__.setdefault("stores", set())
    if key in held:
        yield
        return
    with open(cache / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        in_memory = memory_scratch(cache)
        scratches = [cache / SCRATCH_NAME, *([] if in_memory is None else [in_memory])]
        for folder in scratches:
            clear_left_behind(folder, mine=False, drop_empty=folder == in_memory)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            # this process's folders are gone by now, unless an interrupted build's threads are still at
            # work (Ctrl-C, SIGTERM): the process is done with the store, so those go now, not next time
            for folder in scratches:
                clear_left_behind(folder, mine=True, drop_empty=folder == in_memory)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# Trees of many small files that never enter the store (the unpacked .debs of a component) are made in
# memory: ext4 took 3.2 s of system time to create the 117 MB a component's packages unpack to, a tmpfs
# 0.5 s. Only when it has room: a container's /dev/shm is often 64 MB.
SCRATCH_ENV = "DISTROKIT_SCRATCH"  # a folder for such trees; "store": always the store's own tmp/
DEFAULT_MEMORY_SCRATCH = Path("/dev/shm")


def memory_scratch(cache: Path) -> Path | None:
    """The folder where `cache`'s builds make such trees outside the store (None: in the store's tmp/).
    One folder per user and store, so taking a store's lock can clear what its killed builds left."""
    chosen = os.environ.get(SCRATCH_ENV, "")
    if chosen == "store":
        return None
    base = Path(chosen) if chosen else DEFAULT_MEMORY_SCRATCH
    return base / f"distrokit-{os.getuid()}" / xxh_value(os.path.realpath(cache))[:16]


def process_prefix(prefix: str) -> str:
    """The start of a scratch folder's name (in the store's tmp/ or its memory scratch): the process that
    owns it, then `prefix`."""
    return f"{os.getpid()}.{prefix}"


def clear_left_behind(folder: Path, mine: bool, drop_empty: bool = False) -> None:
    """Remove what is in a scratch folder whose process is gone (with `mine`, this process's too; and
    anything not named by a process, as older versions named them), then with `drop_empty` the folder
    if that empties it. A folder of a live process stays: it is in use."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if left_behind(name.split(".", 1)[0], mine):
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
    if drop_empty:
        with contextlib.suppress(OSError):
            folder.rmdir()


def left_behind(owner: str, mine: bool = False) -> bool:
    """Whether what process `owner` (its id, as a name gives it) made is garbage: the process is gone, or
    it is this one and `mine`, or the name gives no process."""
    if not owner.isdigit():
        return True
    return (int(owner) == os.getpid() and mine) or not _alive(int(owner))


def temp_file_owner(name: str) -> str:
    """The process id in the name of an `atomic_writer` temp file (`.TARGET.PID.RANDOM.tmp`), else ""."""
    fields = name.removesuffix(".tmp").rsplit(".", 2)
    return fields[1] if len(fields) == 3 else ""


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def room_in_memory_scratch(cache: Path, needed: int) -> Path | None:
    """`memory_scratch(cache)`, made and private to this user, when its file system has room for twice
    `needed` bytes (and, for the default /dev/shm, the memory is free as well) and lets programs in it
    run; else None."""
    folder = memory_scratch(cache)
    if folder is None:
        return None
    try:
        owner = folder.parent
        owner.parent.mkdir(parents=True, exist_ok=True)  # a DISTROKIT_SCRATCH folder that is not there yet
        owner.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(owner)
        # anyone may make folders in /dev/shm: one this user does not own, or a link, is not used
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
            return None
        folder.mkdir(mode=0o700, exist_ok=True)
        free = os.statvfs(folder)
    except OSError:
        return None
    if free.f_bavail * free.f_frsize < 2 * needed:
        return None
    if free.f_flag & os.ST_NOEXEC:  # as Docker mounts /dev/shm: a component's own busybox is run there
        return None
    if owner.parent == DEFAULT_MEMORY_SCRATCH and _available_memory() < 2 * needed:
        return None
    return folder


def _available_memory() -> int:
    """MemAvailable of /proc/meminfo in bytes (0 where it cannot be read: no memory is taken then)."""
    try:
        with open("/proc/meminfo", "rb") as handle:
            for line in handle:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
