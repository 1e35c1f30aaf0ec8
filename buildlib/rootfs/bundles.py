"""Per container: the OCI runtime spec (config.json) and LinuxKit's runtime.json, with LinuxKit's semantics.

What LinuxKit does (src/cmd/linuxkit/moby/config.go, ConfigToOCI), and so do we:
- The image's `org.mobyproject.config` label gives defaults; a field given in the YAML replaces the
  label's. `capabilities.add` and `binds.add` append to the label's list; `capabilities`/`binds` replace
  it (given both, LinuxKit drops the `.add`; we append it to the YAML list).
- command, env and cwd fall back to the image config (Entrypoint+Cmd, Env, WorkingDir; cwd "/").
- Default mounts /proc, /dev, /dev/pts, /sys, /sys/fs/cgroup, then tmpfs, binds and mounts, one mount
  per destination (the later wins), sorted by destination.
- Namespaces: pid new by default; net, ipc, uts and user the host's; `new` makes one, a path joins one.
  A new mount namespace always.
- uid/gid may name another container: containers get ids from 100 in onboot, onshutdown, services order.
Where we differ, on purpose: volume names are rewritten in `mounts` too (LinuxKit forgets), a
read-only volume is checked in every YAML bind and mount (last of ro/rw wins, as in mount(8)),
`all`/`none` count anywhere in a capability list, `none` means a new namespace for every kind, a
namespace path must be absolute, and duplicate capabilities are dropped (LinuxKit meant to).
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode

from ..errors import BadInput
from ..spec.model import Container, Mount, Section, Spec, Volume
from ..spec.nodes import Context, Location, Session
from ..spec.schema import label_fields
from ..store.images import Image

OCI_VERSION = "1.2.1"
MOBY_LABEL = "org.mobyproject.config"
MAX_LABEL = 1 << 20  # characters: a label is a few hundred; a bigger one is an attack on the parser
FIRST_ID = 100
VOLUMES_DIR = "/containers/volumes"
UNLIMITED = 2**64 - 1

# LinuxKit's "all": every capability its capability package knows, in kernel order.
ALL_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
RLIMITS = frozenset(
    {
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_DATA",
        "RLIMIT_STACK",
        "RLIMIT_CORE",
        "RLIMIT_RSS",
        "RLIMIT_NPROC",
        "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_AS",
        "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
    }
)
_DEFAULT_MOUNTPOINTS = {"proc": "/proc", "devpts": "/dev/pts", "sysfs": "/sys", "cgroup": "/sys/fs/cgroup"}
_DEFAULT_MOUNTPOINTS["mqueue"] = "/dev/mqueue"
# (YAML field, OCI namespace type, default): pid is new unless asked; the others are the host's.
_NAMESPACES = (
    ("net", "network", "root"),
    ("ipc", "ipc", "root"),
    ("uts", "uts", "root"),
    ("pid", "pid", ""),
    ("userns", "user", "root"),
)


@dataclass(frozen=True)
class ImageDefaults:
    """What a bundle takes from its image: the command, env and cwd of its config, and its label."""

    command: tuple[str, ...] = ()
    env: tuple[str, ...] | None = None
    cwd: str = ""
    label: Container | None = None


@dataclass(frozen=True, eq=False)
class BundleContext:
    """What a bundle needs of the rest of the spec: container ids by name, and the volumes."""

    ids: tuple[tuple[str, int], ...] = ()
    volumes: tuple[Volume, ...] = ()


@dataclass(frozen=True)
class Bundle:
    """A container's bundle files: config.json and runtime.json, and whether its root is read-only."""

    readonly: bool
    config_json: bytes
    runtime_json: bytes


def context_of(spec: Spec) -> BundleContext:
    """Each container's id (from 100, in LinuxKit's order: onboot, onshutdown, services) and the volumes."""
    ids = tuple((c.name, FIRST_ID + i) for i, c in enumerate(spec.containers()))
    return BundleContext(ids=ids, volumes=spec.volumes)


def describe(container: Container) -> str:
    return f"{container.location}: {container.section.value}[{container.index}] ({container.name})"


# the image: its config and label --------------------------------------------------------------
def image_defaults(image: Image) -> ImageDefaults:
    config = image.runtime_config
    command = tuple(config.get("Entrypoint") or ()) + tuple(config.get("Cmd") or ())
    env = config.get("Env")
    label_text = image.labels.get(MOBY_LABEL, "")
    label = parse_label(label_text, f"{image.ref} label {MOBY_LABEL}") if label_text else None
    return ImageDefaults(command, tuple(env) if env is not None else None, config.get("WorkingDir") or "", label)


