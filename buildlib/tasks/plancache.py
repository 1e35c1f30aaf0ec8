"""A monorepo's plan cache: a spec whose files and options have not changed is not planned again (issue 29).

Planning a spec (parsing it, resolving its components, making its part and output tasks with their
keys) took most of a no-change `doit` run of a 200-spec monorepo. Once a spec is planned, its part
and output tasks are kept as data in `build/<state>/plan.json`: names, dependencies, targets, input
keys, and what their store checks look at. The next `doit` process takes them from there when
nothing planning read has changed, and plans the spec for real only when one of its tasks runs.

What planning reads, and how each is checked (as the build stamp is, see store.stamp):
- the spec files: size, mtime, ctime and inode, and when those differ, their content (a spec touched
  or checked out again is still the same plan); a file changed within two seconds of the moment its
  plan was saved may change again unseen within one timestamp tick, so its content is compared every
  time (git's racily clean files);
- the component folders its images come from, and the folders components are looked up in (the
  project's and the built-in ones: a new folder may take a name over): every file and folder in
  them, by stat (size, mtime, ctime, inode); a plan is not saved while one of them changed in the
  last two seconds;
- the options, the environment planning reads (HOME, SOURCE_DATE_EPOCH, DISTROKIT_*), the working
  folder, the zlib and compressor versions, and distrokit's own modules (by stat).

A cached task's action plans its spec for real (once per process) and runs the real task's action;
what the task saves for the next run (its input keys, explain's terms) is the real task's, and real
keys other than the cached ones drop the entry. Not cached: audit mode (it recomputes everything),
locks, --input-tar, a shared cache, LinuxKit package folders, `files` with a `source` (another task
may write it, and its key is taken when the task is checked).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..fsutil import canonical_json, write_hint, xxh_file, xxh_value
from ..outputs.staging import WrittenOutputs
from ..spec.model import Spec, load_spec
from ..store import stamp
from ..store.images import Store
from .families import BuildOptions, component_folder, pointer_path, record_path, segment_sealed, state_dir
from .identity import PUBLISH_META, spec_state_id
from .keys import RACY_NS, SAVED_KEYS, InputKeys
from .plan import Plan, SpecUse
from .run import add_spec
from .terms import Terms

PLAN_FILE = "plan.json"
CACHE_VERSION = 1
CACHED_FAMILIES = ("part", "output")  # a spec's own tasks; its images and components are planned each time
_PLAIN_FIELDS = ("basename", "name", "doc", "file_dep", "targets", "task_dep", "verbosity", "clean", "meta")


def plan_file(store: Store, state: str) -> Path:
    return state_dir(store, state) / PLAN_FILE


@functools.cache
def _code_key() -> str:
    return xxh_value(stamp.code_state())


def _state(path: str) -> list[int]:
    """Size, mtime, ctime and inode: the ctime moves with every write, even one whose mtime was set back."""
    try:
        st = os.stat(path)
    except OSError:
        return [-1, 0, 0, 0]
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


@functools.cache
def _tree(folder: str) -> tuple[str, int]:
    """Every file and folder under `folder` by state, as one key, and the time of the latest change
    among them (once per process: many specs share a component)."""
    states: list[list[Any]] = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        states.extend([path, *_state(path)] for path in [top, *(os.path.join(top, name) for name in sorted(files))])
    return xxh_value(states), max((max(state[2], state[3]) for state in states), default=0)


def spec_inputs(files: Sequence[Path]) -> list[list[Any]]:
    """[path, size, mtime, ctime, inode, content key] of each spec file, taken before planning reads it."""
    taken = []
    for file in files:
        path = str(Path(file).resolve())
        state = _state(path)
        taken.append([path, *state, xxh_file(Path(path)) if state[0] >= 0 else ""])
    return taken


def surroundings(component_root: Path) -> dict[str, Any] | None:
    """What every spec's plan depends on besides its files and options, read once for all the specs of
    one `distrokit_tasks` call (reading the environment for each spec was a tenth of a no-change run's
    planning); None in audit mode, which recomputes what is up to date: it plans for real."""
    if os.environ.get("DISTROKIT_AUDIT"):
        return None
    environment = {key: value for key, value in os.environ.items() if key.startswith("DISTROKIT_")}
    return {
        "version": CACHE_VERSION,
        "components": str(component_root),
        "cwd": os.getcwd(),  # relative paths are read from here
        "environment": {
            **environment,
            "HOME": os.environ.get("HOME", ""),
            "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", ""),
        },
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "code": _code_key(),
    }


def context(options: BuildOptions, around: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a spec's plan depends on besides its files (`around`: surroundings()); None when these
    options are not cached."""
    if around is None:
        return None
    if options.audit or options.lock is not None or options.input_tar is not None or options.shared is not None:
        return None
    values = {
        field.name: repr(getattr(options, field.name))
        for field in dataclasses.fields(options)
        if field.name not in ("transfer_listener", "lock", "shared")
    }
    if any(" at 0x" in text for text in values.values()):  # an object without a stable description
        return None
    return {**around, "options": values, "compressor": options.compression.version()}


