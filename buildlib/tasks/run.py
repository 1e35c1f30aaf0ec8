"""Running the task families through doit's own runner, from the CLI, tests or a user's dodo.py."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from doit.cmd_base import TaskLoader2
from doit.doit_cmd import DoitMain
from doit.loader import generate_tasks
from doit.task import DelayedLoader, Task

from ..errors import BuildError
from ..fsutil import released, store_lock
from ..lazy import lazy_module
from ..release import lockpath
from ..spec.model import Spec, load_spec
from ..store.images import Image, Store
from . import order, terms
from .audit import audit_enabled
from .families import BuildOptions, load_images
from .identity import public_task_name
from .keys import XXHashChecker
from .plan import Plan
from .portable import store_codec
from .report import RecordingReporter, TaskListener

if TYPE_CHECKING:  # audit mode's read watch and the lock files of a project's specs load when used
    from ..release import lock
    from . import reads
else:
    lock, reads = lazy_module("buildlib.release.lock"), lazy_module("buildlib.tasks.reads")


def doit_config(cache: Path, outstream: IO[str] | None = None) -> dict[str, Any]:
    """doit's settings for distrokit: its database in the cache, content checks, our reporter."""
    cache.mkdir(parents=True, exist_ok=True)
    return {
        "outfile": outstream if outstream is not None else io.StringIO(),
        "dep_file": str(cache / "doit.db"),
        "backend": "sqlite3",
        "check_file_uptodate": XXHashChecker,
        "codec_cls": store_codec(cache),  # paths in the store saved relative to it: the store can move
        "reporter": RecordingReporter,
        "verbosity": 0,
    }


LAYER_DOC = "Index every layer of the images, once per digest."


def layer_family(plan: Plan, prefix: str = "", seed: int | None = None, audit: bool = False) -> Task:
    """The `layer` group. Its tasks are created once the image tasks ran (the image records name the
    layers), in an order drawn from `seed`, watched in audit mode; the group is up to date by itself,
    so a run with nothing to do writes nothing for it. Without an image it has no task."""
    basename = f"{prefix}layer"

    def layer_tasks() -> Iterator[dict[str, Any]]:
        yield {"name": None, "doc": LAYER_DOC, "uptodate": [True]}
        found = [{"basename": basename, **task} for task in order.shuffled_dicts(plan.layer_tasks(), seed)]
        for task in reads.watched(found, plan.store.root, plan.sink.errors) if audit else found:
            yield {key: value for key, value in task.items() if key != "basename"}

    loader = DelayedLoader(layer_tasks, executed=f"{prefix}image") if plan.refs else None
    return Task(basename, None, loader=loader, doc=LAYER_DOC, uptodate=[True])


def plan_tasks(plan: Plan) -> list[Task]:
    """doit Task objects for a plan, the layer family created only once the images are recorded. In
    audit mode every action runs watched: an undeclared read fails it (see `reads`)."""
    dicts = [dict(task) for task in plan.tasks]  # doit pops keys: copies
    seed = order.shuffle_seed()
    audit = plan.audit or audit_enabled()
    if audit:
        dicts = reads.watched(dicts, plan.store.root, plan.sink.errors)
    tasks = list(generate_tasks("distrokit", (task for task in dicts)))
    tasks.append(layer_family(plan, seed=seed, audit=audit))
    return order.shuffled_tasks(tasks, seed)


class _Loader(TaskLoader2):  # type: ignore[misc]
    def __init__(self, plan: Plan, config: dict[str, Any]) -> None:
        super().__init__()
        self.plan = plan
        self.config = config

    def setup(self, opt_values: Any) -> None:
        pass

    def load_doit_config(self) -> dict[str, Any]:
        return self.config

    def load_tasks(self, cmd: Any, pos_args: Any) -> list[Any]:
        return plan_tasks(self.plan)


@dataclass(frozen=True, eq=False)
class BuildReport:
    """What a build did: the tasks whose actions ran (`fetched` among them: those whose result came
    from a shared cache), the tasks up to date, and seconds per task that ran and in all."""

    executed: tuple[str, ...]
    up_to_date: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # how the spec and its lock disagree, when not --locked
    seconds: dict[str, float] = field(default_factory=dict)  # how long each task that ran took
    fetched: tuple[str, ...] = ()  # tasks among `executed` whose result came from a shared cache
    total_seconds: float = 0.0


@contextlib.contextmanager
def _std_streams_kept() -> Iterator[None]:
    """doit swaps sys.stdout and sys.stderr around each action to capture them; with -P thread two
    actions interleave their swaps and can leave a capture buffer in place. Put the real ones back."""
    stdout, stderr = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr


@contextlib.contextmanager
def _replaced_files_released() -> Iterator[None]:
    """Outputs replaced during the run are freed on threads (fsutil.replace_releasing) while the run
    ends: a caller sees none of their hidden names left once the run returns or fails."""
    try:
        yield
    finally:
        released()


