"""A LinuxKit package folder's `build.yml`, checked as a spec is, and the package it describes.

The keys are LinuxKit's (pkglib's pkgInfo): an unknown key or a wrong type is a `FILE:LINE:COL` error
naming the key, as a recipe's are. LinuxKit's defaults apply: org `linuxkit`, tag `{{.Hash}}`,
Dockerfile `Dockerfile`, arches amd64, arm64 and riscv64.
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import Node

from ..errors import BadInput, ComponentError
from ..fsutil import xxh_tree, xxh_value
from ..spec.nodes import (
    BOOL,
    STR,
    Context,
    ListOf,
    Record,
    StringMap,
    YamlRecord,
    check_yaml_file,
    yfield,
)
from ..spec.refs import ImageRef
from ..spec.schema import LabelType
from . import BUILD_YML, tags

MOBY_LABEL = "org.mobyproject.config"
STRS = ListOf(STR)
DEFAULT_ARCHES = ("amd64", "arm64", "riscv64")


def _check_docker_images(node: Node, ctx: Context, path: str, values: dict[str, Any]) -> None:
    """LinuxKit's rules for `depends.docker-images`: one source of names, one target, inside the folder,
    every image by digest (so the build stays deterministic)."""
    if values.get("target") and values.get("target_dir"):
        ctx.issue(node, path.rstrip("."), "give `target` (one tar) or `target-dir` (a tar each), not both")
    if values.get("from_file") and values.get("list"):
        ctx.issue(node, path.rstrip("."), "give `list` or `from-file`, not both")
    if (values.get("list") or values.get("from_file")) and not (values.get("target") or values.get("target_dir")):
        ctx.issue(node, path.rstrip("."), "give `target` or `target-dir`: where in the build context the images go")
    for key, name in (("target", "target"), ("target_dir", "target-dir"), ("from_file", "from-file")):
        where = values.get(key)
        if where and not _inside(ctx.base_dir, where):
            ctx.issue(node, f"{path}{name}", f"{where!r}: must be a path inside the package folder")
    for image in values.get("list") or ():
        problem = depends_problem(image)
        if problem:
            ctx.issue(node, f"{path}list", problem)


def _inside(folder: Path, relative: str) -> bool:
    target = (folder / relative).resolve()
    return target != folder.resolve() and target.is_relative_to(folder.resolve())


def depends_problem(image: str) -> str | None:
    """Why `image` cannot be a `depends` image (None when it can): LinuxKit wants every one by digest."""
    try:
        ref = ImageRef.parse(image)
    except BadInput as exc:
        return str(exc)
    return None if ref.digest else f"{image!r} lacks a digest (NAME@sha256:...), which LinuxKit requires"


@dataclass(frozen=True)
class DockerImagesFields(YamlRecord):
    target_dir: str | None = yfield(STR, "target-dir")
    target: str | None = yfield(STR)
    from_file: str | None = yfield(STR, "from-file")
    list: tuple[str, ...] | None = yfield(STRS)


@dataclass(frozen=True)
class DependsFields(YamlRecord):
    docker_images: DockerImagesFields | None = yfield(Record(DockerImagesFields, _check_docker_images), "docker-images")


def _check_package(node: Node, ctx: Context, path: str, values: dict[str, Any]) -> None:
    if not values.get("image"):
        ctx.issue(node, path or "build.yml", "missing required key 'image' (the package's image name)")
    for source in values.get("extra_sources") or ():
        src, colon, dst = source.partition(":")
        if not src or not colon or not dst or ":" in dst:
            ctx.issue(node, f"{path}extra-sources", f"{source!r}: give SOURCE:DESTINATION, one colon")
        elif not (ctx.base_dir / src).is_dir():
            ctx.issue(node, f"{path}extra-sources", f"{src}: no such folder (relative to {ctx.base_dir})")
    dockerfile = values.get("dockerfile") or "Dockerfile"
    if not (ctx.base_dir / dockerfile).is_file():
        ctx.issue(node, path or "build.yml", f"{dockerfile}: no such file in the package folder {ctx.base_dir}")


@dataclass(frozen=True)
class BuildYmlFields(YamlRecord):
    image: str | None = yfield(STR)
    org: str | None = yfield(STR)
    tag: str | None = yfield(STR)
    dockerfile: str | None = yfield(STR)
    arches: tuple[str, ...] | None = yfield(STRS)
    extra_sources: tuple[str, ...] | None = yfield(STRS, "extra-sources")
    gitrepo: str | None = yfield(STR)
    network: bool | None = yfield(BOOL)
    disable_cache: bool | None = yfield(BOOL, "disable-cache")
    config: dict[str, Any] | None = yfield(LabelType())
    build_args: tuple[str, ...] | None = yfield(STRS, "buildArgs")
    labels: Any = yfield(StringMap())
    depends: DependsFields | None = yfield(Record(DependsFields))


@dataclass(frozen=True)
class DockerPackage:
    """One LinuxKit package folder, read and checked: what `pkg build` builds and `@pkg:` names."""

    folder: Path
    image: str
    org: str = "linuxkit"
    tag_template: str = "{{.Hash}}"
    dockerfile: str = "Dockerfile"
    arches: tuple[str, ...] = DEFAULT_ARCHES
    build_args: tuple[str, ...] = ()
    network: bool = False
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    labels: tuple[tuple[str, str], ...] = ()
    extra_sources: tuple[tuple[Path, str], ...] = ()  # (folder, where in the build context)
    depends: tuple[str, ...] = ()  # `depends.docker-images`: images by digest, saved into the build context
    depends_target: str = ""  # where in the build context: one tar (`target`), or a folder (`target-dir`)
    depends_into_folder: bool = False
    hash_path: Path | None = None  # LinuxKit's --hash-path: the folder whose git tree names the package
    fixed_hash: str | None = None  # LinuxKit's --dev: `dev` instead of a hash

    @property
    def key(self) -> str:
        """The folder's content and its extra sources': what decides, with the args and the bases, whether
        to build again."""
        trees = [xxh_tree(self.folder), *(f"{xxh_tree(src)}:{dst}" for src, dst in self.extra_sources)]
        return xxh_value(trees)[:16]

    @property
    def tag(self) -> str:
        sources = tuple(src for src, _ in self.extra_sources)
        return tags.render(
            self.tag_template, self.fixed_hash or tags.package_hash(self.hash_path or self.folder, sources)
        )

    @property
    def ref(self) -> ImageRef:
        return ImageRef.parse(f"{self.org}/{self.image}:{self.tag}")

    @property
    def build_name(self) -> str:
        return f"{self.org}-{self.image}"

    def all_labels(self) -> dict[str, str]:
        """The image labels: build.yml's `labels`, and `config` as LinuxKit's moby label."""
        labels = dict(self.labels)
        if self.config:
            labels[MOBY_LABEL] = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return labels


@dataclass(frozen=True)
class Naming:
    """LinuxKit's `pkg build` flags that name a package over its build.yml: --org, --tag, --dev, --hash-path."""

    org: str | None = None
    tag: str | None = None
    dev: bool = False
    hash_path: str | None = None

    def apply(self, package: DockerPackage) -> DockerPackage:
        changes: dict[str, Any] = {}
        if self.dev:  # LinuxKit: the user's org and the hash `dev`, so a work in progress never takes a real tag
            changes.update(org=os.environ.get("USER") or getpass.getuser(), fixed_hash="dev")
        if self.org:
            changes["org"] = self.org
        if self.tag:
            changes["tag_template"] = self.tag
        if self.hash_path:
            hash_path = Path(self.hash_path).resolve()
            if not package.folder.is_relative_to(hash_path):
                raise BadInput(f"--hash-path {self.hash_path}: not {package.folder} or a folder above it")
            changes["hash_path"] = hash_path
        return dataclasses.replace(package, **changes)


