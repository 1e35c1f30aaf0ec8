"""Strategies and properties for fuzzing, shared by tests/test_fuzz.py (a few examples in the suite)
and benchmarks/fuzz.py (many more). Each `check_*` takes one generated input and fails with an
AssertionError (or any exception that is not a DistrokitError) when the property does not hold."""

from __future__ import annotations

import io
import os
import posixpath
import subprocess
import tarfile
import tempfile
from pathlib import Path

from hypothesis import strategies as st
from layerkit import store_tar

from buildlib.errors import DistrokitError
from buildlib.outputs.cpio import CpioWriter
from buildlib.outputs.tar import write_tar
from buildlib.rootfs import bundles, layers
from buildlib.rootfs.layers import DIR, FILE, HARDLINK, SYMLINK, Entry
from buildlib.rootfs.tree import Tree, merged_image_tree
from buildlib.spec.model import parse_spec_text
from buildlib.store.images import Image, Layer, Store

# names --------------------------------------------------------------------------------------------
_SAFE_PARTS = ["a", "b", "c", "etc", "bin", "lib", "caf\udce9", "x" * 120, ".wh.a", ".wh.b", ".wh..wh..opq"]
_HOSTILE_PARTS = ["..", ".", "", ".wh.", ".wh.."]
# mostly names a real layer has, so that most stacks merge and the merge itself is exercised; one
# name in twenty is anything at all
_safe_name = st.lists(st.sampled_from(_SAFE_PARTS), min_size=1, max_size=4).map("/".join)
_any_part = st.sampled_from(_SAFE_PARTS + _HOSTILE_PARTS) | st.text(alphabet="abc/.\\ \u00e9-", min_size=1, max_size=6)
_any_name = st.lists(_any_part, min_size=1, max_size=4).map("/".join) | st.sampled_from(["/etc/passwd", "//x", "./a"])
member_name = st.sampled_from([_safe_name] * 19 + [_any_name]).flatmap(lambda strategy: strategy)


@st.composite
def tar_member(draw: st.DrawFn) -> tuple[str, str, bytes, int, str]:
    kind = draw(st.sampled_from("ffffddlhcp"))
    data = draw(st.binary(max_size=600)) if kind == "f" else b""
    mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o2711, 0o1777, 0o000]))
    link = draw(member_name) if kind in "lh" else ""
    return draw(member_name), kind, data, mode, link


_TYPES = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}
_TYPES.update({"c": tarfile.CHRTYPE, "p": tarfile.FIFOTYPE})


def tar_of(members: list[tuple[str, str, bytes, int, str]], fmt: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, errors="surrogateescape") as archive:
        for name, kind, data, mode, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = _TYPES[kind], mode, 1000, link
            info.size = len(data)
            try:
                archive.addfile(info, io.BytesIO(data) if kind == "f" else None)
            except ValueError:
                continue  # a name ustar cannot hold: tarfile refuses to write it, so no layer has it
    return buffer.getvalue()


@st.composite
def mangled(draw: st.DrawFn, raw: bytes) -> bytes:
    """The tar as it is, cut short, or with a few bytes changed."""
    how = draw(st.sampled_from(["keep"] * 6 + ["cut", "flip"]))
    if how == "cut" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "flip" and raw:
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return raw


@st.composite
def layer_stack(draw: st.DrawFn) -> list[tuple[bytes, bool]]:
    """One to three layers: (tar bytes, gzip them?)."""
    stack = []
    for _ in range(draw(st.integers(1, 3))):
        fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
        raw = tar_of(draw(st.lists(tar_member(), max_size=12)), fmt)
        stack.append((draw(mangled(raw)), draw(st.booleans())))
    return stack