def parse_label(text: str, where: str) -> Container:
    """A `org.mobyproject.config` label (JSON or YAML) as a Container record, checked by the spec's schema."""
    if len(text) > MAX_LABEL:
        raise BadInput(f"{where}: {len(text)} characters, more than a label may hold ({MAX_LABEL}): fix or rebuild it")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError as error:
        raise BadInput(f"{where}: nested too deeply to be a label: fix or rebuild the image") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise BadInput(f"{where}: not valid JSON or YAML ({problem}{at}): fix or rebuild the image") from error
    if not isinstance(node, MappingNode):
        raise BadInput(f"{where}: must be a JSON object: fix or rebuild the image")
    session = Session()
    values = label_fields(node, Context(where, Path("."), session), "")
    if session.issues or values is None:
        raise BadInput(
            "; ".join(str(issue) for issue in session.issues) or f"{where}: invalid: fix or rebuild the image"
        )
    location = Location(where, 1, 1)
    return Container(section=Section.SERVICES, index=0, location=location, **values)


# merging label and YAML -----------------------------------------------------------------------
def _given(container: Container, label: Container | None, name: str) -> Any:
    """The YAML value when given, else the label's (an empty string counts as not given, as in LinuxKit)."""
    value = getattr(container, name)
    if value is not None and value != "":
        return value
    return getattr(label, name) if label is not None else None


def _appended(label_list: Sequence[str] | None, added: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*(label_list or ()), *(added or ())]))


def readonly_of(container: Container, label: Container | None) -> bool:
    return bool(_given(container, label, "readonly"))


# volumes --------------------------------------------------------------------------------------
def _last_of(options: Iterable[str], default: str) -> str:
    found = default
    for option in options:
        if option in ("ro", "rw"):
            found = option
    return found


def _volume(container: Container, context: BundleContext, name: str, field: str, options: Sequence[str]) -> str:
    volume = next((v for v in context.volumes if v.name == name), None)
    if volume is None:
        raise BadInput(
            f"{describe(container)}: {field} names volume {name!r}, which the spec does not declare: "
            "add it under `volumes:` or give an absolute host path"
        )
    if volume.readonly and _last_of(options, "rw") != "ro":
        raise BadInput(
            f"{describe(container)}: {field} mounts volume {name!r} read-write, but the volume is read-only: "
            f"add `:ro` to the bind (or `ro` to the mount options), or drop `readonly: true` from volume {name!r}"
        )
    return posixpath.join(VOLUMES_DIR, name, "merged")


def _rewrite_binds(container: Container, context: BundleContext, field: str) -> tuple[str, ...] | None:
    binds: tuple[str, ...] | None = getattr(container, field)
    if binds is None:
        return None
    out = []
    for i, bind in enumerate(binds):
        parts = bind.split(":")
        if not parts[0].startswith("/"):
            options = parts[2].split(",") if len(parts) > 2 else []
            parts[0] = _volume(container, context, parts[0], f"{_key(field)}[{i}]", options)
        out.append(":".join(parts))
    return tuple(out)


def _key(field: str) -> str:
    return {"binds_add": "binds.add"}.get(field, field)


def with_volume_paths(container: Container, context: BundleContext) -> Container:
    """The container with volume names in its YAML binds, binds.add and bind mounts replaced by the
    volumes' merged paths; a read-write use of a read-only volume is a BadInput."""
    mounts = container.mounts
    if mounts is not None:
        mounts = tuple(
            dataclasses.replace(m, source=_volume(container, context, m.source, f"mounts[{i}]", m.options or ()))
            if m.type == "bind" and m.source and not m.source.startswith("/")
            else m
            for i, m in enumerate(mounts)
        )
    binds, binds_add = _rewrite_binds(container, context, "binds"), _rewrite_binds(container, context, "binds_add")
    return dataclasses.replace(container, mounts=mounts, binds=binds, binds_add=binds_add)


def check_volumes(spec: Spec) -> None:
    """Every container's YAML binds and mounts against the spec's volumes, before anything is pulled."""
    problems = volume_problems(spec)
    if problems:
        raise BadInput("\n".join(problems))


def volume_problems(spec: Spec) -> list[str]:
    """What is wrong with the containers' binds and mounts against the spec's volumes (one line each)."""
    context = context_of(spec)
    problems = []
    for container in spec.containers():
        try:
            with_volume_paths(container, context)
        except BadInput as error:
            problems.append(str(error))
    return problems


