"""buildlib.rootfs.bundles: config.json and runtime.json per container, with LinuxKit's semantics.

Every expectation is written out here by hand from LinuxKit's rules (src/cmd/linuxkit/moby/config.go),
never computed with the code under test.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from buildlib.errors import BadInput
from buildlib.rootfs import bundles
from buildlib.spec.model import Spec, parse_spec_text

PREFIX = "containers/onboot/000-c"
LOWER = PREFIX + "/lower"

# A spec with three containers (ids 100, 101, 102) and two volumes; each case puts its fields on `c`.
SPEC = """\
onboot:
  - name: c
    image: example.org/c:1
{fields}
onshutdown:
  - name: bye
    image: example.org/c:1
services:
  - name: web
    image: example.org/c:1
volumes:
  - name: data
  - name: keys
    readonly: true
"""

DEFAULT_MOUNTS = [
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
    },
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "nodev", "noexec", "relatime"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev"]},
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
    },
]


def spec_with(fields: str) -> Spec:
    return parse_spec_text(SPEC.format(fields=textwrap.indent(textwrap.dedent(fields), "    ")))


def bundle_of(fields: str = "", label: str | None = None, **image: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = spec_with(fields)
    parsed = bundles.parse_label(label, "example.org/c:1 label") if label else None
    defaults = bundles.ImageDefaults(
        command=image.get("command", ("/bin/sh",)),
        env=image.get("env", ("PATH=/bin",)),
        cwd=image.get("cwd", ""),
        label=parsed,
    )
    built = bundles.make_bundle(spec.onboot[0], defaults, bundles.context_of(spec), PREFIX, LOWER)
    return json.loads(built.config_json), json.loads(built.runtime_json)


def config_of(fields: str = "", label: str | None = None, **image: Any) -> dict[str, Any]:
    return bundle_of(fields, label, **image)[0]


def test_defaults_written_out_in_full() -> None:
    config, runtime = bundle_of()
    assert config == {
        "ociVersion": "1.2.1",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {},
        },
        "root": {"path": "rootfs"},
        "mounts": DEFAULT_MOUNTS,
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "resources": {}},
    }
    assert runtime == {
        "cgroups": [],
        "mounts": [
            {"source": "tmpfs", "type": "tmpfs", "destination": "/containers/onboot/000-c/tmp"},
            {"destination": "/containers/onboot/000-c/tmp", "options": ["remount", "private"]},
            {
                "source": "overlay",
                "type": "overlay",
                "destination": "/containers/onboot/000-c/rootfs",
                "options": [
                    "lowerdir=/containers/onboot/000-c/lower",
                    "upperdir=/containers/onboot/000-c/tmp/upper",
                    "workdir=/containers/onboot/000-c/tmp/work",
                ],
            },
        ],
        "mkdir": [],
        "interfaces": [],
        "bindNS": {"cgroup": "", "ipc": "", "mnt": "", "net": "", "pid": "", "user": "", "uts": ""},
        "namespace": "",
    }


def test_readonly_binds_the_image_tree_and_makes_dev_and_sys_read_only() -> None:
    config, runtime = bundle_of("readonly: true")
    assert config["root"] == {"path": "rootfs", "readonly": True}
    dev, sys = config["mounts"][0], config["mounts"][3]
    assert dev["options"] == ["nosuid", "strictatime", "mode=755", "size=65536k", "ro"]
    assert sys["options"] == ["nosuid", "noexec", "nodev", "ro"]
    assert runtime["mounts"] == [
        {
            "source": "/containers/onboot/000-c/lower",
            "destination": "/containers/onboot/000-c/rootfs",
            "options": ["bind"],
        }
    ]


# (id, YAML fields of the container, label, image config, path into config.json, expected value)
CASES: list[tuple[str, str, str | None, dict[str, Any], tuple[str, ...], Any]] = [
    # command, env, cwd: YAML > label > image config
    (
        "command-from-image",
        "",
        None,
        {"command": ("/entry", "--flag", "cmd")},
        ("process", "args"),
        ["/entry", "--flag", "cmd"],
    ),
    ("command-from-label", "", '{"command": ["/label"]}', {}, ("process", "args"), ["/label"]),
    ("command-yaml-wins", "command: [/yaml]", '{"command": ["/label"]}', {}, ("process", "args"), ["/yaml"]),
    ("env-from-label", "", '{"env": ["A=label"]}', {}, ("process", "env"), ["A=label"]),
    ("env-yaml-wins", "env: [A=yaml]", '{"env": ["A=label"]}', {}, ("process", "env"), ["A=yaml"]),
    ("cwd-from-image", "", None, {"cwd": "/work"}, ("process", "cwd"), "/work"),
    ("cwd-label-over-image", "", '{"cwd": "/label"}', {"cwd": "/work"}, ("process", "cwd"), "/label"),
    ("cwd-yaml-wins", "cwd: /yaml", '{"cwd": "/label"}', {"cwd": "/work"}, ("process", "cwd"), "/yaml"),
    # capabilities: YAML replaces the label's, .add appends, all and none
    (
        "caps-from-label",
        "",
        '{"capabilities": ["CAP_SYS_ADMIN", "CAP_CHOWN"]}',
        {},
        ("process", "capabilities"),
        {
            "bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
            "effective": ["CAP_SYS_ADMIN", "CAP_CHOWN"],
            "inheritable": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
            "permitted": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
        },
    ),
    (
        "caps-yaml-replaces-label",
        "capabilities: [CAP_NET_ADMIN]",
        '{"capabilities": ["CAP_SYS_ADMIN"]}',
        {},
        ("process", "capabilities", "effective"),
        ["CAP_NET_ADMIN"],
    ),
    (
        "caps-add-appends-to-yaml-list-too",
        "capabilities: [CAP_CHOWN]\ncapabilities.add: [CAP_KILL]",
        '{"capabilities": ["CAP_SYS_ADMIN"]}',
        {},
        ("process", "capabilities", "effective"),
        ["CAP_CHOWN", "CAP_KILL"],
    ),
    (
        "caps-add-appends-to-label",
        "capabilities.add: [CAP_NET_RAW, CAP_SYS_ADMIN]",
        '{"capabilities": ["CAP_SYS_ADMIN"]}',
        {},
        ("process", "capabilities", "effective"),
        ["CAP_SYS_ADMIN", "CAP_NET_RAW"],
    ),
    ("caps-none", "capabilities: [none]", '{"capabilities": ["CAP_SYS_ADMIN"]}', {}, ("process", "capabilities"), {}),
    (
        "caps-ambient-join-bounding",
        "capabilities: [CAP_CHOWN]\nambient: [CAP_NET_BIND_SERVICE]",
        None,
        {},
        ("process", "capabilities"),
        {
            "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_CHOWN"],
            "inheritable": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        },
    ),
    # namespaces: pid new by default; net, ipc, uts, user the host's; new, none and paths
    (
        "ns-net-new",
        "net: new",
        None,
        {},
        ("linux", "namespaces"),
        [{"type": "network"}, {"type": "pid"}, {"type": "mount"}],
    ),
    (
        "ns-net-none",
        "net: none",
        None,
        {},
        ("linux", "namespaces"),
        [{"type": "network"}, {"type": "pid"}, {"type": "mount"}],
    ),
    ("ns-net-host", "net: host", None, {}, ("linux", "namespaces"), [{"type": "pid"}, {"type": "mount"}]),
    (
        "ns-net-path",
        "net: /run/netns/wg",
        None,
        {},
        ("linux", "namespaces"),
        [{"type": "network", "path": "/run/netns/wg"}, {"type": "pid"}, {"type": "mount"}],
    ),
    ("ns-pid-host", "pid: host", None, {}, ("linux", "namespaces"), [{"type": "mount"}]),
    (
        "ns-pid-path",
        "pid: /proc/1/ns/pid",
        None,
        {},
        ("linux", "namespaces"),
        [{"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "mount"}],
    ),
    (
        "ns-ipc-uts-userns-new",
        "ipc: new\nuts: new\nuserns: new",
        None,
        {},
        ("linux", "namespaces"),
        [{"type": "ipc"}, {"type": "uts"}, {"type": "pid"}, {"type": "user"}, {"type": "mount"}],
    ),
    (
        "ns-label-net-yaml-host",
        "net: host",
        '{"net": "new"}',
        {},
        ("linux", "namespaces"),
        [{"type": "pid"}, {"type": "mount"}],
    ),
    # uid and gid: numbers, root, or container names numbered from 100 (c, bye, web)
    ("uid-by-name", "uid: web\ngid: bye", None, {}, ("process", "user"), {"uid": 102, "gid": 101}),
    ("uid-root-and-number", "uid: root\ngid: 7", None, {}, ("process", "user"), {"uid": 0, "gid": 7}),
    (
        "additional-gids",
        "additionalGids: [c, 42]",
        None,
        {},
        ("process", "user"),
        {"uid": 0, "gid": 0, "additionalGids": [100, 42]},
    ),
    ("uid-from-label", "", '{"uid": 33}', {}, ("process", "user"), {"uid": 33, "gid": 0}),
    # rlimits
    (
        "rlimits",
        "rlimits: ['nofile,1024,unlimited', 'RLIMIT_CORE, 0, 0']",
        None,
        {},
        ("process", "rlimits"),
        [
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 18446744073709551615},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        ],
    ),
    # devices: created and allowed in the device cgroup; `all` allows a whole type
    (
        "devices",
        "devices:\n  - {path: /dev/console, type: c, major: 5, minor: 1, mode: '0666'}\n  - {path: all, type: b}",
        None,
        {},
        ("linux",),
        {
            "devices": [{"path": "/dev/console", "type": "c", "major": 5, "minor": 1, "fileMode": 438}],
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "resources": {
                "devices": [
                    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                    {"allow": True, "type": "b", "access": "rwm"},
                ]
            },
        },
    ),
    (
        "linux-fields",
        "sysctl: {net.ipv4.ip_forward: '1'}\nmaskedPaths: [/proc/kcore]\nreadonlyPaths: [/proc/sys]\n"
        "rootfsPropagation: shared\ncgroupsPath: /svc/c\nuidMappings: [{containerID: 0, hostID: 1000, size: 10}]\n"
        "resources: {memory: {limit: 1000}, blockio: {weight: 10}}",
        None,
        {},
        ("linux",),
        {
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "rootfsPropagation": "shared",
            "cgroupsPath": "/svc/c",
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "resources": {"memory": {"limit": 1000}, "blockIO": {"weight": 10}},
        },
    ),
    (
        "process-fields",
        "noNewPrivileges: true\noomScoreAdj: -500\nhostname: box\nannotations: {a: b}",
        None,
        {},
        (),
        None,  # checked below, several keys
    ),
]


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@pytest.mark.parametrize(
    ("fields", "label", "image", "path", "expected"),
    [case[1:] for case in CASES if case[5] is not None],
    ids=[case[0] for case in CASES if case[5] is not None],
)
def test_config_json(
    fields: str, label: str | None, image: dict[str, Any], path: tuple[str, ...], expected: Any
) -> None:
    assert _at(config_of(fields, label, **image), path) == expected


def test_all_capabilities_are_linuxkits_list() -> None:
    caps = config_of("capabilities: [all]")["process"]["capabilities"]
    assert len(caps["effective"]) == 41
    assert caps["effective"][:3] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"]
    assert caps["effective"][-3:] == ["CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
    assert caps["bounding"] == sorted(caps["effective"])


def test_zero_is_a_value_not_an_absence() -> None:
    process = config_of("oomScoreAdj: 0")["process"]
    assert process["oomScoreAdj"] == 0


def test_process_and_top_level_fields() -> None:
    config = config_of("noNewPrivileges: true\noomScoreAdj: -500\nhostname: box\nannotations: {a: b}")
    assert config["process"]["noNewPrivileges"] is True
    assert config["process"]["oomScoreAdj"] == -500
    assert config["hostname"] == "box"
    assert config["annotations"] == {"a": "b"}


# mounts: binds, tmpfs, mounts, volumes ---------------------------------------------------------
def _extra_mounts(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in config["mounts"] if m not in DEFAULT_MOUNTS]


def test_binds_default_options_and_volume_paths() -> None:
    config = config_of("binds: [/var:/var, data:/data, 'keys:/keys:ro', '/etc/x:/x:ro,rshared']")
    assert _extra_mounts(config) == [
        {
            "destination": "/data",
            "type": "bind",
            "source": "/containers/volumes/data/merged",
            "options": ["rw", "rbind", "rshared"],
        },
        {
            "destination": "/keys",
            "type": "bind",
            "source": "/containers/volumes/keys/merged",
            "options": ["ro", "rbind"],
        },
        {"destination": "/var", "type": "bind", "source": "/var", "options": ["rw", "rbind", "rshared"]},
        {"destination": "/x", "type": "bind", "source": "/etc/x", "options": ["ro", "rshared", "rbind"]},
    ]


def test_label_binds_replaced_by_yaml_binds_or_extended_by_binds_add() -> None:
    label = '{"binds": ["/lib/modules:/lib/modules"]}'
    replaced = _extra_mounts(config_of("binds: [/a:/a]", label))
    assert [m["destination"] for m in replaced] == ["/a"]
    added = _extra_mounts(config_of("binds.add: [data:/data]", label))
    assert [(m["destination"], m["source"]) for m in added] == [
        ("/data", "/containers/volumes/data/merged"),
        ("/lib/modules", "/lib/modules"),
    ]


def test_tmpfs_and_mounts_with_linuxkits_defaults() -> None:
    fields = """\
    tmpfs: [/run, '/tmp:size=10m,mode=1777']
    mounts:
      - {type: cgroup, options: [rw]}
      - {source: mqueue}
      - {destination: /dev, options: [size=1m]}
      - {type: bind, source: data, destination: /d, options: [rbind, ro]}
    """
    assert _extra_mounts(config_of(fields)) == [
        {"destination": "/d", "type": "bind", "source": "/containers/volumes/data/merged", "options": ["rbind", "ro"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["rw"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=10m", "mode=1777"]},
    ]


def test_runtime_section_yaml_over_label_field_by_field() -> None:
    label = '{"runtime": {"mkdir": ["/var/lib/x"], "cgroups": ["x"], "bindNS": {"net": "/run/netns/a"}}}'
    fields = """\
    runtime:
      mkdir: [/run/y]
      bindNS: {uts: /run/uts/b}
      interfaces: [{name: eth1}]
      mounts: [{type: tmpfs, destination: /run/y}]
      namespace: svc
    """
    _, runtime = bundle_of(fields, label)
    assert runtime["mkdir"] == ["/run/y"]
    assert runtime["cgroups"] == ["x"]
    assert runtime["bindNS"] == {
        "cgroup": "",
        "ipc": "",
        "mnt": "",
        "net": "/run/netns/a",
        "pid": "",
        "user": "",
        "uts": "/run/uts/b",
    }
    assert runtime["interfaces"] == [{"name": "eth1", "createInRoot": False}]
    assert runtime["mounts"][-1] == {"type": "tmpfs", "destination": "/run/y"}
    assert runtime["namespace"] == "svc"


# mistakes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("binds: [keys:/keys]", "onboot[0] (c): binds[0] mounts volume 'keys' read-write, but the volume is read-only"),
        ("binds.add: ['keys:/k:ro,rw']", "binds.add[0] mounts volume 'keys' read-write"),
        ("mounts: [{type: bind, source: keys, destination: /k, options: [rbind]}]", "mounts[0] mounts volume 'keys'"),
        ("binds: [nothere:/x]", "binds[0] names volume 'nothere', which the spec does not declare"),
        ("capabilities: [CAP_FLY]", "unknown capability 'CAP_FLY'"),
        ("uid: nobody-here", "no container is named 'nobody-here'"),
        ("rlimits: ['nofile,10']", "is not NAME,SOFT,HARD"),
        ("rlimits: ['colour,1,2']", "unknown rlimit 'colour'"),
        ("net: netns0", "is not host, new, none or an absolute namespace path"),
        ("tmpfs: ['/a:b:c']", "has more than one ':'"),
        ("devices: [{path: /dev/x, type: c, major: 1, minor: 1, mode: '99'}]", "is not octal"),
        ("mounts: [{destination: /x}]", "the mount on /x needs a `type`"),
    ],
)
def test_mistakes_are_bad_input_naming_the_container(fields: str, message: str) -> None:
    with pytest.raises(BadInput, match="onboot\\[0\\] \\(c\\)") as caught:
        config_of(fields)
    assert message in str(caught.value)


def test_read_write_bind_onto_read_only_volume_is_caught_before_any_pull() -> None:
    spec = spec_with("binds: [keys:/keys]")
    with pytest.raises(BadInput, match="add `:ro` to the bind"):
        bundles.check_volumes(spec)
    bundles.check_volumes(spec_with("binds: ['keys:/keys:ro']"))


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ('{"name": "x"}', "name: cannot be set in an image's label"),
        ('["a"]', "must be a JSON object"),
        ('{"capabilities": "all"}', "expected a list"),
        ('{"colour": 1}', "unknown key"),
    ],
)
def test_a_bad_label_is_reported(label: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        bundles.parse_label(label, "example.org/c:1 label")


def test_json_is_deterministic_sorted_and_ends_with_newline() -> None:
    spec = spec_with("capabilities: [CAP_CHOWN]")
    defaults = bundles.ImageDefaults(command=("/bin/sh",))
    one = bundles.make_bundle(spec.onboot[0], defaults, bundles.context_of(spec), PREFIX, LOWER)
    two = bundles.make_bundle(spec.onboot[0], defaults, bundles.context_of(spec), PREFIX, LOWER)
    assert one == two
    text = one.config_json.decode()
    assert text.endswith("}\n") and text.index('"linux"') < text.index('"mounts"') < text.index('"process"')