def check_layers_merge(stack: list[tuple[bytes, bool]]) -> str:
    """Random layers are indexed and merged, or refused with our own error; what is merged, written as
    tar and cpio and extracted by GNU tar and cpio, stays inside the root. Returns "refused" or "merged"."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "cache")
        stored = [store_tar(store, raw, compress) for raw, compress in stack]
        image = Image("fuzz", "sha256:" + "0" * 64, "sha256:" + "0" * 64, {}, tuple(stored))
        try:
            tree = merged_image_tree(store, image, "fuzz")
        except DistrokitError:
            for layer in stored:  # nothing is left indexed for a refused layer... unless it was fine alone
                _index_is_sound_or_absent(store, layer)
            return "refused"
        _check_tree_shape(tree)
        _check_extraction(tree, Path(folder))
        return "merged"


def _index_is_sound_or_absent(store: Store, layer: Layer) -> None:
    path = layers.index_path(store, layer)
    assert not path.exists() or layers.check_index(path, with_tar=True) == ""


def _check_tree_shape(tree: Tree) -> None:
    entries = {entry.path: entry for entry in tree.entries()}
    for path, entry in entries.items():
        assert path and not path.startswith("/") and ".." not in path.split("/") and "." not in path.split("/")
        parent = posixpath.dirname(path)
        while parent:
            assert entries[parent].kind == DIR, f"{path} lies under {parent}, a {entries[parent].kind}"
            parent = posixpath.dirname(parent)
        if entry.kind == HARDLINK:
            target = entries.get(entry.link)
            assert target is not None and target.kind == FILE, f"hard link {path} -> {entry.link}: {target}"
        if entry.kind == FILE:
            assert len(entry.read_bytes()) == entry.size


def _check_extraction(tree: Tree, folder: Path) -> None:
    for name, writer, extract in (("root.tar", _tar, ["tar", "-xf"]), ("root.cpio", _cpio, None)):
        sandbox = folder / f"sandbox-{name}"
        root = sandbox / "root"
        root.mkdir(parents=True)
        archive = folder / name
        with open(archive, "wb") as handle:
            writer(tree, handle)
        if extract:
            subprocess.run([*extract, str(archive)], cwd=root, check=True, capture_output=True)
        else:
            with open(archive, "rb") as handle:
                cmd = ["cpio", "-idm", "--quiet", "--no-absolute-filenames"]
                subprocess.run(cmd, stdin=handle, cwd=root, check=True, capture_output=True)
        assert os.listdir(sandbox) == ["root"], f"{name} wrote outside its root: {os.listdir(sandbox)}"


def _tar(tree: Tree, handle: io.BufferedWriter) -> None:
    write_tar(tree, handle)


def _cpio(tree: Tree, handle: io.BufferedWriter) -> None:
    # devices need no mknod here: the property is about where things land
    CpioWriter(handle).write_all(e for e in tree.entries() if e.kind not in ("c", "b"))


# writers: what goes in comes back ---------------------------------------------------------------
_SAFE = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
_NAME = _SAFE | st.sampled_from(["caf\udce9", "sp ace", "\u00fcml", "x" * 200])


@st.composite
def writer_tree(draw: st.DrawFn) -> Tree:
    """A tree of dirs, files (any bytes, any permission bits), symlinks and hard links."""
    tree = Tree("fuzz")
    dirs = [""]
    files: list[str] = []
    for _ in range(draw(st.integers(1, 14))):
        parent = draw(st.sampled_from(dirs))
        path = posixpath.join(parent, draw(_NAME)) if parent else draw(_NAME)
        if path in tree:
            continue
        kind = draw(st.sampled_from("fffdlh"))
        if kind == "h" and not files:
            kind = "f"
        mode = draw(st.sampled_from([0o644, 0o755, 0o600, 0o4755, 0o2755, 0o1755, 0o444]))
        if kind == "d":
            tree.add(Entry(path, DIR, mode=mode | 0o700, mtime=draw(st.integers(0, 2**31))))
            dirs.append(path)
        elif kind == "f":
            data = draw(st.binary(max_size=3000))
            tree.add(Entry(path, FILE, mode=mode, size=len(data), data=data, mtime=draw(st.integers(0, 2**31))))
            files.append(path)
        elif kind == "l":
            tree.add(Entry(path, SYMLINK, mode=0o777, link=draw(_NAME | st.just("/bin/busybox"))))
        else:
            tree.add(Entry(path, HARDLINK, link=draw(st.sampled_from(files))))
    return tree


def read_back(root: Path) -> dict[bytes, tuple[str, int, bytes]]:
    """What an extracted folder holds: raw path -> (kind, permission bits, data or link target)."""
    found = {}
    for folder, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in [*dirnames, *filenames]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, os.fsencode(root))
            st_ = os.lstat(path)
            if os.path.islink(path):
                found[rel] = ("l", 0, os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = ("d", st_.st_mode & 0o7777, b"")
            else:
                with open(path, "rb") as handle:
                    found[rel] = ("f", st_.st_mode & 0o7777, handle.read())
    return found


def expected(tree: Tree) -> dict[bytes, tuple[str, int, bytes]]:
    entries = {e.path: e for e in tree.entries()}
    want = {}
    for path, entry in entries.items():
        raw = path.encode("utf-8", "surrogateescape")
        if entry.kind == DIR:
            want[raw] = ("d", entry.mode, b"")
        elif entry.kind == SYMLINK:
            want[raw] = ("l", 0, entry.link.encode("utf-8", "surrogateescape"))
        else:
            target = entries[entry.link] if entry.kind == HARDLINK else entry
            want[raw] = ("f", target.mode, target.read_bytes())
    return want


def check_writers_round_trip(tree: Tree) -> None:
    """The tar and cpio writers' archives, extracted by GNU tar and cpio, are the tree that went in."""
    with tempfile.TemporaryDirectory() as folder:
        want = expected(tree)
        tar_root, cpio_root = Path(folder, "t"), Path(folder, "c")
        tar_root.mkdir()
        cpio_root.mkdir()
        tar_file = Path(folder, "root.tar")
        with open(tar_file, "wb") as handle:
            write_tar(tree, handle)
        subprocess.run(["tar", "-xpf", str(tar_file)], cwd=tar_root, check=True, capture_output=True)
        buffer = io.BytesIO()
        CpioWriter(buffer).write_all(tree.entries())
        subprocess.run(["cpio", "-idmu", "--quiet"], input=buffer.getvalue(), cwd=cpio_root, check=True)
        for name, root in (("tar", tar_root), ("cpio", cpio_root)):
            got = read_back(root)
            assert got == want, f"{name} read back differs: {sorted(set(got.items()) ^ set(want.items()))[:4]}"


