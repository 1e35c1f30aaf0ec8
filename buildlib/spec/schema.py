"""The records of a LinuxKit-format spec, each dataclass doubling as its own schema.

Keys and types follow LinuxKit's JSON schema (src/cmd/linuxkit/moby/schema.go): unknown keys are
errors at every level, and a container field left out of the YAML stays None so the image's
`org.mobyproject.config` label can supply it later.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode

from ..errors import BadInput, BadReference
from .nodes import (
    BOOL,
    ID,
    INT,
    STR,
    STR_TAG,
    Choice,
    Context,
    FieldType,
    ListOf,
    Location,
    OctalMode,
    Pairs,
    Record,
    StringMap,
    YamlRecord,
    join,
    parse_fields,
    sequence_items,
    yfield,
    ymeta,
)
from .refs import ImageRef

PKG_TEMPLATE = "@pkg:"
STRS = ListOf(STR)
MAP = StringMap()


class Section(enum.Enum):
    ONBOOT = "onboot"
    ONSHUTDOWN = "onshutdown"
    SERVICES = "services"


class ImageType(FieldType[str]):
    """An image reference, checked but not expanded. `@pkg:DIR` is resolved here: DIR is relative to the
    spec file naming it, as in LinuxKit; without a resolver the template is kept for a later stage."""

    def parse(self, node: Node, ctx: Context, path: str) -> str | None:
        text = STR.parse(node, ctx, path)
        if text is None:
            return None
        if text.startswith(PKG_TEMPLATE):
            return self._package(text, node, ctx, path)
        if text.startswith("@"):
            ctx.issue(node, path, f"unknown template {text!r}: only {PKG_TEMPLATE}DIR is supported")
            return None
        checked = self._checked(text, node, ctx, path)
        return self._named(checked, node, ctx, path) if checked is not None else None

    def _named(self, text: str, node: Node, ctx: Context, path: str) -> str | None:
        """`distrokit/NAME` as the component it names (the project's own, else the built-in one)."""
        resolve = ctx.session.resolve_name
        try:
            named = resolve(text) if resolve is not None else None
        except BadInput as error:
            ctx.issue(node, path, f"{text}: {error}")
            return None
        return named or text

    def _checked(self, text: str, node: Node, ctx: Context, path: str) -> str | None:
        try:
            ImageRef.parse(text)
        except BadReference as error:
            ctx.issue(node, path, str(error))
            return None
        return text

    def _package(self, text: str, node: Node, ctx: Context, path: str) -> str | None:
        folder = ctx.base_dir / text[len(PKG_TEMPLATE) :]
        if folder.is_file():
            ctx.issue(node, path, f"{text}: {folder} is a file: name the folder, not the recipe file ({folder.parent})")
            return None
        if not folder.is_dir():
            ctx.issue(node, path, f"{text}: package folder {folder} does not exist")
            return None
        resolve = ctx.session.resolve_pkg
        if resolve is None:
            return text
        cache = ctx.session.packages
        if folder not in cache:
            try:
                cache[folder] = resolve(folder)
            except BadInput as error:
                cache[folder] = error
        resolved = cache[folder]
        if isinstance(resolved, BaseException):
            ctx.issue(node, path, f"{text}: {resolved}")
            return None
        return self._checked(resolved, node, ctx, path)


IMAGE = ImageType()


# ---- container configuration (LinuxKit's ImageConfig and the OCI pieces it embeds) --------------


@dataclass(frozen=True)
class IdMapping(YamlRecord):
    """A `uidMappings` / `gidMappings` entry of a container."""

    host_id: int | None = yfield(INT, "hostID")
    container_id: int | None = yfield(INT, "containerID")
    size: int | None = yfield(INT)


ID_MAPPINGS = ListOf(Record(IdMapping))


@dataclass(frozen=True)
class Mount(YamlRecord):
    """A container's mount, as in OCI's config.json."""

    destination: str | None = yfield(STR)
    type: str | None = yfield(STR)
    source: str | None = yfield(STR)
    options: tuple[str, ...] | None = yfield(STRS)
    uid_mappings: tuple[IdMapping, ...] | None = yfield(ID_MAPPINGS, "uidmappings")
    gid_mappings: tuple[IdMapping, ...] | None = yfield(ID_MAPPINGS, "gidmappings")


MOUNTS = ListOf(Record(Mount))


@dataclass(frozen=True)
class Device(YamlRecord):
    """A device node made in a container (`devices`)."""

    path: str | None = yfield(STR)
    type: str | None = yfield(STR)
    major: int | None = yfield(INT)
    minor: int | None = yfield(INT)
    mode: str | None = yfield(STR)


@dataclass(frozen=True)
class DeviceCgroup(YamlRecord):
    """A device cgroup rule (`resources.devices`)."""

    allow: bool | None = yfield(BOOL)
    type: str | None = yfield(STR)
    major: int | None = yfield(INT)
    minor: int | None = yfield(INT)
    access: str | None = yfield(STR)


@dataclass(frozen=True)
class Memory(YamlRecord):
    """Memory limits of a container (`resources.memory`)."""

    limit: int | None = yfield(INT)
    reservation: int | None = yfield(INT)
    swap: int | None = yfield(INT)
    kernel: int | None = yfield(INT)
    kernel_tcp: int | None = yfield(INT, "kernelTCP")
    swappiness: int | None = yfield(INT)
    disable_oom_killer: bool | None = yfield(BOOL, "disableOOMKiller")


@dataclass(frozen=True)
class Cpu(YamlRecord):
    """CPU limits of a container (`resources.cpu`)."""

    shares: int | None = yfield(INT)
    quota: int | None = yfield(INT)
    period: int | None = yfield(INT)
    realtime_runtime: int | None = yfield(INT)
    realtime_period: int | None = yfield(INT)
    cpus: str | None = yfield(STR)
    mems: str | None = yfield(STR)


@dataclass(frozen=True)
class Pids(YamlRecord):
    """The process limit of a container (`resources.pids`)."""

    limit: int | None = yfield(INT)


@dataclass(frozen=True)
class WeightDevice(YamlRecord):
    """A per-device block I/O weight (`resources.blockIO.weightDevice`)."""

    major: int | None = yfield(INT)
    minor: int | None = yfield(INT)
    weight: int | None = yfield(INT)
    leaf_weight: int | None = yfield(INT)


@dataclass(frozen=True)
class ThrottleDevice(YamlRecord):
    """A per-device block I/O rate limit (`resources.blockIO.throttle*`)."""

    major: int | None = yfield(INT)
    minor: int | None = yfield(INT)
    rate: int | None = yfield(INT)


THROTTLES = ListOf(Record(ThrottleDevice))
Throttles = tuple[ThrottleDevice, ...]


@dataclass(frozen=True)
class BlockIO(YamlRecord):
    """Block I/O limits of a container (`resources.blockIO`)."""

    weight: int | None = yfield(INT)
    leaf_weight: int | None = yfield(INT)
    weight_device: tuple[WeightDevice, ...] | None = yfield(ListOf(Record(WeightDevice)))
    throttle_read_bps_device: Throttles | None = yfield(THROTTLES)
    throttle_write_bps_device: Throttles | None = yfield(THROTTLES)
    throttle_read_iops_device: Throttles | None = yfield(THROTTLES, "throttleReadIOPSDevice")
    throttle_write_iops_device: Throttles | None = yfield(THROTTLES, "throttleWriteIOPSDevice")


@dataclass(frozen=True)
class HugepageLimit(YamlRecord):
    """A huge page limit (`resources.hugepageLimits`)."""

    page_size: int | None = yfield(INT)
    limit: int | None = yfield(INT)


@dataclass(frozen=True)
class InterfacePriority(YamlRecord):
    """A network priority of one interface (`resources.network.priorities`)."""

    name: str | None = yfield(STR)
    priority: int | None = yfield(INT)


@dataclass(frozen=True)
class Network(YamlRecord):
    """Network class and priorities of a container (`resources.network`)."""

    class_id: int | None = yfield(INT, "classID")
    priorities: tuple[InterfacePriority, ...] | None = yfield(ListOf(Record(InterfacePriority)))


@dataclass(frozen=True)
class Resources(YamlRecord):
    """A container's cgroup limits (`resources`)."""

    devices: tuple[DeviceCgroup, ...] | None = yfield(ListOf(Record(DeviceCgroup)))
    memory: Memory | None = yfield(Record(Memory))
    cpu: Cpu | None = yfield(Record(Cpu))
    pids: Pids | None = yfield(Record(Pids))
    blockio: BlockIO | None = yfield(Record(BlockIO), "blockio")
    hugepage_limits: tuple[HugepageLimit, ...] | None = yfield(ListOf(Record(HugepageLimit)))
    network: Network | None = yfield(Record(Network))


@dataclass(frozen=True)
class Interface(YamlRecord):
    """A network interface LinuxKit's runtime makes or moves for a container (`runtime.interfaces`)."""

    name: str | None = yfield(STR)
    add: str | None = yfield(STR)
    peer: str | None = yfield(STR)
    create_in_root: bool | None = yfield(BOOL)


@dataclass(frozen=True)
class Namespaces(YamlRecord):
    """The namespaces a container's runtime section joins by path (`runtime.namespaces`)."""

    cgroup: str | None = yfield(STR)
    ipc: str | None = yfield(STR)
    mnt: str | None = yfield(STR)
    net: str | None = yfield(STR)
    pid: str | None = yfield(STR)
    user: str | None = yfield(STR)
    uts: str | None = yfield(STR)


@dataclass(frozen=True)
class Runtime(YamlRecord):
    """What LinuxKit's init does at boot around a container (not part of its OCI config)."""

    cgroups: tuple[str, ...] | None = yfield(STRS)
    mounts: tuple[Mount, ...] | None = yfield(MOUNTS)
    mkdir: tuple[str, ...] | None = yfield(STRS)
    interfaces: tuple[Interface, ...] | None = yfield(ListOf(Record(Interface)))
    bind_ns: Namespaces | None = yfield(Record(Namespaces), "bindNS")
    namespace: str | None = yfield(STR)


@dataclass(frozen=True)
class Container(YamlRecord):
    """One entry of onboot, onshutdown or services. `index` is its place in the merged section."""

    section: Section
    index: int
    name: str = field(metadata=ymeta(STR, required=True))
    image: str = field(metadata=ymeta(IMAGE, required=True))
    location: Location = field(compare=False)
    capabilities: tuple[str, ...] | None = yfield(STRS)
    capabilities_add: tuple[str, ...] | None = yfield(STRS, "capabilities.add")
    ambient: tuple[str, ...] | None = yfield(STRS)
    mounts: tuple[Mount, ...] | None = yfield(MOUNTS)
    binds: tuple[str, ...] | None = yfield(STRS)
    binds_add: tuple[str, ...] | None = yfield(STRS, "binds.add")
    devices: tuple[Device, ...] | None = yfield(ListOf(Record(Device)))
    tmpfs: tuple[str, ...] | None = yfield(STRS)
    command: tuple[str, ...] | None = yfield(STRS)
    env: tuple[str, ...] | None = yfield(STRS)
    cwd: str | None = yfield(STR)
    net: str | None = yfield(STR)
    pid: str | None = yfield(STR)
    ipc: str | None = yfield(STR)
    uts: str | None = yfield(STR)
    userns: str | None = yfield(STR)
    hostname: str | None = yfield(STR)
    readonly: bool | None = yfield(BOOL)
    masked_paths: tuple[str, ...] | None = yfield(STRS)
    readonly_paths: tuple[str, ...] | None = yfield(STRS)
    uid: int | str | None = yfield(ID)
    gid: int | str | None = yfield(ID)
    additional_gids: tuple[int | str, ...] | None = yfield(ListOf(ID))
    no_new_privileges: bool | None = yfield(BOOL)
    oom_score_adj: int | None = yfield(INT)
    rootfs_propagation: str | None = yfield(STR)
    cgroups_path: str | None = yfield(STR)
    resources: Resources | None = yfield(Record(Resources))
    sysctl: Pairs | None = yfield(MAP)
    rlimits: tuple[str, ...] | None = yfield(STRS)
    uid_mappings: tuple[IdMapping, ...] | None = yfield(ID_MAPPINGS)
    gid_mappings: tuple[IdMapping, ...] | None = yfield(ID_MAPPINGS)
    annotations: Pairs | None = yfield(MAP)
    runtime: Runtime | None = yfield(Record(Runtime))


LABEL_ONLY_IN_YAML = ("name", "image")


def label_fields(node: Node, ctx: Context, path: str) -> dict[str, Any] | None:
    """The fields of an `org.mobyproject.config` label: a container's, less its name and image, which
    only a spec gives. The image's label and a component recipe's `moby:` are checked by this one rule."""
    if not isinstance(node, MappingNode):
        ctx.issue(node, path, "expected a mapping of container fields (as a spec's onboot entry has)")
        return None
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value in LABEL_ONLY_IN_YAML:
            ctx.issue(key_node, join(path, key_node.value), "cannot be set in an image's label, only in a spec")
            return None
    stand_ins = [(ScalarNode(STR_TAG, key), ScalarNode(STR_TAG, "label", style='"')) for key in LABEL_ONLY_IN_YAML]
    return parse_fields(MappingNode(node.tag, [*node.value, *stand_ins]), ctx, path, Container)


class LabelType(FieldType[dict[str, Any]]):
    """A `moby:` mapping in a component recipe, checked as the image label it becomes."""

    def parse(self, node: Node, ctx: Context, path: str) -> dict[str, Any] | None:
        before = ctx.issue_count
        values = label_fields(node, ctx, path)
        return values if values is not None and ctx.issue_count == before else None


class ContainerList(FieldType[tuple[Container, ...]]):
    def __init__(self, section: Section) -> None:
        self.section = section

    def parse(self, node: Node, ctx: Context, path: str) -> tuple[Container, ...] | None:
        items = sequence_items(node, ctx, path)
        if items is None:
            return None
        containers = []
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            values = parse_fields(item, ctx, item_path, Container)
            if values is None:
                continue
            # The name becomes a directory (containers/<section>/NNN-name) and a containerd id.
            if values["name"] in ("", ".", "..") or "/" in values["name"]:
                ctx.issue(item, join(item_path, "name"), f"{values['name']!r} cannot name a container")
                continue
            location = ctx.location(item)
            containers.append(Container(section=self.section, index=index, location=location, **values))
        return tuple(containers)

    def dump(self, value: tuple[Container, ...]) -> list[dict[str, Any]]:
        return [container.to_dict() for container in value]


# ---- kernel, files, volumes, trust ---------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """The kernel with LinuxKit's defaults applied: `binary` is the file taken from the image, `tar`
    the tarball unpacked into the root (None: none, spelled `tar: none` in YAML)."""

    image: str
    cmdline: str = ""
    binary: str = "kernel"
    tar: str | None = "kernel.tar"
    ucode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image}
        if self.cmdline:
            out["cmdline"] = self.cmdline
        out["binary"] = self.binary
        out["tar"] = self.tar if self.tar is not None else "none"
        if self.ucode is not None:
            out["ucode"] = self.ucode
        return out


@dataclass(frozen=True)
class KernelFields(YamlRecord):
    """A `kernel:` section as one file gives it; several files merge field by field (LinuxKit's
    AppendConfig), so defaults wait until the merge is done."""

    location: Location = field(compare=False)
    image: str | None = yfield(IMAGE)
    cmdline: str | None = yfield(STR)
    binary: str | None = yfield(STR)
    tar: str | None = yfield(STR)
    ucode: str | None = yfield(STR)


@dataclass(frozen=True)
class FileEntry(YamlRecord):
    """One `files` entry of a spec: a file, folder or symlink written into the root."""

    path: str = field(metadata=ymeta(STR, required=True))
    location: Location = field(compare=False)
    directory: bool = yfield(BOOL, default=False)
    symlink: str | None = yfield(STR)
    contents: str | None = yfield(STR)
    source: str | None = yfield(STR)
    metadata: str | None = yfield(Choice("yaml", "json"))
    optional: bool = yfield(BOOL, default=False)
    mode: int | None = yfield(OctalMode())
    uid: int | str | None = yfield(ID)
    gid: int | str | None = yfield(ID)


_FILE_KINDS = ("contents", "source", "directory", "symlink", "metadata")


def check_file(node: Node, ctx: Context, path: str, values: dict[str, Any]) -> None:
    """LinuxKit's rules for a file entry, made strict: exactly one kind of content, and a path that
    stays inside the image. It strips a leading "/" and expands "~/" in `source`, and so do we."""
    kinds = [kind for kind in _FILE_KINDS if values.get(kind) not in (None, False)]
    if len(kinds) != 1:
        got = f"; got {', '.join(kinds)}" if kinds else ""
        ctx.issue(node, path, f"give exactly one of {', '.join(_FILE_KINDS)}{got}")
    target = PurePosixPath(values["path"].lstrip("/"))
    if not target.parts or ".." in target.parts:
        ctx.issue(node, join(path, "path"), f"{values['path']!r} must name a path inside the image")
    values["path"] = str(target)
    source = values.get("source")
    if source is not None and source.startswith("~/"):
        values["source"] = str(Path.home() / source[2:])


FILE = Record(FileEntry, check_file)


@dataclass(frozen=True)
class Volume(YamlRecord):
    """One `volumes` entry: a named volume, empty or from an image, containers mount."""

    name: str = field(metadata=ymeta(STR, required=True))
    location: Location = field(compare=False)
    image: str | None = yfield(IMAGE)
    readonly: bool = yfield(BOOL, default=False)
    format: str | None = yfield(Choice("oci", "filesystem"))
    platforms: tuple[str, ...] = yfield(STRS, default=())


# LinuxKit's volume name rule, minus the empty name it lets through.
VOLUME_NAME = re.compile(r"[a-z0-9_-]+")


def check_volume(node: Node, ctx: Context, path: str, values: dict[str, Any]) -> None:
    if not VOLUME_NAME.fullmatch(values["name"]):
        message = f"{values['name']!r} is not a volume name: use lower-case letters, digits, '-' and '_'"
        ctx.issue(node, join(path, "name"), message)


@dataclass(frozen=True)
class Trust(YamlRecord):
    """Docker Content Trust settings: validated, then ignored."""

    location: Location = field(compare=False)
    image: tuple[str, ...] | None = yfield(STRS)
    org: tuple[str, ...] | None = yfield(STRS)


@dataclass(frozen=True)
class Document(YamlRecord):
    """One spec file, before merging. Its fields are LinuxKit's top-level keys."""

    kernel: KernelFields | None = yfield(Record(KernelFields))
    init: tuple[str, ...] = yfield(ListOf(IMAGE), default=())
    onboot: tuple[Container, ...] = yfield(ContainerList(Section.ONBOOT), default=())
    onshutdown: tuple[Container, ...] = yfield(ContainerList(Section.ONSHUTDOWN), default=())
    services: tuple[Container, ...] = yfield(ContainerList(Section.SERVICES), default=())
    trust: Trust | None = yfield(Record(Trust))
    files: tuple[FileEntry, ...] = yfield(ListOf(FILE), default=())
    volumes: tuple[Volume, ...] = yfield(ListOf(Record(Volume, check_volume)), default=())