# saving --------------------------------------------------------------------------------------
def _check_data(check: Any, task: dict[str, Any]) -> dict[str, Any] | None:
    """One up-to-date check as data, or None when it is none of the kinds kept here."""
    if type(check) is InputKeys:
        return {"keys": check.keys}
    if isinstance(check, Terms):
        return {"terms": True}
    if isinstance(check, functools.partial) and check.func is segment_sealed:
        return {"sealed": str(check.args[1])}
    if isinstance(check, WrittenOutputs):
        return {"written": str(check.record), "finals": [str(path) for path in check.finals]}
    if (task.get("meta") or {}).get(PUBLISH_META) and callable(check):
        return {"published": True}
    return None


def _task_data(task: dict[str, Any]) -> dict[str, Any] | None:
    if set(task) - {*_PLAIN_FIELDS, "actions", "uptodate"}:
        return None
    checks = [_check_data(check, task) for check in task.get("uptodate", ())]
    if any(check is None for check in checks) or sum("keys" in check for check in checks if check) > 1:
        return None
    return {**{key: task[key] for key in _PLAIN_FIELDS if key in task}, "checks": checks}


def save(
    plan: Plan,
    spec: Spec,
    options: BuildOptions,
    component_root: Path,
    ctx: dict[str, Any] | None,
    before: list[list[Any]],
) -> None:
    """Keep the plan of `spec` (just added to `plan`) for the next process, when it can be kept.
    `before`: spec_inputs() of its files, taken before it was read."""
    state = spec_state_id(options.name, spec.files_read, plan.store.root)
    target = plan_file(plan.store, state)
    target.unlink(missing_ok=True)  # whatever is saved below, an older plan of this state is stale
    if ctx is None or any(item.source is not None for item in spec.files):
        return
    images: list[list[Any]] = []
    for ref in spec.images():
        if ref in plan.resolver.packages:
            return
        folder = component_folder(ref, component_root, plan.resolver)
        images.append([ref, str(folder) if folder is not None else None])
    own = [task for task in plan.tasks if task["basename"] in CACHED_FAMILIES and _is_own(task["name"], state)]
    tasks = [_task_data(task) for task in own]
    if not tasks or any(task is None for task in tasks):
        return
    now = time.time_ns()
    files = []
    for path, *taken, content in before:
        if _state(path) != taken:  # changed while it was planned
            return
        # changed within a timestamp tick of now: a change in the same tick would show in no stat
        files.append([path, *taken, content, now - max(taken[1], taken[2]) < RACY_NS])
    # the folders `distrokit/NAME` is looked up in (a new component there may take a name over) too
    roots = {str(root) for root in plan.resolver.roots} | {str(component_root)}
    folders = sorted({folder for _, folder in images if folder is not None} | roots)
    if any(now - _tree(folder)[1] < RACY_NS for folder in folders):
        return  # a component changed a moment ago: plan it again next time rather than trust its stats
    use = next(use for use in plan.uses if use.state == state)
    entry = {
        "context": ctx,
        "files": files,
        "folders": {folder: _tree(folder)[0] for folder in folders},
        "images": images,
        "use": {"name": use.name, "files": list(use.files), "refs": list(use.refs), "parts": list(use.parts)},
        "usage_deps": usage_deps(plan.store, use),
        "tasks": tasks,
    }
    write_hint(target, canonical_json(entry))


def usage_deps(store: Store, use: SpecUse) -> list[str]:
    """The file dependencies of a spec's usage task: its parts' pointers and its images' records."""
    pointers = [str(pointer_path(store, use.state, part)) for part in use.parts]
    return pointers + [str(record_path(store, ref)) for ref in use.refs]


def _is_own(name: str, state: str) -> bool:
    return name == state or name.startswith(f"{state}/")


# loading -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CachedSpec:
    """A spec's plan as the last process saved it: its images (with their component folders), what it
    uses (for its usage task), and its part and output tasks, with actions that plan it for real."""

    images: tuple[tuple[str, Path | None], ...]
    use: SpecUse
    tasks: tuple[dict[str, Any], ...]
    usage_deps: tuple[str, ...]