# config.json ----------------------------------------------------------------------------------
def make_bundle(
    container: Container, defaults: ImageDefaults, context: BundleContext, prefix: str, root: str
) -> Bundle:
    """config.json and runtime.json of the container whose bundle is at `prefix` (e.g.
    containers/onboot/000-x) and whose image tree is at `root` (its own rootfs or lower, or another's)."""
    yaml_side = with_volume_paths(container, context)
    label = defaults.label
    readonly = readonly_of(yaml_side, label)
    config = {
        "ociVersion": OCI_VERSION,
        "process": _process(yaml_side, defaults, context),
        "root": _drop_empty({"path": "rootfs", "readonly": readonly}),
        "hostname": _given(yaml_side, label, "hostname") or None,
        "mounts": _mounts(yaml_side, label, readonly),
        "annotations": dict(_given(yaml_side, label, "annotations") or ()),
        "linux": _linux(yaml_side, label),
    }
    runtime = _runtime(yaml_side, label, prefix, root, readonly)
    return Bundle(readonly, _json(_drop_empty(config)), _json(runtime))


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=4, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def _drop_empty(values: Mapping[str, Any]) -> dict[str, Any]:
    """Go's `omitempty`: leave out None, False, "" and empty lists and maps."""
    return {k: v for k, v in values.items() if not (v is None or v is False or (isinstance(v, Sized) and not v))}


def _process(container: Container, defaults: ImageDefaults, context: BundleContext) -> dict[str, Any]:
    label = defaults.label
    command = _given(container, label, "command")
    env = _given(container, label, "env")
    user: dict[str, Any] = {
        "uid": _numeric_id(container, _given(container, label, "uid"), context),
        "gid": _numeric_id(container, _given(container, label, "gid"), context),
    }
    groups = [_numeric_id(container, gid, context) for gid in _given(container, label, "additional_gids") or ()]
    if groups:
        user["additionalGids"] = groups
    process = {
        "args": list(command if command is not None else defaults.command),
        "env": list(env if env is not None else defaults.env or ()),
        "capabilities": _capabilities(container, label),
        "rlimits": _rlimits(container, _given(container, label, "rlimits") or ()),
        "noNewPrivileges": bool(_given(container, label, "no_new_privileges")),
        "oomScoreAdj": _given(container, label, "oom_score_adj"),
    }
    cwd = _given(container, label, "cwd") or defaults.cwd or "/"
    # LinuxKit always writes capabilities, even as {}: runc then starts the process with none.
    return _drop_empty(process) | {"terminal": False, "user": user, "cwd": cwd, "capabilities": process["capabilities"]}


def numeric_id(value: int | str | None, ids: Mapping[str, int], where: str) -> int:
    """A uid or gid: a number, `root`, or a container's name (LinuxKit's ids from 100)."""
    if value is None or value in ("", "root"):
        return 0
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    if value not in ids:
        raise BadInput(
            f"{where}: no container is named {value!r}, so it cannot be a uid or gid: "
            f"use a number or one of {', '.join(sorted(ids)) or '(no containers)'}"
        )
    return ids[value]


def _numeric_id(container: Container, value: int | str | None, context: BundleContext) -> int:
    return numeric_id(value, dict(context.ids), describe(container))


def _capability_list(container: Container, values: Sequence[str], field: str) -> list[str]:
    lowered = [value.lower() for value in values]
    if "all" in lowered:
        return list(ALL_CAPABILITIES)
    out = []
    for value in values:
        if value.lower() == "none":
            continue
        name = value.upper() if value.upper().startswith("CAP_") else "CAP_" + value.upper()
        if name not in ALL_CAPABILITIES:
            raise BadInput(
                f"{describe(container)}: {field}: unknown capability {value!r} (e.g. CAP_NET_ADMIN, all, none)"
            )
        out.append(name)
    return list(dict.fromkeys(out))


def _capabilities(container: Container, label: Container | None) -> dict[str, Any]:
    base = container.capabilities if container.capabilities is not None else label.capabilities if label else None
    given = _appended(base, container.capabilities_add)
    effective = _capability_list(container, given, "capabilities")
    ambient = _capability_list(container, _given(container, label, "ambient") or (), "ambient")
    bounding = sorted(set(effective) | set(ambient))
    sets = {"bounding": bounding, "effective": effective, "inheritable": bounding, "permitted": bounding}
    return _drop_empty(sets | {"ambient": ambient})


