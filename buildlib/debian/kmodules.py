"""Kernel modules by choice: keep the modules a recipe names, their dependencies and their firmware.

A kernel package carries every module its kernel was built with (the cloud kernel: ~1,100 files,
~90 MB), and every byte of them is unpacked by the booting kernel from the initrd. A recipe's
`modules:` names what a system needs (module names or globs over names, e.g. `virtio*`; a pattern
with a `/` matches the path under lib/modules/VERSION, e.g. `kernel/fs/*`); this keeps exactly those,
everything they need by modules.dep, and the firmware files they name, then makes modules.dep and
its friends again for the kept set with busybox depmod. What each module needs is read from its own
`.modinfo` (`depends=`, written by modpost as the kernel was built): asking busybox depmod for the
whole tree took 0.8 s of a kernel component's build.
"""

from __future__ import annotations

import fnmatch
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import ComponentError

ALL = "all"
_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
_FIRMWARE_FIELD = re.compile(rb"(?:^|\x00)firmware=([^\x00]+)")


def module_name(path: str) -> str:
    """kernel/drivers/block/virtio_blk.ko -> virtio_blk (dashes and underscores are the same name)."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


# what busybox depmod writes, a line (or lines) per module in the order it walked the folders: the order
# the file system lists them in, which ext4 hashes with a seed of its own, so one .deb gave another
# modules.dep on another disk (or on a tmpfs)
DEPMOD_FILES = ("modules.dep", "modules.alias", "modules.symbols")


def depmod(root: Path, version: str, preexec: Callable[[], None] | None = None) -> None:
    """busybox depmod for ROOT/lib/modules/VERSION, its files then put in the kernel's modules.order."""
    import sh  # imported late: it costs a no-change build a tenth of a second

    sh.Command("busybox")("depmod", "-b", str(root), version, _preexec_fn=preexec)
    in_module_order(root / "lib" / "modules" / version)


def in_module_order(tree: Path) -> None:
    """Rewrite depmod's files with their modules in the order of modules.order (as kmod's depmod
    writes modules.dep), those it does not list after them by name; a module's own lines keep theirs."""
    order_file = tree / "modules.order"
    listed = order_file.read_text().split() if order_file.is_file() else []
    rank = {module_name(path): index for index, path in enumerate(listed)}
    for name in DEPMOD_FILES:
        path = tree / name
        if not path.is_file():
            continue
        lines = path.read_text().splitlines()
        key = _dep_line_module if name == "modules.dep" else _alias_line_module
        ordered = sorted(lines, key=lambda line: (rank.get(key(line), len(rank)), key(line)))
        if ordered != lines:
            path.write_text("".join(line + "\n" for line in ordered))


def _dep_line_module(line: str) -> str:
    return module_name(line.partition(":")[0].strip())


def _alias_line_module(line: str) -> str:
    """`alias PATTERN MODULE` (modules.alias, modules.symbols): the module."""
    return module_name(line.rsplit(" ", 1)[-1])


def read_dependencies(modules_dep: Path) -> dict[str, tuple[str, ...]]:
    """modules.dep as {module path: paths it needs}, paths relative to lib/modules/VERSION."""
    graph: dict[str, tuple[str, ...]] = {}
    for line in modules_dep.read_text().splitlines():
        if ":" not in line:
            continue
        module, _, needs = line.partition(":")
        graph[module.strip()] = tuple(needs.split())
    return graph


def modinfo_dependencies(tree: Path) -> dict[str, tuple[str, ...]] | None:
    """{module path: the module paths it needs directly}, from each module's `.modinfo` `depends=`;
    None when one cannot be read so (compressed, not a 64-bit little-endian ELF file, or naming a
    module the tree lacks): then depmod is asked."""
    paths = {module_name(rel): rel for rel in sorted(path.relative_to(tree).as_posix() for path in tree.rglob("*.ko*"))}
    graph: dict[str, tuple[str, ...]] = {}
    for rel in paths.values():
        fields = _modinfo((tree / rel).read_bytes()) if rel.endswith(".ko") else None
        if fields is None:
            return None
        needs = [module_name(name) for name in fields.get("depends", "").split(",") if name]
        if any(name not in paths for name in needs):
            return None
        graph[rel] = tuple(paths[name] for name in needs)
    return graph


