"""The world of the cache-truth property test: small images in a real registry, a spec model that
edits can change, and a check that an incremental build gives the bytes a clean build gives.

Shared by tests/tasks/test_cache_truth.py (a bounded run) and benchmarks/cache_truth.py (a long run). The
images are tiny and synthetic (a fake kernel with a modules tar, an init, three app images in two
tags each) so that a clean build costs well under a second: the clean store is a hard-linked copy
of a store that holds only the pulled images.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from hypothesis import strategies as st
from layerkit import M, store_layer

from buildlib import tasks
from buildlib.debian.recipes import PACKAGES_LABEL
from buildlib.errors import DistrokitError
from buildlib.outputs import get_format
from buildlib.outputs.compress import Compression
from buildlib.spec.refs import ImageRef
from buildlib.store import pulls
from buildlib.store.images import Store
from buildlib.store.transport import Network
from buildlib.tasks.order import SHUFFLE_ENV
from buildlib.upkeep import cache

APPS = ("alpha", "beta", "gamma")
TAGS = ("v1", "v2")
MOBY_LABEL = "org.mobyproject.config"


# images -------------------------------------------------------------------------------------
def _modules_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in (
            ("lib/modules/6.1.0/kernel/virtio.ko", b"virtio" * 50),
            ("lib/modules/6.1.0/modules.dep", b""),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _image_layers(name: str, tag: str) -> list[M]:
    if name == "kernel":
        return [
            M("kernel", data=b"\x7fKERNEL" + b"k" * 4000),
            M("kernel.tar", data=_modules_tar()),
            M("boot/vmlinuz", data=b"\x7fOTHER KERNEL" + b"o" * 3000),
        ]
    if name == "init":
        return [M("sbin"), M("sbin/init", data=b"#!/bin/sh\nexec sh\n", mode=0o755), M("etc", "d", mode=0o755)]
    return [
        M("bin", "d", mode=0o755),
        M("bin/app", data=f"#!/bin/sh\necho {name} {tag}\n".encode(), mode=0o755),
        M("etc", "d", mode=0o755),
        M(f"etc/{name}.conf", data=f"{name}={tag}\n".encode() * (3 if tag == "v2" else 1)),
    ]


def _config(name: str, tag: str, diff_ids: list[str]) -> dict[str, object]:
    labels = {PACKAGES_LABEL: json.dumps([[f"{name}-pkg", f"1.{tag}"], ["libc6", "2.36"]])}
    if name == "beta":  # an image whose label sets defaults the spec may override
        labels[MOBY_LABEL] = json.dumps({"capabilities": ["CAP_NET_ADMIN"], "binds": ["/etc:/hostetc:ro"]})
    runtime = {"Labels": labels, "Entrypoint": ["/bin/app"], "Env": [f"APP={name}"]}
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }


def image_names() -> list[tuple[str, str]]:
    return [("kernel", "1"), ("init", "1")] + [(app, tag) for app in APPS for tag in TAGS]


def push_images(source: Store, host: str, network: Network) -> None:
    """Make every image of the world in `source` and push it to the registry at `host`."""
    for name, tag in image_names():
        layer = store_layer(source, _image_layers(name, tag), compress=True)
        ref = ImageRef.parse(f"{host}/truth/{name}:{tag}")
        source.write_image(ref, _config(name, tag, [layer.diff_id]), [(layer.digest, layer.size, layer.media_type)])
        pulls.push(source, ref, str(ref), network=network)


def pull_images(store: Store, host: str, network: Network) -> None:
    for name, tag in image_names():
        pulls.pull(store, ImageRef.parse(f"{host}/truth/{name}:{tag}"), network=network)


def copy_store(pulled: Path, target: Path, debs: Path | None = None) -> Path:
    """A clean store: the pulled images only (hard links: every store file is replaced, never rewritten)."""
    shutil.copytree(pulled, target, copy_function=os.link, symlinks=True, ignore=shutil.ignore_patterns("lock"))
    if debs is not None and not (target / "debs").exists():
        (target / "debs").symlink_to(debs, target_is_directory=True)
    return target


# the spec model -----------------------------------------------------------------------------
BIND_CHOICES = ("/etc:/hostetc:ro", "/var/log:/var/log", "data:/data", "cache:/cache:ro")
CAPABILITY_CHOICES = ("CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE", "all")
VOLUME_CHOICES = ("data", "cache")


@dataclass(frozen=True)
class Box:
    """One onboot, service or onshutdown container."""

    name: str
    app: str = "alpha"
    tag: str = "v1"
    command: tuple[str, ...] | None = None
    env: tuple[str, ...] | None = None
    capabilities: tuple[str, ...] | None = None
    binds: tuple[int, ...] | None = None  # indexes into BIND_CHOICES
    readonly: bool | None = None
    net: str | None = None
    pid: str | None = None


@dataclass(frozen=True)
class FileItem:
    path: str
    contents: str | None = None
    source: str | None = None  # a name in SpecModel.sources
    mode: str | None = None
    uid: int | str | None = None
    kind: str = "file"  # or directory, symlink, metadata (the merged spec as json)


@dataclass(frozen=True)
class Source:
    name: str
    data: bytes
    mode: int = 0o644
    uid: int = 0


@dataclass(frozen=True)
class SpecModel:
    onboot: tuple[Box, ...] = ()
    services: tuple[Box, ...] = ()
    onshutdown: tuple[Box, ...] = ()
    files: tuple[FileItem, ...] = ()
    sources: tuple[Source, ...] = ()
    volumes: tuple[str, ...] = ()
    cmdline: str = "console=ttyS0"
    init: tuple[str, ...] = ("init:1",)
    compression: str = "zstd"
    format: str = "kernel+initrd"
    epoch: str | None = None  # SOURCE_DATE_EPOCH for the build
    kernel: tuple[tuple[str, str], ...] = ()  # extra kernel fields: binary, tar
    volume_images: tuple[tuple[str, str], ...] = ()  # volume name -> "app:tag" or "app:tag oci"

    def sections(self) -> dict[str, tuple[Box, ...]]:
        return {"onboot": self.onboot, "services": self.services, "onshutdown": self.onshutdown}


def base_spec() -> SpecModel:
    return SpecModel(
        onboot=(Box("first", "alpha"), Box("second", "beta", command=("/bin/app", "boot"))),
        services=(Box("web", "gamma", env=("PORT=80",)),),
        files=(FileItem("etc/motd", contents="hello\n"), FileItem("etc/app/key", source="key", mode="0600")),
        sources=(Source("key", b"secret-1\n"),),
        volumes=("data",),
    )


def _box_dict(box: Box, host: str, volumes: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {"name": box.name, "image": f"{host}/truth/{box.app}:{box.tag}"}
    if box.command is not None:
        out["command"] = list(box.command)
    if box.env is not None:
        out["env"] = list(box.env)
    if box.capabilities is not None:
        out["capabilities"] = list(box.capabilities)
    if box.binds is not None:
        binds = [BIND_CHOICES[i] for i in box.binds]
        out["binds"] = [b for b in binds if b.startswith("/") or b.split(":", 1)[0] in volumes]
    if box.readonly is not None:
        out["readonly"] = box.readonly
    if box.net is not None:
        out["net"] = box.net
    if box.pid is not None:
        out["pid"] = box.pid
    return out


def _volume_dict(name: str, image: str | None, host: str) -> dict[str, object]:
    out: dict[str, object] = {"name": name}
    if image is not None:
        ref, _, oci = image.partition(" ")
        out["image"] = f"{host}/truth/{ref}"
        if oci:
            out["format"] = "oci"
    return out


def render(model: SpecModel, host: str, sources_dir: Path) -> str:
    doc: dict[str, object] = {
        "kernel": {"image": f"{host}/truth/kernel:1", "cmdline": model.cmdline, **dict(model.kernel)},
        "init": [f"{host}/truth/{name}" for name in model.init],
    }
    for section, boxes in model.sections().items():
        if boxes:
            doc[section] = [_box_dict(box, host, model.volumes) for box in boxes]
    files = []
    for item in model.files:
        entry: dict[str, object] = {"path": item.path}
        if item.kind == "directory":
            entry["directory"] = True
        elif item.kind == "symlink":
            entry["symlink"] = "/etc/motd"
        elif item.kind == "metadata":
            entry["metadata"] = "json"
        elif item.contents is not None:
            entry["contents"] = item.contents
        if item.source is not None and item.kind == "file":
            entry["source"] = str(sources_dir / item.source)
        if item.mode is not None:
            entry["mode"] = item.mode
        if item.uid is not None:
            entry["uid"] = item.uid
        files.append(entry)
    if files:
        doc["files"] = files
    if model.volumes:
        doc["volumes"] = [_volume_dict(name, dict(model.volume_images).get(name), host) for name in model.volumes]
    return yaml.safe_dump(doc, sort_keys=False)


def write_world(model: SpecModel, host: str, workdir: Path) -> Path:
    """The spec file and its `files` sources, written in place as an editor would (no rename)."""
    sources = workdir / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    for source in model.sources:
        path = sources / source.name
        path.write_bytes(source.data)
        os.chmod(path, source.mode)
        if os.geteuid() == 0:
            os.chown(path, source.uid, source.uid)
    spec = workdir / "spec.yml"
    spec.write_text(render(model, host, sources))
    return spec


# building and comparing -----------------------------------------------------------------------
@dataclass
class Outcome:
    hashes: dict[str, str] = field(default_factory=dict)
    error: str | None = None


# Formats a spec may be built as: every kind of writer (an initrd, a tar, a squashfs, erofs or ISO root
# beside a boot initrd, a BIOS disk).
FORMATS = ("kernel+initrd", "tar", "kernel+squashfs", "kernel+erofs", "kernel+iso", "raw-bios")
DISK_SIZE = 32 << 20  # raw-bios: LinuxKit's 1024M default is 32 times more bytes to write and hash


@dataclass(frozen=True)
class Schedule:
    """How each build runs: `jobs` tasks at once, doit's task order shuffled from `shuffle` plus the
    build's number (each build its own order; see buildlib/tasks/order.py), a new output name for
    every build when `fresh_names` (so no output task has run before: the -j 2 race of issue 24)."""

    jobs: int = 1
    shuffle: int | None = None
    fresh_names: bool = False

    def describe(self) -> str:
        order = "declared order" if self.shuffle is None else f"shuffled from seed {self.shuffle}"
        return f"-j {self.jobs}, {order}" + (", fresh names" if self.fresh_names else "")


@contextmanager
def build_environment(model: SpecModel, shuffle: int | None) -> Iterator[None]:
    """SOURCE_DATE_EPOCH as the model says and the shuffle seed for one build; both put back after."""
    values = {"SOURCE_DATE_EPOCH": model.epoch, SHUFFLE_ENV: None if shuffle is None else str(shuffle)}
    saved = {key: os.environ.pop(key, None) for key in values}
    os.environ.update({key: value for key, value in values.items() if value is not None})
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


@dataclass(frozen=True)
class BuildRun:
    """One build: the store, the output folder and name, the audit, and how doit runs it."""

    cache: Path
    out: Path
    name: str = "truth"
    audit: bool = False
    jobs: int = 1
    shuffle: int | None = None


def build_outputs(spec: Path, run: BuildRun, model: SpecModel, components: Path) -> Outcome:
    """Build `model`; with `audit`, every up-to-date part and output is computed again and compared.
    Outputs are keyed by what follows the output name, so builds under other names compare."""
    options = tasks.BuildOptions(
        cache=run.cache,
        out_dir=run.out,
        name=run.name,
        formats=(model.format,),
        size=DISK_SIZE,
        compression=Compression.parse(model.compression),
        audit=run.audit,
    )
    try:
        with build_environment(model, run.shuffle):
            tasks.build_spec([spec], options, components, jobs=run.jobs, outstream=io.StringIO())
    except DistrokitError as error:
        return Outcome(error=f"{type(error).__name__}: {error}")
    targets = get_format(model.format).targets(run.out / run.name)
    return Outcome({path.name[len(run.name) :]: hashlib.sha256(path.read_bytes()).hexdigest() for path in targets})


@dataclass
class Truth:
    """One incremental store and a source of clean ones; counts what it tried."""

    host: str
    pulled: Path
    workdir: Path
    components: Path
    debs: Path | None = None
    schedule: Schedule = Schedule()
    builds: int = 0
    clean_count: int = 0
    on_build: Callable[[SpecModel], None] | None = None

    @property
    def store(self) -> Path:
        return self.workdir / "incremental-store"

    def next_run(self, cache: Path, out: Path, name: str, audit: bool) -> BuildRun:
        """A build as the schedule says; every build draws its own task order."""
        seed = None if self.schedule.shuffle is None else self.schedule.shuffle + self.builds
        self.builds += 1
        return BuildRun(cache, out, name, audit, self.schedule.jobs, seed)

    def check(self, model: SpecModel, history: list[str]) -> None:
        """Build `model` incrementally and cleanly; fail naming the edit sequence when bytes differ."""
        if not self.store.exists():
            copy_store(self.pulled, self.store, self.debs)
        spec = write_world(model, self.host, self.workdir / "project")
        name = f"truth-{self.clean_count}" if self.schedule.fresh_names else "truth"
        incremental_run = self.next_run(self.store, self.workdir / "out", name, audit=True)
        incremental = build_outputs(spec, incremental_run, model, self.components)
        self.clean_count += 1
        clean_store = copy_store(self.pulled, self.workdir / f"clean-{self.clean_count}", self.debs)
        clean_out = self.workdir / f"clean-out-{self.clean_count}"
        clean = build_outputs(spec, self.next_run(clean_store, clean_out, name, audit=False), model, self.components)
        shutil.rmtree(clean_store)
        shutil.rmtree(clean_out, ignore_errors=True)
        edits = " -> ".join(history) or "the base spec"
        how = (
            "" if incremental_run.shuffle is None else f" ({self.schedule.describe()}; seed {incremental_run.shuffle})"
        )
        assert incremental.error == clean.error, (
            f"after {edits}{how}: incremental {incremental.error!r}, clean {clean.error!r}"
        )
        assert incremental.hashes == clean.hashes, f"after {edits}{how}: incremental and clean outputs differ"

    def disturb(self, op: str, model: SpecModel) -> None:
        """What happens to the store between two builds: a gc, or a build of another spec of the same
        base name and output name (its own folder, the same store)."""
        if op == "gc":
            cache.gc(self.store)
        elif op == "neighbour":
            other = replace(model, files=(*model.files, FileItem("etc/neighbour", contents="next door\n")))
            spec = write_world(other, self.host, self.workdir / "neighbour")
            run = self.next_run(self.store, self.workdir / "neighbour-out", "truth", audit=True)
            outcome = build_outputs(spec, run, other, self.components)
            assert "AuditError" not in (outcome.error or ""), f"building a neighbour spec: {outcome.error}"

    def run(self, sequence: list[Edit], start: SpecModel | None = None) -> None:
        """The base spec (or `start`), then every edit of `sequence`, each checked."""
        model = base_spec() if start is None else start
        models, names = [model], []
        self.check(model, names)
        for edit in sequence:
            self.disturb(edit[0], model)
            model = apply_edit(model, edit, models)
            models.append(model)
            names.append(describe(edit))
            self.check(model, names)


# edits --------------------------------------------------------------------------------------
# An edit is (operation, a, b, c): small integers each operation reads modulo what it picks from,
# so hypothesis can draw and shrink them without knowing the spec.
Edit = tuple[str, int, int, int]
SECTIONS = ("onboot", "services", "onshutdown")
NAMES = ("first", "second", "third", "web", "db", "log", "bye")
COMMANDS = (None, ("/bin/app",), ("/bin/app", "boot"), ("/bin/sh", "-c", "echo hi"))
ENVS = (None, (), ("PORT=80",), ("PORT=81", "MODE=x"))
CAPS = (None, (), *((c,) for c in CAPABILITY_CHOICES), ("CAP_NET_ADMIN", "CAP_SYS_ADMIN"))
BINDS = (None, (), (0,), (1, 2), (2,), (3, 0))
NETS = (None, "host", "new")
MODES = (None, "0600", "0644", "0755", "0400")
OWNERS = (None, 0, 1000, "first", "web")
CMDLINES = ("console=ttyS0", "console=ttyS0 quiet", "console=ttyS0 loglevel=7")
DATA = (b"secret-1\n", b"secret-2\n", b"another secret, longer\n", b"")
FIELD_OPS = ("command", "env", "capabilities", "binds", "readonly", "net", "pid", "tag", "app")
OPERATIONS = (
    "add", "remove", "swap", "move", *FIELD_OPS,
    "file-add", "file-remove", "file-swap", "file-contents", "file-mode", "file-owner",
    "file-kind", "source-data", "source-mode", "source-owner", "volume", "cmdline", "init", "compression",
    "format", "epoch", "kernel", "volume-image", "back", "gc", "neighbour",
)  # fmt: skip
VOLUME_IMAGES = (None, "alpha:v1", "beta:v2", "alpha:v2 oci")
KERNELS = ((), (("binary", "boot/vmlinuz"),), (("tar", "none"),), (("binary", "boot/vmlinuz"), ("tar", "none")))
INITS = (("init:1",), ("init:1", "alpha:v1"), ("alpha:v2", "init:1"))
FILE_KINDS = ("file", "directory", "symlink", "metadata")


# The edits of order and membership are where keys most often go blind: drawn three times as often.
WEIGHTED = OPERATIONS + ("add", "remove", "swap", "move", "file-swap", "back") * 2


def edits() -> st.SearchStrategy[Edit]:
    small = st.integers(0, 30)
    return st.tuples(st.sampled_from(WEIGHTED), small, small, small)


def _pick(options: tuple[object, ...], n: int) -> object:
    return options[n % len(options)]


def _other(i: int, n: int, size: int) -> int:
    """An index other than i % size (when there is another): a swap that swaps."""
    return (i + 1 + n % (size - 1)) % size if size > 1 else 0


def _section(model: SpecModel, n: int) -> tuple[str, tuple[Box, ...]]:
    name = SECTIONS[n % len(SECTIONS)]
    return name, getattr(model, name)


def _boxes(model: SpecModel) -> list[tuple[str, int, Box]]:
    return [(name, i, box) for name, boxes in model.sections().items() for i, box in enumerate(boxes)]


def _edit_box(model: SpecModel, op: str, a: int, b: int) -> SpecModel:
    boxes = _boxes(model)
    if not boxes:
        return model
    section, index, box = boxes[a % len(boxes)]
    values: dict[str, tuple[object, ...]] = {
        "command": COMMANDS, "env": ENVS, "capabilities": CAPS, "binds": BINDS, "readonly": (None, True, False),
        "net": NETS, "pid": (None, "host"), "tag": TAGS, "app": APPS,
    }  # fmt: skip
    changed = replace(box, **{op: _pick(values[op], b)})
    row = list(getattr(model, section))
    row[index] = changed
    return replace(model, **{section: tuple(row)})


def _edit_sections(model: SpecModel, op: str, a: int, b: int, c: int) -> SpecModel:
    section, row = _section(model, a)
    several = [name for name, boxes in model.sections().items() if len(boxes) > 1]
    if op == "swap" and several:  # a swap in a section of one container would be no edit at all
        section = several[a % len(several)]
        row = getattr(model, section)
    if op == "add":
        used = {box.name for _, _, box in _boxes(model)}
        free = [name for name in NAMES if name not in used]
        if not free:
            return model
        box = Box(free[b % len(free)], str(_pick(APPS, c)), str(_pick(TAGS, b + c)))
        at = c % (len(row) + 1)
        return replace(model, **{section: (*row[:at], box, *row[at:])})
    if not row:
        return model
    i, j = b % len(row), _other(b, c, len(row))
    if op == "remove":
        return replace(model, **{section: row[:i] + row[i + 1 :]})
    if op == "swap":
        swapped = list(row)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        return replace(model, **{section: tuple(swapped)})
    target, target_row = _section(model, a + 1 + c)
    moved = replace(model, **{section: row[:i] + row[i + 1 :]})
    return replace(moved, **{target: (*target_row, row[i])})


def _edit_files(model: SpecModel, op: str, a: int, b: int, c: int) -> SpecModel:
    files = list(model.files)
    if op == "file-add":
        path = f"etc/extra/f{a % 4}"
        item = FileItem(path, source="key") if b % 3 == 0 else FileItem(path, contents=f"extra {c}\n")
        files.insert(c % (len(files) + 1), replace(item, mode=_pick(MODES, c)))  # type: ignore[arg-type]
        return replace(model, files=tuple(files))
    if not files:
        return model
    i = a % len(files)
    if op == "file-remove":
        del files[i]
    elif op == "file-swap":
        j = _other(a, b, len(files))
        files[i], files[j] = files[j], files[i]
    elif op == "file-contents":
        files[i] = replace(files[i], contents=f"contents {b}\n" * (c % 3 + 1), source=None)
    elif op == "file-kind":
        files[i] = replace(files[i], kind=str(_pick(FILE_KINDS, b)))
    elif op == "file-mode":
        files[i] = replace(files[i], mode=_pick(MODES, b))  # type: ignore[arg-type]
    else:
        files[i] = replace(files[i], uid=_pick(OWNERS, b))  # type: ignore[arg-type]
    return replace(model, files=tuple(files))


def _edit_source(model: SpecModel, op: str, b: int) -> SpecModel:
    (source,) = model.sources
    if op == "source-data":
        changed = replace(source, data=_pick(DATA, b))
    elif op == "source-mode":
        changed = replace(source, mode=_pick((0o644, 0o600, 0o755, 0o444), b))
    else:
        changed = replace(source, uid=_pick((0, 1000, 65534), b))
    return replace(model, sources=(changed,))


def apply_edit(model: SpecModel, edit: Edit, history: list[SpecModel]) -> SpecModel:
    """The spec after one edit; `history` holds every spec so far (for `back`)."""
    op, a, b, c = edit
    if op in ("add", "remove", "swap", "move"):
        return _edit_sections(model, op, a, b, c)
    if op in FIELD_OPS:
        return _edit_box(model, op, a, b)
    if op.startswith("file-"):
        return _edit_files(model, op, a, b, c)
    if op.startswith("source-"):
        return _edit_source(model, op, b)
    if op == "volume":
        name = VOLUME_CHOICES[a % len(VOLUME_CHOICES)]
        volumes = tuple(v for v in model.volumes if v != name) if name in model.volumes else (*model.volumes, name)
        return replace(model, volumes=volumes)
    if op == "cmdline":
        return replace(model, cmdline=str(_pick(CMDLINES, a)))
    if op == "volume-image":
        name = VOLUME_CHOICES[a % len(VOLUME_CHOICES)]
        images = {**dict(model.volume_images), name: _pick(VOLUME_IMAGES, b)}
        return replace(model, volume_images=tuple((k, v) for k, v in sorted(images.items()) if v is not None))
    if op == "kernel":
        return replace(model, kernel=_pick(KERNELS, a))  # type: ignore[arg-type]
    if op == "epoch":
        return replace(model, epoch=_pick((None, "0", "1700000000", "1800000000"), a))  # type: ignore[arg-type]
    if op == "init":
        return replace(model, init=_pick(INITS, a))  # type: ignore[arg-type]
    if op in ("gc", "neighbour"):
        return model  # the spec stays; the store changes before the next build (see Truth.disturb)
    if op == "compression":
        return replace(model, compression=str(_pick(("zstd", "gzip", "none"), a)))
    if op == "format":
        return replace(model, format=str(_pick(FORMATS, a)))
    return history[a % len(history)]  # back to an earlier spec


def describe(edit: Edit) -> str:
    op, a, b, c = edit
    return f"{op}({a},{b},{c})"