def _rlimits(container: Container, values: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for text in values:
        parts = [part.strip() for part in text.split(",", 2)]
        if len(parts) != 3:
            raise BadInput(f"{describe(container)}: rlimit {text!r} is not NAME,SOFT,HARD (e.g. nofile,1024,4096)")
        name = parts[0].upper() if parts[0].upper().startswith("RLIMIT_") else "RLIMIT_" + parts[0].upper()
        if name not in RLIMITS:
            raise BadInput(f"{describe(container)}: unknown rlimit {parts[0]!r} in {text!r}")
        soft, hard = (_limit(container, value, text) for value in parts[1:])
        out.append({"type": name, "soft": soft, "hard": hard})
    return out


def _limit(container: Container, value: str, text: str) -> int:
    if value.lower() == "unlimited":
        return UNLIMITED
    if not value.isdigit() or int(value) > UNLIMITED:
        raise BadInput(f"{describe(container)}: rlimit {text!r}: {value!r} is not a number or 'unlimited'")
    return int(value)


# mounts ---------------------------------------------------------------------------------------
def _mounts(container: Container, label: Container | None, readonly: bool) -> list[dict[str, Any]]:
    ro = ["ro"] if readonly else []
    mounts: dict[str, dict[str, Any]] = {}
    for destination, kind, options in (
        ("/proc", "proc", ["nosuid", "nodev", "noexec", "relatime"]),
        ("/dev", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k", *ro]),
        ("/dev/pts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]),
        ("/sys", "sysfs", ["nosuid", "noexec", "nodev", *ro]),
        ("/sys/fs/cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
    ):
        mounts[destination] = _mount(destination, kind, kind, options)
    for text in _given(container, label, "tmpfs") or ():
        parts = text.split(":")
        if len(parts) > 2:
            raise BadInput(f"{describe(container)}: tmpfs {text!r} has more than one ':' (give /dest:opt1,opt2)")
        mounts[parts[0]] = _mount(parts[0], "tmpfs", "tmpfs", parts[1].split(",") if len(parts) == 2 else [])
    for text in _binds(container, label):
        parts = text.split(":")
        if not 2 <= len(parts) <= 3:
            raise BadInput(f"{describe(container)}: bind {text!r} is not /source:/dest[:options]")
        options = [*parts[2].split(","), "rbind"] if len(parts) == 3 else ["rw", "rbind", "rshared"]
        mounts[parts[1]] = _mount(parts[1], "bind", parts[0], options)
    for mount in _given(container, label, "mounts") or ():
        full = _full_mount(container, mount)
        mounts[full["destination"]] = full
    return [mounts[destination] for destination in sorted(mounts)]


def _binds(container: Container, label: Container | None) -> tuple[str, ...]:
    base = container.binds if container.binds is not None else label.binds if label else None
    return _appended(base, container.binds_add)


def _mount(destination: str, kind: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    return _drop_empty({"destination": destination, "type": kind, "source": source, "options": list(options)})


def _full_mount(container: Container, mount: Mount) -> dict[str, Any]:
    """A `mounts` entry with LinuxKit's defaults: type from a well-known source, source from the type,
    destination from the type."""
    kind, source, destination = mount.type or "", mount.source or "", mount.destination or ""
    if not kind and source in ("mqueue", "devpts", "proc", "sysfs", "cgroup"):
        kind = source
    if not kind and destination == "/dev":
        kind = "tmpfs"
    if not kind:
        raise BadInput(f"{describe(container)}: the mount on {destination or '?'} needs a `type`")
    destination = destination or _DEFAULT_MOUNTPOINTS.get(kind, "")
    if not destination:
        raise BadInput(f"{describe(container)}: a mount of type {kind} needs a `destination`")
    return _mount(destination, kind, source or kind, mount.options or ())


def _oci_mount(mount: Mount) -> dict[str, Any]:
    """A `runtime.mounts` entry as given, in the runtime spec's key names."""
    out = mount.to_dict()
    for key, oci in (("uidmappings", "uidMappings"), ("gidmappings", "gidMappings")):
        if key in out:
            out[oci] = [_id_mapping(m) for m in out.pop(key)]
    return out


def _id_mapping(mapping: Mapping[str, int]) -> dict[str, int]:
    return {key: mapping.get(key, 0) for key in ("containerID", "hostID", "size")}


# linux ----------------------------------------------------------------------------------------
def _namespaces(container: Container, label: Container | None) -> list[dict[str, str]]:
    out = []
    for field, kind, default in _NAMESPACES:
        value = _given(container, label, field) or default
        if value in ("host", "root"):
            continue
        if value in ("", "new", "none"):
            out.append({"type": kind})
        elif value.startswith("/"):
            out.append({"type": kind, "path": value})
        else:
            raise BadInput(
                f"{describe(container)}: {field}: {value!r} is not host, new, none or an absolute namespace path"
            )
    return [*out, {"type": "mount"}]


def _linux(container: Container, label: Container | None) -> dict[str, Any]:
    resources = _given(container, label, "resources")
    resource_map = resources.to_dict() if resources is not None else {}
    if "blockio" in resource_map:
        resource_map["blockIO"] = resource_map.pop("blockio")
    devices = _devices(container, _given(container, label, "devices") or (), resource_map)
    linux = {
        "uidMappings": [_id_mapping(m.to_dict()) for m in _given(container, label, "uid_mappings") or ()],
        "gidMappings": [_id_mapping(m.to_dict()) for m in _given(container, label, "gid_mappings") or ()],
        "sysctl": dict(_given(container, label, "sysctl") or ()),
        "cgroupsPath": _given(container, label, "cgroups_path"),
        "namespaces": _namespaces(container, label),
        "devices": devices,
        "rootfsPropagation": _given(container, label, "rootfs_propagation"),
        "maskedPaths": list(_given(container, label, "masked_paths") or ()),
        "readonlyPaths": list(_given(container, label, "readonly_paths") or ()),
    }
    return _drop_empty(linux) | {"resources": resource_map}


def _devices(container: Container, devices: Sequence[Any], resources: dict[str, Any]) -> list[dict[str, Any]]:
    """Devices to create, each also allowed in the device cgroup; path `all` allows a whole type."""
    out = []
    allowed = list(resources.get("devices", []))
    for device in devices:
        if device.path == "all":
            allowed.append(_drop_empty({"allow": True, "type": device.type, "access": "rwm"}))
            continue
        try:
            mode = int(device.mode or "", 8)
        except ValueError:
            raise BadInput(
                f'{describe(container)}: device {device.path}: mode {device.mode!r} is not octal (e.g. "0666")'
            ) from None
        major, minor = device.major or 0, device.minor or 0
        out.append({"path": device.path or "", "type": device.type or "", "major": major, "minor": minor})
        out[-1]["fileMode"] = mode
        cgroup = {"allow": True, "type": device.type, "major": major, "minor": minor, "access": "rwm"}
        allowed.append(_drop_empty(cgroup) | {"major": major, "minor": minor})
    if allowed:
        resources["devices"] = allowed
    return out


# runtime.json ---------------------------------------------------------------------------------
def _runtime(container: Container, label: Container | None, prefix: str, root: str, readonly: bool) -> dict[str, Any]:
    """LinuxKit's runtime config: what its init does around the container, with the rootfs mounts first."""
    mine, theirs = container.runtime, label.runtime if label is not None else None

    def pick(name: str) -> Any:
        value = getattr(mine, name) if mine is not None else None
        return value if value is not None else (getattr(theirs, name) if theirs is not None else None)

    bind_ns = {}
    for key in ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"):
        ours = getattr(mine.bind_ns, key) if mine is not None and mine.bind_ns is not None else None
        label_ns = getattr(theirs.bind_ns, key) if theirs is not None and theirs.bind_ns is not None else None
        bind_ns[key] = ours if ours is not None else (label_ns or "")
    mounts = [_oci_mount(m) for m in pick("mounts") or ()]
    interfaces = [{"createInRoot": False} | i.to_dict() for i in pick("interfaces") or ()]
    return {
        "cgroups": list(pick("cgroups") or ()),
        "mounts": _rootfs_mounts(prefix, root, readonly) + mounts,
        "mkdir": list(pick("mkdir") or ()),
        "interfaces": interfaces,
        "bindNS": bind_ns,
        "namespace": pick("namespace") or "",
    }


def _rootfs_mounts(prefix: str, root: str, readonly: bool) -> list[dict[str, Any]]:
    """Read-only: bind the image tree onto rootfs/. Otherwise an overlay of it with a tmpfs upper on tmp/."""
    prefix, root = "/" + prefix.strip("/"), "/" + root.strip("/")
    if readonly:
        return [{"source": root, "destination": prefix + "/rootfs", "options": ["bind"]}]
    tmp = prefix + "/tmp"
    overlay = [f"lowerdir={root}", f"upperdir={tmp}/upper", f"workdir={tmp}/work"]
    return [
        {"source": "tmpfs", "type": "tmpfs", "destination": tmp},
        {"destination": tmp, "options": ["remount", "private"]},
        {"source": "overlay", "type": "overlay", "destination": prefix + "/rootfs", "options": overlay},
    ]
