"""buildlib.spec.model: YAML in, frozen dataclasses out, every problem with FILE:LINE:COLUMN: FIELD."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from buildlib.errors import BadInput, SpecError
from buildlib.spec.model import (
    Container,
    InvalidSpec,
    Kernel,
    Location,
    Section,
    Spec,
    SpecIssue,
    load_spec,
    parse_spec_text,
)

BASE = """\
kernel:
  image: linuxkit/kernel:6.6.13
  cmdline: console=ttyS0
init:
  - linuxkit/init:v1
  - linuxkit/runc:v1
onboot:
  - name: sysctl
    image: linuxkit/sysctl:v1
services:
  - name: getty
    image: linuxkit/getty:v1
    env: [INSECURE=true]
"""


def spec_of(text: str, **kwargs: object) -> Spec:
    return parse_spec_text(textwrap.dedent(text), "x.yml", **kwargs)  # type: ignore[arg-type]


def issues_of(text: str, filename: str = "x.yml") -> list[str]:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec_text(textwrap.dedent(text), filename)
    assert str(caught.value) == "\n".join(str(issue) for issue in caught.value.issues)
    return str(caught.value).splitlines()


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_spec_becomes_frozen_records() -> None:
    spec = spec_of(BASE)
    assert spec.kernel == Kernel(image="linuxkit/kernel:6.6.13", cmdline="console=ttyS0")
    assert spec.init == ("linuxkit/init:v1", "linuxkit/runc:v1")
    getty = spec.services[0]
    assert (getty.section, getty.index, getty.name, getty.env) == (Section.SERVICES, 0, "getty", ("INSECURE=true",))
    assert getty.location == Location("x.yml", 11, 5)
    assert getty.capabilities is None  # not given: the image label may supply it
    assert [c.name for c in spec.containers()] == ["sysctl", "getty"]
    with pytest.raises(AttributeError):
        getty.name = "other"  # type: ignore[misc]


def test_an_error_names_file_line_column_and_field_path() -> None:
    assert issues_of(
        """\
        services:
          - name: a
            image: alpine:3.20
          - name: b
            image: alpine:3.20
          - name: c
            image: alpine:3.20
            capabilities:
              - {add: CAP_SYS_ADMIN}
        """,
        "specs/x.yml",
    ) == ["specs/x.yml:9:9: services[2].capabilities[0]: expected a string, got a mapping"]


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "a.yml",
        """\
        kernel:
          image: linuxkit/kernel:6.6.13
          cmdlin: console=ttyS0
        onboot:
          - name: x
            image: alpine
            readonly: yes
        """,
    )
    second = write(tmp_path, "b.yml", "services:\n  - image: alpine\nfiles:\n  - path: etc/x\n")
    with pytest.raises(SpecError) as caught:
        load_spec([first, second, tmp_path / "missing.yml"])
    assert isinstance(caught.value, InvalidSpec)
    assert [(Path(i.file).name, i.line, i.column, i.field) for i in caught.value.issues] == [
        ("a.yml", 3, 3, "kernel.cmdlin"),
        ("a.yml", 7, 15, "onboot[0].readonly"),  # YAML 1.2, as LinuxKit: `yes` is a string, not true
        ("b.yml", 2, 5, "services[0]"),
        ("b.yml", 4, 5, "files[0]"),
        ("missing.yml", 0, 0, ""),
    ]
    assert "did you mean 'cmdline'?" in str(caught.value)
    assert "missing required key 'name'" in str(caught.value)
    assert "give exactly one of contents, source, directory, symlink, metadata" in str(caught.value)
    assert str(caught.value).splitlines()[-1].startswith(f"{tmp_path / 'missing.yml'}: cannot read the spec")


def test_two_files_merge_as_linuxkit_appends_them(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yml", BASE)
    extra = write(
        tmp_path,
        "extra.yml",
        """\
        kernel:
          cmdline: console=tty0
          tar: none
        init: [linuxkit/containerd:v1]
        onboot:
          - name: dhcpcd
            image: linuxkit/dhcpcd:v1
        services:
          - name: sshd
            image: linuxkit/sshd:v1
        """,
    )
    spec = load_spec([base, extra])
    assert spec.files_read == (str(base), str(extra))
    # Kernel fields given later replace earlier ones one by one; the image stays.
    assert spec.kernel == Kernel("linuxkit/kernel:6.6.13", cmdline="console=tty0", tar=None)
    assert spec.init == ("linuxkit/init:v1", "linuxkit/runc:v1", "linuxkit/containerd:v1")
    assert [(c.name, c.index) for c in spec.onboot] == [("sysctl", 0), ("dhcpcd", 1)]
    assert [c.location.file for c in spec.services] == [str(base), str(extra)]
    assert spec.images()[:2] == ("linuxkit/kernel:6.6.13", "linuxkit/init:v1")


def test_service_names_are_unique_across_files_but_onboot_names_may_repeat(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yml", BASE)
    again = write(tmp_path, "again.yml", BASE.split("kernel:")[0] + BASE[BASE.index("onboot:") :])
    with pytest.raises(InvalidSpec) as caught:
        load_spec([base, again])
    assert [str(i) for i in caught.value.issues] == [
        f"{again}:5:5: services[0].name: duplicate service name 'getty' (first at {base}:11:5): names must be unique"
    ]


def test_unknown_nested_key_names_its_whole_path() -> None:
    assert issues_of(
        """\
        services:
          - name: a
            image: alpine
          - name: b
            image: alpine
            runtime:
              mkdirs: [/var/lib/b]
              bindNS: {net: /run/netns/b, nett: x}
        """
    ) == [
        "x.yml:7:7: services[1].runtime.mkdirs: unknown key (did you mean 'mkdir'?)",
        "x.yml:8:35: services[1].runtime.bindNS.nett: unknown key (did you mean 'net'?)",
    ]


def test_container_fields_keep_linuxkit_names_in_to_dict() -> None:
    spec = spec_of(
        """\
        onboot:
          - name: mount
            image: linuxkit/mount:v1
            capabilities.add: [CAP_SYS_ADMIN]
            binds.add: [/var:/var:rshared]
            readonlyPaths: [/proc/sys]
            oomScoreAdj: -500
            additionalGids: [100, wheel]
            sysctl: {net.ipv4.ip_forward: "1"}
            mounts:
              - {type: bind, source: /x, destination: /y, options: [rbind]}
            resources: {memory: {limit: 1024, disableOOMKiller: true}}
            runtime:
              interfaces: [{name: eth1, add: veth, peer: veth1, createInRoot: true}]
              bindNS: {net: /run/netns/mount}
        """
    )
    mount = spec.onboot[0]
    assert mount.capabilities_add == ("CAP_SYS_ADMIN",)
    assert mount.binds_add == ("/var:/var:rshared",)
    assert mount.additional_gids == (100, "wheel")
    assert mount.sysctl == (("net.ipv4.ip_forward", "1"),)
    assert mount.runtime is not None and mount.runtime.interfaces is not None
    assert mount.runtime.interfaces[0].create_in_root is True
    assert mount.to_dict() == {
        "name": "mount",
        "image": "linuxkit/mount:v1",
        "capabilities.add": ["CAP_SYS_ADMIN"],
        "mounts": [{"destination": "/y", "type": "bind", "source": "/x", "options": ["rbind"]}],
        "binds.add": ["/var:/var:rshared"],
        "readonlyPaths": ["/proc/sys"],
        "additionalGids": [100, "wheel"],
        "oomScoreAdj": -500,
        "resources": {"memory": {"limit": 1024, "disableOOMKiller": True}},
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "runtime": {
            "interfaces": [{"name": "eth1", "add": "veth", "peer": "veth1", "createInRoot": True}],
            "bindNS": {"net": "/run/netns/mount"},
        },
    }


def test_file_modes_are_octal_whether_quoted_or_not() -> None:
    spec = spec_of(
        """\
        files:
          - {path: /etc/a, contents: a, mode: "0755"}
          - {path: etc/b, contents: b, mode: 0640}
          - {path: etc/c, contents: c, mode: 600}
          - {path: etc/d, directory: true}
        """
    )
    assert [(f.path, f.mode) for f in spec.files] == [
        ("etc/a", 0o755),  # LinuxKit strips the leading "/"
        ("etc/b", 0o640),
        ("etc/c", 0o600),
        ("etc/d", None),
    ]
    assert spec.files[0].to_dict() == {"path": "etc/a", "contents": "a", "mode": "0755"}
    assert spec.files[3].to_dict() == {"path": "etc/d", "directory": True}
    assert issues_of("files:\n  - {path: a, contents: a, mode: '0999'}\n  - {path: b, contents: b, mode: rwx}\n") == [
        "x.yml:2:34: files[0].mode: expected an octal mode such as \"0644\", got '0999'",
        "x.yml:3:34: files[1].mode: expected an octal mode such as \"0644\", got 'rwx'",
    ]


def test_file_entries_follow_linuxkit_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/builder")
    spec = spec_of("files:\n  - {path: root/.ssh/authorized_keys, source: ~/.ssh/id.pub, optional: true}\n")
    assert spec.files[0].source == "/home/builder/.ssh/id.pub"
    assert spec.files[0].optional is True
    assert issues_of(
        """\
        files:
          - {path: etc/a, contents: x, source: /x}
          - {path: ../etc/b, contents: x}
          - {path: etc/c, metadata: toml}
          - {path: etc/d, contents: x, uid: [0]}
        """
    ) == [
        "x.yml:2:5: files[0]: give exactly one of contents, source, directory, symlink, metadata; got contents, source",
        "x.yml:3:5: files[1].path: '../etc/b' must name a path inside the image",
        "x.yml:4:29: files[2].metadata: expected one of yaml, json, got 'toml'",
        "x.yml:5:37: files[3].uid: expected a name or a number, got a list",
    ]


def test_a_repeated_file_path_warns_that_the_later_one_wins() -> None:
    spec = spec_of("files:\n  - {path: etc/a, contents: x}\n  - {path: /etc/a, contents: y}\n")
    assert spec.warnings == ("x.yml:3:5: files.path: etc/a also given at x.yml:2:5; this one wins",)


def test_volume_names_follow_linuxkit_rule_and_are_unique() -> None:
    assert issues_of(
        """\
        volumes:
          - name: Data
          - name: cache
            image: alpine
            format: oci
            platforms: [linux/amd64]
          - name: cache
            readonly: true
        """
    ) == [
        "x.yml:2:5: volumes[0].name: 'Data' is not a volume name: use lower-case letters, digits, '-' and '_'",
        "x.yml:7:5: volumes[2].name: duplicate volume name 'cache' (first at x.yml:3:5): names must be unique",
    ]


def test_trust_is_accepted_and_ignored_with_a_warning() -> None:
    spec = spec_of(BASE + "trust:\n  org: [linuxkit]\n")
    assert spec.warnings == ("x.yml:15:3: trust: ignored (distrokit verifies digests instead)",)


def test_kernel_defaults_and_tar_none() -> None:
    kernel = spec_of("kernel: {image: linuxkit/kernel:6.6.13}\n").kernel
    assert kernel == Kernel("linuxkit/kernel:6.6.13", cmdline="", binary="kernel", tar="kernel.tar")
    kernel = spec_of("kernel: {image: k/k:1, binary: bzImage, tar: none, ucode: intel-ucode.cpio}\n").kernel
    assert kernel is not None and (kernel.binary, kernel.tar, kernel.ucode) == ("bzImage", None, "intel-ucode.cpio")
    assert kernel.to_dict()["tar"] == "none"
    no_image = spec_of("kernel: {cmdline: quiet}\n")
    assert no_image.kernel is None
    assert no_image.warnings == ("x.yml:1:9: kernel: no image given in any file: no kernel is built",)


def test_bad_image_references_and_yaml_problems() -> None:
    assert issues_of(
        """\
        init:
          - linuxkit/Init:v1
          - "@git:./x"
        onboot:
          - name: a
            name: b
            image: alpine
        services: {}
        """
    ) == [
        "x.yml:2:5: init[0]: invalid image reference 'linuxkit/Init:v1': 'Init' must be lower-case letters, "
        "digits and separators",
        "x.yml:3:5: init[1]: unknown template '@git:./x': only @pkg:DIR is supported",
        "x.yml:6:5: onboot[0].name: duplicate key (first given at line 5)",
        "x.yml:8:11: services: expected a list, got a mapping",
    ]


def test_yaml_syntax_errors_carry_the_parser_position() -> None:
    [line] = issues_of("onboot:\n  - name: a\n   image: b\n")
    assert line.startswith("x.yml:3:4: `onboot[0].image` is indented 3 spaces")
    assert issues_of("- a\n- b\n") == ["x.yml:1:1: expected a mapping, got a list"]


def test_yaml_1_2_typing_keeps_strings_strings() -> None:
    spec = spec_of("services:\n  - {name: a, image: alpine, env: [on, no], command: [sleep, 1:30], readonly: true}\n")
    assert spec.services[0].env == ("on", "no")
    assert spec.services[0].command == ("sleep", "1:30")
    assert issues_of("services:\n  - {name: a, image: alpine, cwd: 1, readonly: 1}\n") == [
        "x.yml:2:35: services[0].cwd: expected a string, got an integer",
        "x.yml:2:48: services[0].readonly: expected a boolean, got an integer",
    ]


def test_merge_keys_and_anchors_are_honoured() -> None:
    spec = spec_of(
        """\
        onboot:
          - &common {name: a, image: alpine, binds: [/etc:/etc]}
          - <<: *common
            name: b
        """
    )
    assert [(c.name, c.binds) for c in spec.onboot] == [("a", ("/etc:/etc",)), ("b", ("/etc:/etc",))]


def test_pkg_templates_resolve_relative_to_their_spec(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "init").mkdir(parents=True)
    spec_file = write(
        tmp_path,
        "s.yml",
        """\
        init: ["@pkg:./pkg/init"]
        onboot:
          - {name: a, image: "@pkg:pkg/init"}
        """,
    )
    calls: list[Path] = []

    def resolve(folder: Path) -> str:
        calls.append(folder)
        return "example.org/init:abc"

    spec = load_spec([spec_file], resolve_pkg=resolve)
    assert spec.init == ("example.org/init:abc",)
    assert spec.onboot[0].image == "example.org/init:abc"
    assert calls == [tmp_path / "pkg" / "init"]  # resolved once, though named twice
    # Without a resolver an existing folder is accepted and the template kept for a later stage.
    assert load_spec([spec_file]).init == ("@pkg:./pkg/init",)


def test_pkg_template_problems_are_issues_at_the_node(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "broken").mkdir(parents=True)
    spec_file = write(tmp_path, "s.yml", 'init:\n  - "@pkg:./pkg/missing"\n  - "@pkg:./pkg/broken"\n')

    def resolve(folder: Path) -> str:
        raise BadInput(f"{folder}/build.yml: no org given")

    with pytest.raises(InvalidSpec) as caught:
        load_spec([spec_file], resolve_pkg=resolve)
    assert [(i.line, i.field) for i in caught.value.issues] == [(2, "init[0]"), (3, "init[1]")]
    assert f"package folder {tmp_path / 'pkg' / 'missing'} does not exist" in caught.value.issues[0].message
    assert caught.value.issues[1].message == f"@pkg:./pkg/broken: {tmp_path / 'pkg' / 'broken'}/build.yml: no org given"


def test_other_yaml_files_are_recognised_as_not_specs() -> None:
    assert issues_of("image: sshd\norg: linuxkit\narches: [amd64]\n") == [
        "x.yml:1:1: not a distrokit/LinuxKit build spec (it looks like a `linuxkit pkg` build.yml): "
        "it has none of the keys kernel, init, onboot, onshutdown, services, trust, files, volumes"
    ]


def test_to_dict_round_trips_through_yaml() -> None:
    spec = spec_of(
        BASE
        + textwrap.dedent(
            """\
        files:
          - path: etc/motd
            contents: |
              hello
              world
            mode: "0644"
            uid: 0
          - {path: etc/linuxkit.yml, metadata: yaml}
        volumes:
          - {name: data, image: alpine:3.20, readonly: true}
        """
        )
    )
    text = spec.to_yaml()
    assert "contents: |" in text
    again = parse_spec_text(text, "dry-run.yml")
    assert again.to_dict() == spec.to_dict()
    assert again.containers() == spec.containers()  # locations aside, the records are equal
    assert list(spec.to_dict()) == ["kernel", "init", "onboot", "onshutdown", "services", "files", "volumes"]
    assert spec.images() == (
        "linuxkit/kernel:6.6.13",
        "linuxkit/init:v1",
        "linuxkit/runc:v1",
        "linuxkit/sysctl:v1",
        "linuxkit/getty:v1",
        "alpine:3.20",
    )


def test_issue_records_and_empty_files(tmp_path: Path) -> None:
    issue = SpecIssue("a.yml", 3, 7, "services[0]", "bad")
    assert str(issue) == "a.yml:3:7: services[0]: bad"
    assert str(SpecIssue("a.yml", 0, 0, "", "cannot read")) == "a.yml: cannot read"
    empty = write(tmp_path, "empty.yml", "# nothing yet\n")
    assert load_spec([empty]).warnings == (f"{empty}: the file is empty",)
    with pytest.raises(SpecError):
        load_spec([])
    assert isinstance(Container.__dataclass_fields__["location"].compare, bool)