def load(
    store: Store, files: Sequence[Path], options: BuildOptions, component_root: Path, ctx: dict[str, Any] | None
) -> CachedSpec | None:
    """The cached plan of the spec built from `files` with `options`, or None when it may be stale."""
    if ctx is None:
        return None
    state = spec_state_id(options.name, [str(path) for path in files], store.root)
    try:
        entry = json.loads(plan_file(store, state).read_bytes())
        if entry["context"] != ctx or not _files_unchanged(entry["files"]):
            return None
        if any(_tree(folder)[0] != key for folder, key in entry["folders"].items()):
            return None
        used = entry["use"]
        use = SpecUse(used["name"], state, tuple(used["files"]), tuple(used["refs"]), tuple(used["parts"]))
        images = tuple((ref, _folder_path(folder)) for ref, folder in entry["images"])
        real = RealPlan(store, files, options, component_root, plan_file(store, state))
        tasks = tuple(_restored(task, real) for task in entry["tasks"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return CachedSpec(images, use, tasks, tuple(entry["usage_deps"]))


@functools.cache
def _folder_path(folder: str | None) -> Path | None:
    return Path(folder) if folder else None


def _files_unchanged(saved: list[list[Any]]) -> bool:
    """Each spec file as it was planned: the same state, else (or when it was racy) the same bytes."""
    for path, *state, content, racy in saved:
        if not racy and _state(path) == state:
            continue
        try:
            if xxh_file(Path(path)) != content:  # another state, the same bytes: still the same spec
                return False
        except OSError:
            return False
    return True


def _restored(data: dict[str, Any], real: RealPlan) -> dict[str, Any]:
    task = {key: data[key] for key in _PLAIN_FIELDS if key in data}
    name = (task["basename"], task["name"])
    keys: dict[str, str] | None = None
    probes: list[Callable[[], bool]] = []
    for check in data["checks"]:
        if "keys" in check:
            keys = check["keys"]
        elif "sealed" in check:
            probes.append(functools.partial(segment_sealed, real.store, check["sealed"]))
        elif "written" in check:
            probes.append(functools.partial(_written, check["written"], tuple(check["finals"])))
        elif "published" in check:
            probes.append(real.nothing_staged)
    task["actions"] = [RealAction(real, name, keys)]
    task["uptodate"] = [CachedCheck(real, name, keys, tuple(probes))]
    return task


def _written(record: str, finals: tuple[str, ...]) -> bool:
    return WrittenOutputs(Path(record), tuple(Path(final) for final in finals))()


class CachedCheck:
    """A cached task's whole up-to-date check in one call: its saved keys against the cached ones, then
    the store and output checks. After its action ran, it saves what the real task saves."""

    # doit inspects an uptodate callable's signature for its `task` and `values` arguments, each time it
    # checks the task: a signature given here is found at once (inspect builds none)
    __signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("task", "values")]
    )

    def __init__(
        self, real: RealPlan, name: tuple[str, str], keys: dict[str, str] | None, probes: tuple[Callable[[], bool], ...]
    ) -> None:
        self.real, self.name, self.keys, self.probes = real, name, keys, probes

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(lambda: self.real.saved_values(self.name))

    def __call__(self, task: Any, values: dict[str, Any]) -> bool:
        if self.keys is not None and values.get(SAVED_KEYS) != self.keys:
            return False
        return all(probe() for probe in self.probes)

    def changes(self, values: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
        return InputKeys(self.keys or {}).changes(values)


class RealAction:
    """A cached task's action: the real task's, from the spec planned for real. Real keys other than
    the cached ones drop the entry (what the task saves is the real task's either way)."""

    def __init__(self, real: RealPlan, name: tuple[str, str], keys: dict[str, str] | None) -> None:
        self.real, self.name, self.keys = real, name, keys

    def __call__(self) -> Any:
        task = self.real.task(self.name)
        real_keys = [check.keys for check in task.get("uptodate", ()) if type(check) is InputKeys]
        if (real_keys[0] if real_keys else None) != self.keys:
            self.real.entry.unlink(missing_ok=True)
        for action in task["actions"]:
            result = action()
            if result is not None and result is not True:
                return result
        return None


class RealPlan:
    """One cached spec planned for real, the first time one of its tasks runs (then shared by all)."""

    def __init__(self, store: Store, files: Sequence[Path], options: BuildOptions, component_root: Path, entry: Path):
        self.store, self.files, self.options = store, files, options
        self.component_root, self.entry = component_root, entry
        self._plan: Plan | None = None
        self._tasks: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def task(self, name: tuple[str, str]) -> dict[str, Any]:
        with self._lock:
            if self._plan is None:
                plan = Plan(self.store, components=self.component_root)
                spec = load_spec(self.files, resolve_pkg=plan.resolver)
                add_spec(plan, spec, self.options, self.component_root)
                self._tasks = {(task["basename"], task["name"]): task for task in plan.tasks}
                self._plan = plan
        real = self._tasks.get(name)
        if real is None:  # the spec no longer makes this task: the cache was stale
            self.entry.unlink(missing_ok=True)
            raise KeyError(f"{self.files}: planned again, it has no task {name[0]}:{name[1]}; run the build again")
        return real

    def nothing_staged(self) -> bool:
        """The publish task's check: no output task of this spec staged files in this process."""
        plan = self._plan
        return plan is None or not any(output_set.pending() for output_set in plan.output_sets)

    def saved_values(self, name: tuple[str, str]) -> dict[str, Any]:
        """What the real task saves after its action: its input keys and explain's terms."""
        task = self.task(name)
        savers: list[Callable[[], dict[str, Any]]] = []
        holder = _Savers(savers)
        for check in task.get("uptodate", ()):
            if hasattr(check, "configure_task"):
                check.configure_task(holder)
        values: dict[str, Any] = {}
        for saver in savers:
            values.update(saver())
        return values


@dataclasses.dataclass
class _Savers:
    value_savers: list[Callable[[], dict[str, Any]]]
