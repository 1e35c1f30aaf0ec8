"""Audit mode's read check: a task's action opens only files the task declared (issue 24).

doit orders tasks by what they declare; a task that reads a file it does not declare works only
when the file's writer happened to run first (the `-j 2` race of issue 24). In audit mode every
action runs watched, as Bazel's sandbox and tup's file monitor watch theirs: a Python audit hook sees
each file the action opens (and each path it hands a tool it runs) under the store and the output
folders, and a read the task did not declare fails the build, naming the task and the file.

What counts as declared, for one task:
- its `file_dep`, its `targets`, and the targets of every task it depends on (by `task_dep`, or by
  a file_dep another task writes: doit orders those the same way);
- the store's content-addressed entries (`blobs/`, `layers/`, `segments/`, `kernels/`, `debs/`,
  `tools/`): a file there is named by the key of what it holds, and the task found that name in a
  declared input, so reading it is reading that input;
- what the action created itself (temporary files and folders), and folders (opened to sync them).
`image` and `component` tasks keep the store's names (`refs/`, `components/`, `pins/`): those are
theirs to read, as their up-to-date checks do.

The hook cannot be removed once added, so it is added only when audit mode first runs an action, and
then costs a set lookup per audit event outside watched actions: with audit off it is never added.
A watch is per thread (doit's `-P thread` runs actions on threads); threads an action starts itself
are not watched.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AuditError
from .identity import public_task_name
from .report import HandledFailure

ENTRY_FOLDERS = ("blobs", "layers", "segments", "kernels", "debs", "tools")
NAME_FOLDERS = ("refs", "components", "pins")  # what the image and component tasks keep and read
STORE_WRITERS = ("image", "component")
_EVENTS = frozenset({"open", "os.mkdir", "subprocess.Popen"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@dataclass(frozen=True, eq=False)
class Declared:
    """What one task may read: files by path, and folders (each ending in a separator) by prefix."""

    task: str
    files: frozenset[str]
    folders: tuple[str, ...]


@dataclass(eq=False)
class Watch:
    """One running action: what it may read, what it created, and the undeclared reads seen."""

    declared: Declared
    roots: tuple[str, ...]
    created: set[str] = field(default_factory=set)
    created_dirs: list[str] = field(default_factory=list)
    undeclared: dict[str, None] = field(default_factory=dict)

    def read(self, path: str) -> None:
        if not path.startswith(self.roots) or path in self.declared.files or path in self.created:
            return
        if path.startswith(self.declared.folders) or path.startswith(tuple(self.created_dirs)):
            return
        if not os.path.isdir(path):
            self.undeclared[path] = None

    def opened(self, target: Any, mode: Any, flags: int) -> None:
        path = _path(target)
        if path is None:
            return
        writes = any(c in mode for c in "wxa+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
        if writes:
            self.created.add(path)
        else:
            self.read(path)

    def handed(self, args: Any) -> None:
        """The paths a tool is given: an existing file under a root is one it will read."""
        for arg in args if isinstance(args, list | tuple) else ():
            text = os.fsdecode(arg) if isinstance(arg, str | bytes) else ""
            for candidate in (text, text.partition("=")[2]):
                if os.path.isabs(candidate) and os.path.isfile(candidate):
                    self.read(os.path.abspath(candidate))


def _path(target: Any) -> str | None:
    if isinstance(target, int):  # an open file descriptor: what it names was checked when opened
        return None
    return os.path.abspath(os.fsdecode(os.fspath(target)))


_current = threading.local()
_installed = threading.Lock()
_hooked: list[bool] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS:
        return
    watch: Watch | None = getattr(_current, "watch", None)
    if watch is None:
        return
    if event == "open":
        watch.opened(args[0], args[1], args[2] or 0)
    elif event == "os.mkdir":
        created = _path(args[0])
        if created is not None:
            watch.created_dirs.append(created + os.sep)
    else:
        watch.handed(args[1])


def install() -> None:
    """Add the audit hook, once per process."""
    with _installed:
        if not _hooked:
            sys.addaudithook(_hook)
            _hooked.append(True)


def watched_action(action: Callable[[], Any], declared: Declared, roots: tuple[str, ...], errors: list) -> Callable:
    """`action`, run under a watch: an undeclared read fails it (the error lands in `errors`)."""

    def run() -> Any:
        install()
        watch = Watch(declared, roots)
        _current.watch = watch
        try:
            result = action()
        finally:
            _current.watch = None
        if result is None and watch.undeclared:
            error = AuditError(undeclared_message(declared.task, list(watch.undeclared)))
            errors.append(error)
            return HandledFailure(str(error))
        return result

    return run


def undeclared_message(task: str, paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return (
        f"audit: {public_task_name(task)} read {shown}, which it does not declare "
        "(no file_dep, no target of a task it depends on): declare it, or doit may run it first"
    )


def _name(task: dict[str, Any]) -> str:
    return f"{task['basename']}:{task['name']}" if task.get("name") else task["basename"]


def _abs(paths: Iterable[Any]) -> list[str]:
    return [os.path.abspath(os.fspath(path)) for path in paths]


def declarations(tasks: Sequence[dict[str, Any]], store_root: Path) -> Iterator[Declared]:
    """What each task may read (see the module's docstring), in the tasks' order."""
    writer = {target: _name(task) for task in tasks for target in _abs(task.get("targets", ()))}
    targets = {_name(task): _abs(task.get("targets", ())) for task in tasks}
    root = os.path.abspath(store_root)
    for task in tasks:
        deps = _abs(task.get("file_dep", ()))
        upstream = {writer[dep] for dep in deps if dep in writer} | set(task.get("task_dep", ()))
        files = set(deps) | set(targets[_name(task)])
        for name in upstream:
            files.update(targets.get(name, ()))
        folders = ENTRY_FOLDERS + (NAME_FOLDERS if task["basename"] in STORE_WRITERS else ())
        yield Declared(_name(task), frozenset(files), tuple(os.path.join(root, f) + os.sep for f in folders))


def watched(tasks: Sequence[dict[str, Any]], store_root: Path, errors: list) -> list[dict[str, Any]]:
    """Copies of `tasks` whose actions run watched, under the store and the folders of their targets."""
    roots = {os.path.abspath(store_root) + os.sep}
    roots.update(os.path.dirname(target) + os.sep for task in tasks for target in _abs(task.get("targets", ())))
    ordered = tuple(sorted(roots))
    copies = []
    for task, declared in zip(tasks, declarations(tasks, store_root), strict=True):
        actions = [watched_action(action, declared, ordered, errors) for action in task.get("actions", ())]
        copies.append({**task, "actions": actions})
    return copies