def run_plan(
    plan: Plan,
    args: Sequence[str] = (),
    outstream: IO[str] | None = None,
    listener: TaskListener | None = None,
    debug: bool = False,
) -> BuildReport:
    """Run a plan through doit's own runner; raise the first DistrokitError an action raised (reported
    by nobody else: doit's failure block only when `debug`). `listener` hears every task start and end."""
    cache = plan.store.root
    config = doit_config(cache, outstream)
    options = {"failure_verbosity": 2 if debug else 0}
    reporter = RecordingReporter(config["outfile"], options, listener=listener, echo_handled=False)
    config["reporter"] = reporter
    # GLOBAL holds option defaults for every doit command; `config_filenames=()` keeps a project's
    # pyproject.toml or doit.cfg in the working folder from changing how distrokit runs doit.
    main = DoitMain(_Loader(plan, config), config_filenames=(), extra_config={"GLOBAL": config})
    started = time.monotonic()
    with store_lock(cache), _std_streams_kept(), _replaced_files_released():
        code = 1  # unless doit returns: an interrupt fails the build too
        try:
            code = main.run(["run", *args])
        finally:  # a failure leaves the output folders with the last good build's files, all of them
            if plan.sink.errors or code != 0:
                plan.discard_staged()
        if plan.sink.errors:
            raise plan.sink.errors[0]
        if code != 0:
            raise BuildError(f"doit failed (exit {code}); run with --debug for details")
        if plan.audit or audit_enabled():
            plan.audit_up_to_date(reporter.skipped)
        plan.record_usage()
    executed = tuple(public_task_name(name) for name in reporter.executed)
    skipped = tuple(public_task_name(name) for name in reporter.skipped)
    total = round(time.monotonic() - started, 3)
    return BuildReport(executed, skipped, tuple(plan.warnings), dict(reporter.seconds), total_seconds=total)


def add_spec(plan: Plan, spec: Spec, options: BuildOptions, component_root: Path) -> None:
    """The spec's tasks, each with the readable record of its inputs `explain` compares (see terms);
    `doit clean` removes what the output tasks wrote."""
    first = len(plan.tasks)
    plan.add_spec(spec, options, component_root)
    added = plan.tasks[first:]  # the tasks made before are another spec's, or this spec's shared images'
    terms.attach(added, plan.store, spec, options)
    for task in added:
        if task["basename"] == "output":
            task.setdefault("clean", True)


# What `doit list` says of each family (a dodo.py yields these before the plan's tasks).
FAMILY_DOCS = {
    "component": "Build a component image from Debian packages (components/NAME) into the store.",
    "image": "Make sure an image a spec names is in the store, pulling it when missing, and record its digests.",
    "part": "Write one compressed segment of a spec's root (kernel modules, init, a container, files).",
    "output": "Write a spec's boot media (kernel+initrd, tar) into the output folder; `doit clean` removes them.",
    "usage": "Record what a spec's last build used, so `distrokit cache gc` keeps it.",
}


def family_groups(prefix: str = "") -> list[dict[str, Any]]:
    """One group task per family with its own description, for `doit list`. A group has no action of
    its own and is up to date by itself: else doit counts it as run and writes its record into its
    database on every run, one with nothing to do included."""
    return [
        {"basename": prefix + name, "name": None, "doc": doc, "uptodate": [True]} for name, doc in FAMILY_DOCS.items()
    ]


def plan_build(spec_paths: Sequence[Path], options: BuildOptions, component_root: Path) -> Plan:
    """The plan of a build. Planning writes the store too (a recipe's first .deb pins), so it holds the
    store lock: a `cache gc` meanwhile would take a pin's half-written file for a killed write's."""
    plan = Plan(Store(options.cache, options.arch), components=component_root)
    with store_lock(options.cache):
        spec = load_spec(spec_paths, resolve_pkg=plan.resolver)
        add_spec(plan, spec, options, component_root)
    return plan


def build_spec(
    spec_paths: Sequence[Path],
    options: BuildOptions,
    component_root: Path,
    jobs: int = 1,
    outstream: IO[str] | None = None,
    listener: TaskListener | None = None,
    debug: bool = False,
) -> BuildReport:
    plan = plan_build(spec_paths, options, component_root)
    report = run_plan(plan, jobs_args(jobs), outstream, listener, debug)
    if options.shared is not None:
        report = dataclasses.replace(report, fetched=tuple(options.shared.fetched))
    return report


def jobs_args(jobs: int) -> list[str]:
    """doit's arguments for running `jobs` tasks at once (threads: the work is subprocesses and I/O)."""
    return ["-n", str(jobs), "-P", "thread"] if jobs > 1 else []


def ensure_images(
    spec_paths: Sequence[Path], options: BuildOptions, component_root: Path, outstream: IO[str] | None = None
) -> tuple[Spec, dict[str, Image]]:
    """Only the component and image tasks of a spec: every image in the store, loaded (for `sbom`)."""
    options = dataclasses.replace(options, formats=())  # it writes no output: no format's needs apply
    plan = Plan(Store(options.cache, options.arch), components=component_root)
    with store_lock(options.cache):  # planning may pin .debs: see plan_build
        spec = load_spec(spec_paths, resolve_pkg=plan.resolver)
        add_spec(plan, spec, options, component_root)
    plan.tasks = [task for task in plan.tasks if task["basename"] in ("component", "image")]
    plan.refs, plan.uses = [], []  # no layers to index, and no build to record for gc
    run_plan(plan, (), outstream)
    return spec, load_images(plan.store, list(spec.images()))


def project_plan(spec_dir: Path, out_dir: Path, cache: Path, component_root: Path) -> Plan:
    """Every spec in `spec_dir`, built into `out_dir` (what `doit` runs from dodo.py)."""
    plan = Plan(Store(cache), components=component_root)
    for spec_file in sorted(spec_dir.glob("*.yml")):
        spec = load_spec([spec_file], resolve_pkg=plan.resolver)
        lock_file = lockpath.path_for(spec_file)
        pins = lock.read(lock_file) if lock_file.is_file() else None
        options = BuildOptions(cache=cache, out_dir=out_dir, name=spec_file.stem, lock=pins, lock_file=str(lock_file))
        add_spec(plan, spec, options, component_root)
    return plan
