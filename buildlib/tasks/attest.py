"""The provenance of a finished build (`build --provenance KEY.pem`): what the plan built from, gathered
from the store, for buildlib.release.provenance to state and sign."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path

from .. import __version__, outputs
from ..debian import recipes
from ..debian.builds import host_tool_versions
from ..release import provenance
from .families import BuildOptions, load_images
from .keys import tool_versions
from .plan import Plan


def output_files(options: BuildOptions) -> list[Path]:
    """Every file the build's formats wrote in the output folder (the statement's subjects)."""
    prefix = options.out_dir / options.name
    found = {path for name in options.formats for path in outputs.get_format(name).targets(prefix)}
    return sorted(path for path in found if path.is_file())


def dependencies(plan: Plan) -> tuple[provenance.Dependency, ...]:
    """Every image the plan's specs name, by manifest digest, and every .deb a component image records."""
    refs = sorted({ref for use in plan.uses for ref in use.refs})
    found = []
    for ref, image in load_images(plan.store, refs).items():
        found.append(provenance.Dependency(ref, image.manifest_digest))
        labels = image.labels
        checksums = recipes.recorded_checksums(labels)
        arches = recipes.recorded_architectures(labels, plan.store.arch)
        for name, version in recipes.recorded_packages(labels):
            if name in checksums:
                uri = provenance.deb_uri(name, version, arches.get(name, plan.store.arch))
                found.append(provenance.Dependency(uri, checksums[name], name))
    return tuple(found)


def inputs(plan: Plan, spec_files: Sequence[Path], options: BuildOptions, lock_file: Path | None) -> provenance.Inputs:
    asked = {
        "name": options.name,
        "formats": list(options.formats),
        "arch": options.arch,
        "compression": options.compression.value,
        "size": options.size,
        **options.habits(),
    }
    builder = {"distrokit": __version__, "python": platform.python_version(), **tool_versions()}
    builder.update(host_tool_versions(plan.store.root))
    return provenance.Inputs(tuple(spec_files), asked, dependencies(plan), builder, lock_file)


def write_provenance(
    plan: Plan, spec_files: Sequence[Path], options: BuildOptions, lock_file: Path | None, key_file: Path
) -> Path:
    """NAME.intoto.jsonl beside the outputs: the signed statement of this build."""
    document = provenance.statement(output_files(options), inputs(plan, spec_files, options, lock_file))
    target = options.out_dir / f"{options.name}{provenance.SUFFIX}"
    provenance.write(provenance.sign(document, key_file), target)
    return target
