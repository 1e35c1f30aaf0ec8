"""The schema of a component recipe (`component.yml`), checked as a spec is: unknown keys at every
level and wrong types are errors with file:line:column and the field path, and `config.moby` is
checked by the same rule as an image's `org.mobyproject.config` label, so a typo there fails at
`pkg build` on the recipe's own line instead of at a later spec build on the image's label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yaml.nodes import Node, ScalarNode

from ..errors import ComponentError
from ..spec.nodes import (
    BOOL,
    STR,
    Choice,
    Context,
    FieldType,
    ListOf,
    OctalMode,
    Record,
    StringMap,
    YamlRecord,
    check_yaml_file,
    yfield,
)
from ..spec.schema import LabelType

STRS = ListOf(STR)
LAYOUTS = ("root", "kernel")
# what a `files:` entry is made from; at most one of them (none: an empty file)
FILE_SOURCES = ("source", "contents", "symlink", "directory", "concat")


class ModulesType(FieldType[Any]):
    """A kernel recipe's `modules:`: `all`, or a list of module names and globs."""

    def parse(self, node: Node, ctx: Context, path: str) -> Any:
        if isinstance(node, ScalarNode):
            if node.value == "all":
                return node.value
            ctx.issue(node, path, f"give `all` or a list of module names or globs, e.g. [virtio*], not {node.value!r}")
            return None
        return STRS.parse(node, ctx, path)


@dataclass(frozen=True)
class RecipeFileFields(YamlRecord):
    """A `files` entry of component.yml, as written."""

    path: str | None = yfield(STR)
    source: str | None = yfield(STR)
    contents: str | None = yfield(STR)
    mode: int | None = yfield(OctalMode())
    symlink: str | None = yfield(STR)
    directory: bool | None = yfield(BOOL)
    concat: str | None = yfield(STR)


def _check_file(node: Node, ctx: Context, path: str, values: dict[str, Any]) -> None:
    if "path" not in values:
        ctx.issue(node, path, "missing required key 'path'")
    given = [key for key in FILE_SOURCES if values.get(key) not in (None, False)]
    if len(given) > 1:
        ctx.issue(node, path, f"give one of {', '.join(FILE_SOURCES)}, not {' and '.join(given)}")
    source = values.get("source")
    if source is not None and not (ctx.base_dir / source).is_file():
        ctx.issue(node, f"{path}.source", f"{source}: no such file in the component folder {ctx.base_dir}")


@dataclass(frozen=True)
class ConfigFields(YamlRecord):
    """The `config` section of component.yml (the image config), as written."""

    entrypoint: tuple[str, ...] | None = yfield(STRS)
    cmd: tuple[str, ...] | None = yfield(STRS)
    env: tuple[str, ...] | None = yfield(STRS)
    workdir: str | None = yfield(STR)
    labels: Any = yfield(StringMap())
    moby: dict[str, Any] | None = yfield(LabelType())


@dataclass(frozen=True)
class RecipeFields(YamlRecord):
    """component.yml as written: every key, checked, before defaults apply."""

    name: str | None = yfield(STR)
    packages: tuple[str, ...] | None = yfield(STRS)
    follow: tuple[str, ...] | None = yfield(STRS)
    # per architecture (see debarch), in place of packages:/follow: when building for it
    packages_amd64: tuple[str, ...] | None = yfield(STRS, "packages-amd64")
    packages_arm64: tuple[str, ...] | None = yfield(STRS, "packages-arm64")
    packages_riscv64: tuple[str, ...] | None = yfield(STRS, "packages-riscv64")
    follow_amd64: tuple[str, ...] | None = yfield(STRS, "follow-amd64")
    follow_arm64: tuple[str, ...] | None = yfield(STRS, "follow-arm64")
    follow_riscv64: tuple[str, ...] | None = yfield(STRS, "follow-riscv64")
    layout: str | None = yfield(Choice(*LAYOUTS))
    keep: tuple[str, ...] | None = yfield(STRS)
    exclude: tuple[str, ...] | None = yfield(STRS)
    busybox_links: bool | None = yfield(BOOL, "busybox-links")
    depends: bool | None = yfield(BOOL)
    whole_packages: bool | None = yfield(BOOL, "whole-packages")
    files: tuple[RecipeFileFields, ...] | None = yfield(ListOf(Record(RecipeFileFields, _check_file)))
    config: ConfigFields | None = yfield(Record(ConfigFields))
    modules: Any = yfield(ModulesType())
    modules_amd64: Any = yfield(ModulesType(), "modules-amd64")
    modules_arm64: Any = yfield(ModulesType(), "modules-arm64")
    modules_riscv64: Any = yfield(ModulesType(), "modules-riscv64")


def check_recipe(text: str, recipe_file: Path) -> None:
    """Raise ComponentError listing every problem of a recipe's text, one `FILE:LINE:COL: field: what` a line."""
    check_yaml_file(text, recipe_file, Record(RecipeFields), ComponentError)
