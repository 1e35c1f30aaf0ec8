"""`components`, `init` and `doctor`: what a user outside this repository starts with."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..lazy import lazy_module
from . import jsonout
from .common import Subparsers, component_root, err_console, print_table

if TYPE_CHECKING:
    from ..debian import catalog
    from ..tasks import scaffold
    from ..upkeep import doctor
else:
    catalog, doctor = lazy_module("buildlib.debian.catalog"), lazy_module("buildlib.upkeep.doctor")
    scaffold = lazy_module("buildlib.tasks.scaffold")


def cmd_components(args: argparse.Namespace) -> int:
    builtin = catalog.catalog()
    own = {c.name: c for c in catalog.catalog(component_root(args))} if component_root(args).is_dir() else {}
    rows = [_row(own.get(c.name, c), c.name in own) for c in builtin]
    rows += [_row(c, True) for name, c in sorted(own.items()) if name not in {b.name for b in builtin}]
    if jsonout.wanted(args):
        keys = ("name", "image", "linuxkit", "what", "folder")
        jsonout.emit("components", {"components": [dict(zip(keys, row, strict=True)) for row in rows]})
        return 0
    print_table(("component", "image", "stands in for", "what it is"), [row[:4] for row in rows])
    return 0


def _row(component: catalog.Component, own: bool) -> list[str]:
    where = str(component.folder) if own else "built in"
    return [component.name, f"distrokit/{component.name}", component.linuxkit or "-", component.summary, where]


def cmd_init(args: argparse.Namespace) -> int:
    project = scaffold.init_project(Path(args.dir))
    for file in project.files:
        err_console.print(f"wrote {file}", markup=False)
    folder = "" if Path(args.dir).resolve() == Path.cwd() else f"cd {args.dir} && "
    err_console.print(
        f"next: {folder}distrokit build {project.name}.yml && distrokit run {project.name}   (or `doit` for out/)",
        markup=False,
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    checkup = doctor.checkup()
    rows = [
        [f.tool.probe, f.tool.package, f.found or "MISSING", f.tool.used_for + (" (needed)" if f.tool.needed else "")]
        for f in checkup.findings
    ]
    print_table(("tool", "Debian package", "found", "used for"), rows)
    err_console.print(f"KVM: {'usable' if checkup.kvm else 'not usable'}: {checkup.kvm_reason}", markup=False)
    if not checkup.kvm:
        err_console.print("guests run under TCG (software emulation): slower, but everything works", markup=False)
    if checkup.missing:
        err_console.print(f"install what is missing with: {checkup.apt_line()}", markup=False)
    else:
        err_console.print("every host tool distrokit drives is installed", markup=False)
    return 1 if checkup.missing_needed else 0


def register(sub: Subparsers) -> None:
    components = sub.add_parser(
        "components", help="list the component images built into distrokit (distrokit/NAME in a spec)"
    )
    jsonout.add_flag(components)
    components.set_defaults(func=cmd_components)
    init = sub.add_parser("init", help="write a starting project: a spec of built-in components, a dodo.py")
    init.add_argument("dir", nargs="?", default=".", help="the project folder (default: the current folder)")
    init.set_defaults(func=cmd_init)
    doctor_command = sub.add_parser(
        "doctor", help="which host tools are missing (and their Debian packages), and whether KVM works"
    )
    doctor_command.set_defaults(func=cmd_doctor)