# the spec and label parsers ---------------------------------------------------------------------
_KEYS = ["kernel", "init", "onboot", "services", "files", "volumes", "image", "name", "path", "contents", "cmdline"]
_KEYS += ["capabilities", "binds", "command", "pid", "net", "mounts", "runtime", "source", "mode", "x"]
scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(_KEYS)
yaml_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4),
    max_leaves=25,
)
_SPECS = Path(__file__).resolve().parents[1] / "specs"
_REAL_SPECS = [p.read_text() for p in sorted(_SPECS.glob("*.yml"))]


@st.composite
def spec_mutant(draw: st.DrawFn) -> str:
    """A real spec with a few lines dropped, repeated, re-indented or cut short, or characters changed."""
    lines = draw(st.sampled_from(_REAL_SPECS)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "repeat", "indent", "dedent", "cut", "char"]))
        if how == "drop":
            del lines[at]
        elif how == "repeat":
            lines.insert(at, lines[at])
        elif how == "indent":
            lines[at] = "  " + lines[at]
        elif how == "dedent":
            lines[at] = lines[at][2:]
        elif how == "cut":
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
        else:
            char = draw(st.sampled_from(list(":-[]{}&*!|>'\"#%@`\t") + ["\udcff", "\x00"]))
            column = draw(st.integers(0, len(lines[at])))
            lines[at] = lines[at][:column] + char + lines[at][column:]
    return "\n".join(lines) + "\n"


spec_text = (
    spec_mutant()
    | spec_mutant()
    | st.dictionaries(st.sampled_from(_KEYS), yaml_value, max_size=5).map(lambda d: _dump(d))
    | st.text(max_size=300)
    | st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace"))
)


def _dump(value: object) -> str:
    import yaml

    return yaml.safe_dump(value)


def check_spec_parser(text: str) -> str:
    """Any text: a Spec, or a SpecError naming the file; never another exception."""
    try:
        parse_spec_text(text, str(_SPECS / "fuzz.yml"))  # beside the real specs: their @pkg: folders resolve
    except DistrokitError as exc:
        assert "fuzz.yml" in str(exc), str(exc)
        return "refused"
    return "parsed"


_words = st.lists(st.text(alphabet="abcCAP_:/.=-0", min_size=1, max_size=10), max_size=4)
_LABEL_FIELDS = {
    "capabilities": _words,
    "binds": _words,
    "command": _words,
    "env": _words,
    "tmpfs": _words,
    "net": st.sampled_from(["host", "new", "none", "/run/netns/x"]),
    "pid": st.sampled_from(["host", "new"]),
    "readonly": st.booleans(),
    "uid": st.integers(-5, 70000) | st.sampled_from(["root", "nobody"]),
    "oom_score_adj": st.integers(-2000, 2000),
    "sysctl": st.dictionaries(st.sampled_from(["net.ipv4.ip_forward", "kernel.x"]), st.text(max_size=4), max_size=2),
    "mounts": st.lists(st.fixed_dictionaries({"destination": st.sampled_from(["/tmp", "/x", "rel"])}), max_size=2),
    "cwd": st.sampled_from(["/", "/srv", "relative"]),
}
# a label as images carry it: mostly the right fields with values of the right type, now and then not
label_dict = st.fixed_dictionaries({}, optional=_LABEL_FIELDS) | st.dictionaries(
    st.sampled_from([*_LABEL_FIELDS, *_KEYS]), yaml_value, max_size=4
)
label_text = label_dict.map(lambda d: __import__("json").dumps(d)) | label_dict.map(_dump) | spec_text


def check_label_parser(text: str) -> str:
    """Any label text: a Container, or a BadInput naming the image's label; never another exception."""
    try:
        bundles.parse_label(text, "fuzz:1 label org.mobyproject.config")
    except DistrokitError as exc:
        assert "fuzz:1 label" in str(exc), str(exc)
        return "refused"
    return "parsed"