def load_package(folder: Path, naming: Naming | None = None) -> DockerPackage:
    folder = Path(folder).resolve()
    build_yml = folder / BUILD_YML
    if not build_yml.is_file():
        raise ComponentError(f"{folder}: no {BUILD_YML} here, so it is not a LinuxKit package folder")
    return (naming or Naming()).apply(_load(folder, build_yml.stat().st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _load(folder: Path, mtime_ns: int) -> DockerPackage:
    build_yml = folder / BUILD_YML
    text = build_yml.read_text()
    fields = check_build_yml(text, build_yml)
    # `config` goes into the moby label as written (the schema checked it, but its parse fills defaults)
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    return DockerPackage(
        folder=folder,
        image=str(fields.image),
        org=fields.org or "linuxkit",
        tag_template=fields.tag or "{{.Hash}}",
        dockerfile=fields.dockerfile or "Dockerfile",
        arches=fields.arches or DEFAULT_ARCHES,
        build_args=fields.build_args or (),
        network=bool(fields.network),
        config=dict(raw.get("config") or {}),
        labels=tuple(sorted(fields.labels or ())),
        extra_sources=tuple(_extra_source(folder, text) for text in fields.extra_sources or ()),
        **_depends(folder, fields.depends),
    )


def _depends(folder: Path, depends: DependsFields | None) -> dict[str, Any]:
    """`depends.docker-images` as DockerPackage fields; a `from-file` is read here, one image a line."""
    images = depends.docker_images if depends else None
    if images is None:
        return {}
    names = list(images.list or ())
    if images.from_file:
        from_file = folder / images.from_file
        try:
            lines = from_file.read_text().splitlines()
        except OSError as exc:
            raise ComponentError(f"{from_file}: cannot read depends.docker-images.from-file: {exc.strerror}") from exc
        for number, line in enumerate(lines, 1):
            if line and not line.startswith("#"):  # LinuxKit skips blank lines and `#` in column 0
                problem = depends_problem(line.strip())
                if problem:
                    raise ComponentError(f"{from_file}:{number}: {problem}")
                names.append(line.strip())
    return {
        "depends": tuple(names),
        "depends_target": images.target_dir or images.target or "",
        "depends_into_folder": bool(images.target_dir),
    }


def _extra_source(folder: Path, text: str) -> tuple[Path, str]:
    src, _, dst = text.partition(":")
    return (folder / src).resolve(), dst


def check_build_yml(text: str, build_yml: Path) -> BuildYmlFields:
    """build.yml's fields, or a ComponentError listing every problem, one `FILE:LINE:COL: key: what` a line."""
    fields = check_yaml_file(text, build_yml, Record(BuildYmlFields, _check_package), ComponentError)
    if fields is None:
        raise ComponentError(f"{build_yml}: empty; LinuxKit's build.yml needs at least `image:`")
    return fields
