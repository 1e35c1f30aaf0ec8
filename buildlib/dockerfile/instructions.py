"""What distrokit needs to know of a Dockerfile without building it: its instructions with their line
numbers (to name the line of a failing step), and the images its FROM lines name (to resolve them
through the store, by digest, before buildah runs)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_ARG_USE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts, from 1
    keyword: str  # upper case: FROM, RUN, ...
    text: str  # the whole instruction on one line, continuations joined


def instructions(dockerfile: Path) -> list[Instruction]:
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(dockerfile.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        if stripped and not stripped.startswith("#"):
            pending.append(stripped)
        text = " ".join(part for part in pending if part)
        pending = []
        found.append(Instruction(start, text.split(None, 1)[0].upper(), text))
    return found


def base_images(dockerfile: Path, build_args: Mapping[str, str]) -> list[str]:
    """The images the FROM lines name, `${ARG}`s filled from the ARGs before the first FROM and the build
    args; neither `scratch` nor an earlier stage's name."""
    defaults: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    for item in instructions(dockerfile):
        words = item.text.split()
        if item.keyword == "ARG" and not images and len(words) > 1:
            name, _, value = words[1].partition("=")
            defaults[name] = build_args.get(name, value.strip('"'))
        if item.keyword != "FROM":
            continue
        names = [w for w in words[1:] if not w.startswith("--")]
        image = _ARG_USE.sub(lambda m: {**defaults, **build_args}.get(m.group(1), ""), names[0]) if names else ""
        if len(names) >= 3 and names[1].lower() == "as":
            stages.add(names[2])
        if image and image != "scratch" and image not in stages and image not in images:
            images.append(image)
    return images


def find_step(dockerfile: Path, step: str) -> Instruction | None:
    """The instruction buildah reports as failing (`building at STEP "RUN ..."`), found by its text."""
    wanted = " ".join(step.split())
    for item in instructions(dockerfile):
        if " ".join(item.text.split()) == wanted:
            return item
    return None