def _modinfo(data: bytes) -> dict[str, str] | None:
    """The `key=value` strings of an ELF file's .modinfo section (None: not ELF64 little-endian)."""
    if data[:6] != b"\x7fELF\x02\x01":
        return None
    try:
        section_table, _, entry_size, count, names_index = struct.unpack_from("<Q8xHHHH", data, 0x28)
        sections = [struct.unpack_from("<IIQQQQ", data, section_table + i * entry_size) for i in range(count)]
        names_at = sections[names_index][4]
        for name, _type, _flags, _address, offset, size in sections:
            if data[names_at + name : data.index(b"\0", names_at + name)] == b".modinfo":
                strings = data[offset : offset + size].split(b"\0")
                return dict(item.decode(errors="replace").partition("=")[::2] for item in strings if b"=" in item)
    except (struct.error, IndexError, ValueError):  # a truncated or damaged file
        return None
    return {}


def matching(graph: Mapping[str, Sequence[str]], patterns: Iterable[str], origin: str) -> set[str]:
    """The module paths the patterns name; a pattern that names none is an error (a typo, or a module
    this kernel builds in or lacks)."""
    chosen: set[str] = set()
    names = {path: module_name(path) for path in graph}
    for pattern in patterns:
        by_path = "/" in pattern
        wanted = pattern if by_path else pattern.replace("-", "_")
        found = {path for path, name in names.items() if fnmatch.fnmatchcase(path if by_path else name, wanted)}
        if not found:
            raise ComponentError(
                f"{origin}: modules: {pattern!r} names no module of this kernel (built in, misspelt, or absent?)"
            )
        chosen |= found
    return chosen


def closure(graph: Mapping[str, Sequence[str]], chosen: Iterable[str]) -> set[str]:
    """The chosen modules and everything they need, by modules.dep."""
    kept: set[str] = set()
    todo = list(chosen)
    while todo:
        module = todo.pop()
        if module in kept:
            continue
        kept.add(module)
        todo.extend(graph.get(module, ()))
    return kept


def firmware_named(module_file: Path) -> list[str]:
    """The firmware files a module's modinfo names (`firmware=` fields)."""
    data = module_file.read_bytes()
    return [match.decode(errors="replace") for match in _FIRMWARE_FIELD.findall(data)]


def select(
    root: Path, version: str, patterns: Sequence[str], origin: str, preexec: Callable[[], None] | None = None
) -> list[str]:
    """Keep the modules `patterns` name in ROOT/lib/modules/VERSION, with their closure and firmware;
    regenerate modules.dep (busybox depmod, `preexec` run in it first: e.g. a fixed umask). Returns the
    kept module paths, sorted. `all` keeps everything."""
    if ALL in patterns:
        depmod(root, version, preexec)
        return sorted(read_dependencies(root / "lib" / "modules" / version / "modules.dep"))
    tree = root / "lib" / "modules" / version
    graph = modinfo_dependencies(tree)
    if graph is None:
        depmod(root, version, preexec)
        graph = read_dependencies(tree / "modules.dep")
    kept = closure(graph, matching(graph, patterns, origin))
    for module in graph:
        if module not in kept:
            (tree / module).unlink()
    _prune_empty_dirs(tree / "kernel")
    _keep_firmware(root / "lib" / "firmware", [tree / module for module in kept])
    depmod(root, version, preexec)
    return sorted(kept)


def _keep_firmware(firmware: Path, modules: Iterable[Path]) -> None:
    if not firmware.is_dir():
        return
    wanted = {name for module in modules for name in firmware_named(module)}
    for path in sorted(firmware.rglob("*"), reverse=True):
        rel = path.relative_to(firmware).as_posix()
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif not any(rel == name or rel.startswith(name + ".") for name in wanted):  # .xz/.zst variants
            path.unlink()


def _prune_empty_dirs(top: Path) -> None:
    if not top.is_dir():
        return
    for path in sorted(top.rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
