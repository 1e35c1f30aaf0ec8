"""buildlib.fsutil: the write-out head start keeps every byte and never gets in a stream's way; a big
file an atomic write replaces is freed on a thread and leaves no second name behind."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from buildlib import fsutil
from buildlib.fsutil import Writeback, atomic_writer, write_hint
from buildlib.store.images import Store


def test_writeback_started_along_the_way_keeps_every_byte(tmp_path: Path) -> None:
    chunks = [os.urandom(300_000) for _ in range(12)]
    target = tmp_path / "out.img"
    with atomic_writer(target) as out:
        writeback = Writeback(out, every=1 << 20)
        for chunk in chunks:
            out.write(chunk)
            writeback.wrote()
        assert writeback.started is not None and writeback.started > 0  # started at least once before the end
    assert target.read_bytes() == b"".join(chunks)


def test_writeback_on_a_stream_without_a_position_does_nothing() -> None:
    class Pipe(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            return len(data)

        def tell(self) -> int:
            raise OSError("illegal seek")

    pipe = io.BufferedWriter(Pipe())
    writeback = Writeback(pipe, every=1)
    pipe.write(b"x" * 10)
    writeback.wrote()
    assert writeback.started is None  # nothing to start on a pipe


def _hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_a_big_replaced_file_is_freed_after_the_new_one_is_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsutil, "RELEASE_AFTER", 1000)
    target = tmp_path / "out-initrd.img"
    target.write_bytes(b"old" * 1000)
    old_inode = target.stat().st_ino
    with atomic_writer(target) as out:
        out.write(b"new" * 1000)
    assert target.read_bytes() == b"new" * 1000
    fsutil.released()
    assert _hidden(tmp_path) == []
    assert target.stat().st_ino != old_inode


def test_a_small_file_or_one_with_other_names_is_replaced_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsutil, "RELEASE_AFTER", 1000)
    small, linked, other = tmp_path / "small", tmp_path / "linked", tmp_path / "other-name"
    small.write_bytes(b"s")
    linked.write_bytes(b"l" * 2000)
    os.link(linked, other)
    for target in (small, linked):
        with atomic_writer(target) as out:
            out.write(b"new")
    assert not fsutil._releasing  # nothing was set aside: no thread to wait for
    assert other.read_bytes() == b"l" * 2000  # the user's own second name keeps the old bytes
    assert _hidden(tmp_path) == []


def test_a_name_left_aside_by_a_killed_build_goes_at_the_next_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsutil, "RELEASE_AFTER", 1000)
    target = tmp_path / "out[1].img"  # glob characters in the name are taken literally
    target.write_bytes(b"x" * 2000)
    stale = tmp_path / ".out[1].img.0badc0de.old"
    stale.write_bytes(b"y" * 2000)
    unrelated = tmp_path / ".other.img.0badc0de.old"
    unrelated.write_bytes(b"z")
    with atomic_writer(target) as out:
        out.write(b"new" * 1000)
    fsutil.released()
    assert _hidden(tmp_path) == [unrelated.name]


def test_a_failed_write_keeps_the_old_big_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "RELEASE_AFTER", 1000)
    target = tmp_path / "out.img"
    target.write_bytes(b"old" * 1000)
    with pytest.raises(RuntimeError), atomic_writer(target) as out:
        out.write(b"half")
        raise RuntimeError("the writer failed")
    fsutil.released()
    assert target.read_bytes() == b"old" * 1000
    assert _hidden(tmp_path) == []


def test_the_store_lock_taken_again_in_one_thread_is_held_and_another_thread_waits(tmp_path: Path) -> None:
    import threading

    from buildlib.fsutil import store_lock

    order: list[str] = []

    def other() -> None:
        with store_lock(tmp_path):
            order.append("other")

    with store_lock(tmp_path), store_lock(tmp_path):  # nested: it does not wait for itself
        waiting = threading.Thread(target=other)
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive()  # the other thread waits, as another process would
        order.append("first done")
    waiting.join(timeout=10)
    assert order == ["first done", "other"]


def test_a_hint_replaces_the_file_whole_and_leaves_no_temporary_name(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "stamp.json"
    write_hint(target, b"first")
    write_hint(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert [path.name for path in target.parent.iterdir()] == ["stamp.json"]


def test_the_memory_scratch_is_per_user_and_store_and_store_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "link").symlink_to(store)
    monkeypatch.delenv(fsutil.SCRATCH_ENV, raising=False)
    default = fsutil.memory_scratch(store)
    assert default is not None and default.parent == Path("/dev/shm") / f"distrokit-{os.getuid()}"
    assert fsutil.memory_scratch(tmp_path / "link") == default  # the store, however it is named
    assert fsutil.memory_scratch(tmp_path / "other") != default
    monkeypatch.setenv(fsutil.SCRATCH_ENV, str(tmp_path / "fast"))
    chosen = fsutil.memory_scratch(store)
    assert chosen is not None and chosen.parent == tmp_path / "fast" / f"distrokit-{os.getuid()}"
    monkeypatch.setenv(fsutil.SCRATCH_ENV, "store")
    assert fsutil.memory_scratch(store) is None
    assert fsutil.room_in_memory_scratch(store, 1) is None


def test_the_memory_scratch_is_taken_only_with_room_and_only_when_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fsutil.SCRATCH_ENV, str(tmp_path / "fast"))
    store = tmp_path / "store"
    folder = fsutil.room_in_memory_scratch(store, 1 << 20)
    assert folder == fsutil.memory_scratch(store) and folder.is_dir()
    assert os.stat(folder).st_mode & 0o777 == 0o700 and os.stat(folder.parent).st_mode & 0o777 == 0o700
    free = os.statvfs(folder)
    assert fsutil.room_in_memory_scratch(store, free.f_bavail * free.f_frsize) is None  # not twice over
    folder.parent.chmod(0o755)  # another user could look in, or swap a folder for a link
    assert fsutil.room_in_memory_scratch(store, 1) is None
    folder.parent.chmod(0o700)
    monkeypatch.setenv(fsutil.SCRATCH_ENV, str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / f"distrokit-{os.getuid()}").symlink_to(tmp_path / "fast" / f"distrokit-{os.getuid()}")
    assert fsutil.room_in_memory_scratch(store, 1) is None


def test_the_store_lock_clears_what_killed_builds_left_in_its_memory_scratch_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    monkeypatch.setenv(fsutil.SCRATCH_ENV, str(tmp_path / "fast"))
    killed = subprocess.Popen(["true"])
    killed.wait()  # a process that is gone, as a killed build is
    running = subprocess.Popen(["sleep", "60"])  # a lockless build (a monorepo's doit) still at work
    try:
        mine, other = tmp_path / "mine", tmp_path / "other"
        for store in (mine, other):
            left = fsutil.room_in_memory_scratch(store, 1)
            assert left is not None
            for pid in (killed.pid, running.pid):
                (left / f"{pid}.kernel-x").mkdir()
                (left / f"{pid}.kernel-x" / "file").write_bytes(b"unpacked")
        scratch = fsutil.memory_scratch(mine)
        assert scratch is not None
        with fsutil.store_lock(mine):
            assert sorted(path.name for path in scratch.iterdir()) == [f"{running.pid}.kernel-x"]
            (scratch / fsutil.process_prefix("rngd-")).mkdir()  # an interrupted build's own thread's
        assert sorted(path.name for path in scratch.iterdir()) == [f"{running.pid}.kernel-x"]
        assert len(list(fsutil.memory_scratch(other).iterdir())) == 2  # type: ignore[union-attr]
    finally:
        running.kill()
        running.wait()
    with fsutil.store_lock(mine):
        pass
    assert not scratch.exists()  # its last tree's process gone: the folder goes too


def test_the_store_lock_clears_what_killed_processes_left_in_its_tmp_and_no_other(tmp_path: Path) -> None:
    import subprocess

    store = Store(tmp_path / "store")
    killed = subprocess.Popen(["true"])
    killed.wait()
    running = subprocess.Popen(["sleep", "60"])  # a monorepo's doit, pulling without the lock
    try:
        store.tmp.mkdir(parents=True)
        for name in (f"{killed.pid}.pull-x", f"{running.pid}.pull-x", "buildah-older"):
            (store.tmp / name / "blobs").mkdir(parents=True)
        with fsutil.store_lock(store.root):
            assert sorted(path.name for path in store.tmp.iterdir()) == [f"{running.pid}.pull-x"]
            with store.tempdir("pull-") as mine:
                assert mine.name.startswith(f"{os.getpid()}.pull-")
                (store.tmp / fsutil.process_prefix("interrupted")).mkdir()  # a thread of this build's, still at work
        assert sorted(path.name for path in store.tmp.iterdir()) == [f"{running.pid}.pull-x"]
    finally:
        running.kill()
        running.wait()
