"""LinuxKit package folders (build.yml + Dockerfile) built by buildah: real buildah, a real loopback
registry holding our own busybox component image as the FROM base, real stores."""

from __future__ import annotations

import dataclasses
import getpass
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import COMPONENTS, REPO, descendants, new_cache, process_running
from registry import Registry, push_index, random_layer, stored_image

from buildlib.debian import archive, recipes
from buildlib.debian import builds as component_builds
from buildlib.dockerfile import builder, buildyml
from buildlib.spec.refs import ImageRef
from buildlib.store import pulls
from buildlib.store.images import Store

pytestmark = pytest.mark.registry
BINFMT_ARM64 = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
QEMU = {"arm64": "aarch64", "riscv64": "riscv64"}  # binfmt_misc names the handlers by QEMU's names

DOCKERFILE = """\
FROM {base}
ARG GREETING=unset
COPY hello.txt /etc/hello.txt
# a continued RUN: its line is where it starts
RUN echo "$GREETING" > /etc/greeting && \\
    mkdir -p /var/made-by-run
"""


@pytest.fixture(scope="module")
def base(registry: Registry, shared_cache: Path) -> str:
    """Our busybox component image, pushed to the loopback registry: the packages' FROM image."""
    store = Store(shared_cache)
    recipe = recipes.load_recipe(COMPONENTS / "busybox")
    component_builds.ensure(store, recipe, archive.pinned_packages(store.root, recipe))
    name = f"{registry.host}/distrokit/busybox:base"
    pulls.push(store, recipe.ref, name)
    return name


def package_folder(root: Path, base: str, greeting: str = "from-build-yml") -> Path:
    folder = root / "hello"
    folder.mkdir(parents=True)
    (folder / "build.yml").write_text(f"image: hello\norg: example\nbuildArgs:\n  - GREETING={greeting}\n")
    (folder / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (folder / "hello.txt").write_text("hello\n")
    return folder


def distrokit(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DISTROKIT_CACHE=str(cache), PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "buildlib.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)


def image_files(cache: Path, ref: str) -> dict[str, bytes]:
    """Every regular file of the stored image's layers (uncompressed tars), the upper layer winning."""
    image = Store(cache).image(ImageRef.parse(ref))
    files: dict[str, bytes] = {}
    for layer in image.layers:
        with tarfile.open(Store(cache).blob_path(layer.digest)) as tar:
            for member in tar:
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    files[member.name.lstrip("./")] = extracted.read()
    return files


def test_a_package_with_a_build_arg_and_a_run_step_builds_once(base: str, tmp_path: Path, debs_dir: Path) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    folder = package_folder(tmp_path, base)
    first = distrokit(cache, "pkg", "build", str(folder))
    assert first.returncode == 0, first.stderr
    ref = first.stdout.strip()
    assert ref.startswith("example/hello:")
    files = image_files(cache, ref)
    assert files["etc/greeting"] == b"from-build-yml\n"
    assert files["etc/hello.txt"] == b"hello\n"
    assert "bin/busybox" in files  # the base's layers are below
    again = distrokit(cache, "pkg", "build", str(folder))
    assert again.returncode == 0 and "(up to date)" in again.stderr, again.stderr
    # a build arg from --build-arg-file is an input: the package builds again, with it
    arg_file = tmp_path / "args"
    arg_file.write_text("# override\nGREETING=from-file\n")
    changed = distrokit(cache, "pkg", "build", "--build-arg-file", str(arg_file), str(folder))
    assert changed.returncode == 0 and "(up to date)" not in changed.stderr, changed.stderr
    assert image_files(cache, ref)["etc/greeting"] == b"from-file\n"
    assert not any((cache / "tmp").iterdir())  # buildah's storage went with the build


def test_two_clean_stores_give_the_same_image_digest(base: str, tmp_path: Path, debs_dir: Path) -> None:
    digests = []
    for name in ("one", "two"):
        cache = new_cache(tmp_path / name / "cache", debs_dir)
        done = distrokit(cache, "pkg", "build", str(package_folder(tmp_path / name, base)))
        assert done.returncode == 0, done.stderr
        digests.append(Store(cache).lookup(ImageRef.parse(done.stdout.strip())))
    assert digests[0] is not None and digests[0] == digests[1]


def test_a_build_yml_typo_is_an_error_at_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "typo"
    folder.mkdir()
    (folder / "build.yml").write_text("image: hello\nnetwrok: true\n")
    (folder / "Dockerfile").write_text("FROM scratch\n")
    done = distrokit(tmp_path / "cache", "pkg", "build", str(folder))
    assert done.returncode == 2
    assert f"{folder / 'build.yml'}:2:1" in done.stderr and "did you mean 'network'" in done.stderr, done.stderr


def test_a_failing_run_step_names_the_dockerfile_line_and_its_output(base: str, tmp_path: Path, debs_dir: Path) -> None:
    folder = tmp_path / "failing"
    folder.mkdir()
    (folder / "build.yml").write_text("image: failing\n")
    (folder / "Dockerfile").write_text(f"FROM {base}\n\nRUN echo the-last-words && exit 3\n")
    done = distrokit(new_cache(tmp_path / "cache", debs_dir), "pkg", "build", str(folder))
    assert done.returncode == 1
    assert f"{folder / 'Dockerfile'}:3: RUN echo the-last-words && exit 3 failed" in done.stderr, done.stderr
    assert "the-last-words" in done.stderr.split("failed", 1)[1]


def test_run_steps_reach_the_network_only_when_build_yml_says_so(
    base: str, registry: Registry, tmp_path: Path, debs_dir: Path
) -> None:
    """LinuxKit's `network:` (default false): a RUN step fetching from the loopback registry fails without
    it, in one error naming the Dockerfile's line and the step's last words, and succeeds with it."""
    cache = new_cache(tmp_path / "cache", debs_dir)
    folder = tmp_path / "fetching"
    folder.mkdir()
    (folder / "build.yml").write_text("image: fetching\norg: example\n")
    step = f"RUN echo reaching-out && wget -q -O /etc/catalog http://{registry.host}/v2/_catalog"
    (folder / "Dockerfile").write_text(f"FROM {base}\n{step}\n")
    refused = distrokit(cache, "pkg", "build", str(folder))
    assert refused.returncode == 1, refused.stderr
    assert f"{folder / 'Dockerfile'}:2: {step} failed" in refused.stderr, refused.stderr
    assert f"without network (RUN steps have none unless {folder / 'build.yml'} says `network: true`)" in refused.stderr
    output = refused.stderr.split("the last of its output:", 1)[1]
    assert "reaching-out" in output and "can't connect to remote host (127.0.0.1)" in output, refused.stderr
    assert not any(ref.path == "example/fetching" for ref, _ in Store(cache).names())  # nothing half-made
    assert not any((cache / "tmp").iterdir())
    (folder / "build.yml").write_text("image: fetching\norg: example\nnetwork: true\n")
    allowed = distrokit(cache, "pkg", "build", str(folder))
    assert allowed.returncode == 0, allowed.stderr
    assert b'"repositories"' in image_files(cache, allowed.stdout.strip())["etc/catalog"]
    # the setting is an input of its own: the same folder, args and bases build again when it changes
    package = buildyml.load_package(folder)
    build = builder.resolve(Store(cache), package, "amd64", pull=False)
    assert build is not None and builder.up_to_date(Store(cache), build)
    offline = dataclasses.replace(build, package=dataclasses.replace(package, network=False))
    assert offline.inputs != build.inputs and not builder.up_to_date(Store(cache), offline)


def committed_package(root: Path, build_yml: str) -> tuple[Path, list[str]]:
    """A package folder repo/pkg/hello committed to a new git repository: the folder, and git's command."""
    folder = root / "repo" / "pkg" / "hello"
    folder.mkdir(parents=True)
    (folder / "build.yml").write_text(build_yml)
    (folder / "Dockerfile").write_text("FROM scratch\n")
    git = ["git", "-C", str(root / "repo"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "pkg"], check=True)
    return folder, git


def test_show_tag_is_the_git_tree_hash_as_linuxkit_gives_it(tmp_path: Path) -> None:
    folder, git = committed_package(tmp_path, "image: hello\ntag: v1-{{ .Hash }}\n")
    tree = subprocess.run([*git, "rev-parse", "HEAD:pkg/hello"], capture_output=True, text=True, check=True)
    shown = distrokit(tmp_path / "cache", "pkg", "show-tag", str(folder))
    assert shown.stdout == f"linuxkit/hello:v1-{tree.stdout.strip()}\n", shown.stderr
    (folder / "extra").write_text("x")  # an untracked file: LinuxKit's tag says dirty
    dirty = distrokit(tmp_path / "cache", "pkg", "show-tag", "--org", "me", str(folder))
    assert dirty.stdout.startswith(f"me/hello:v1-{tree.stdout.strip()}-dirty-"), dirty.stdout


def test_a_spec_takes_the_package_as_an_onboot_container(base: str, tmp_path: Path, debs_dir: Path) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    package_folder(tmp_path, base, greeting="in-a-spec")
    spec = tmp_path / "spec.yml"
    spec.write_text('onboot:\n  - name: hello\n    image: "@pkg:hello"\n    command: ["cat", "/etc/greeting"]\n')
    out = tmp_path / "root.tar"
    built = distrokit(cache, "build", "-f", "tar", "-o", str(out), str(spec))
    assert built.returncode == 0, built.stderr
    with tarfile.open(out) as tar:
        greeting = tar.extractfile("containers/onboot/000-hello/lower/etc/greeting")
        assert greeting is not None and greeting.read() == b"in-a-spec\n"
    again = distrokit(cache, "build", "-f", "tar", "-o", str(out), str(spec))
    assert again.returncode == 0 and "0 tasks ran" in again.stderr + again.stdout, again.stderr


def test_a_chained_build_builds_the_package_it_is_from_first(base: str, tmp_path: Path, debs_dir: Path) -> None:
    """B names A with LinuxKit's `@lkt:pkg:` build arg and builds FROM it: A is built first, into the store;
    a change to A builds both again. (A is built on an image without history, which buildah alone
    leaves in a state it cannot build on.)"""
    cache = new_cache(tmp_path / "cache", debs_dir)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "build.yml").write_text("image: a\norg: example\n")
    (tmp_path / "a" / "Dockerfile").write_text(f"FROM {base}\nRUN echo from-a > /etc/a\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "build.yml").write_text("image: b\norg: example\nbuildArgs:\n  - BASE=@lkt:pkg:../a\n")
    (tmp_path / "b" / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN cat /etc/a > /etc/b\n")
    built = distrokit(cache, "pkg", "build", str(tmp_path / "b"))
    assert built.returncode == 0, built.stderr
    assert image_files(cache, built.stdout.strip())["etc/b"] == b"from-a\n"
    (tmp_path / "a" / "Dockerfile").write_text(f"FROM {base}\nRUN echo changed > /etc/a\n")
    again = distrokit(cache, "pkg", "build", str(tmp_path / "b"))
    assert again.returncode == 0 and "(up to date)" not in again.stderr, again.stderr
    assert image_files(cache, again.stdout.strip())["etc/b"] == b"changed\n"


def test_pkg_push_sends_the_package_with_its_digest(
    base: str, registry: Registry, tmp_path: Path, debs_dir: Path
) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    folder = package_folder(tmp_path, base, greeting="pushed")
    pushed = distrokit(cache, "pkg", "push", str(folder), "--to", f"{registry.host}/lk")
    assert pushed.returncode == 0, pushed.stderr
    result = next(line for line in (pushed.stdout + pushed.stderr).splitlines() if line.startswith(registry.host))
    dest, digest = result.split()
    assert dest.startswith(f"{registry.host}/lk/example/hello:")
    stored = Store(cache).lookup(ImageRef.parse(dest.split("/", 2)[2]))
    assert digest == stored
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{dest}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert inspected.stdout.strip() == digest


# arm64 where the host cannot run its programs (setup.sh registers only arm64's handler), else riscv64
FOREIGN = next(
    (arch for arch in ("arm64", "riscv64") if not (BINFMT_ARM64.parent / f"qemu-{QEMU[arch]}").exists()), None
)


@pytest.mark.skipif(FOREIGN is None, reason="this host runs arm64 and riscv64 programs")
def test_foreign_run_steps_without_binfmt_say_what_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "arm"
    folder.mkdir()
    (folder / "build.yml").write_text("image: arm\n")
    (folder / "Dockerfile").write_text("FROM 127.0.0.1:1/never/pulled:1\nRUN true\n")
    done = distrokit(tmp_path / "cache", "pkg", "build", "--arch", str(FOREIGN), str(folder))
    assert done.returncode == 1
    assert f"RUN steps for {FOREIGN}" in done.stderr and "qemu-user-static" in done.stderr, done.stderr
    assert f"update-binfmts --enable qemu-{QEMU[str(FOREIGN)]}" in done.stderr, done.stderr


def test_extra_sources_join_the_build_context_and_its_key(base: str, tmp_path: Path, debs_dir: Path) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "note").write_text("one\n")
    folder = tmp_path / "uses"
    folder.mkdir()
    (folder / "build.yml").write_text("image: uses\nextra-sources:\n  - ../shared:/from-shared\n")
    (folder / "Dockerfile").write_text(f"FROM {base}\nCOPY from-shared/note /etc/note\n")
    first = distrokit(cache, "pkg", "build", str(folder))
    assert first.returncode == 0, first.stderr
    assert image_files(cache, first.stdout.strip())["etc/note"] == b"one\n"
    (tmp_path / "shared" / "note").write_text("two\n")  # only the extra source changed
    second = distrokit(cache, "pkg", "build", str(folder))
    assert second.returncode == 0 and "(up to date)" not in second.stderr, second.stderr
    assert second.stdout != first.stdout  # a new tag, as LinuxKit's hash takes the sources in
    assert image_files(cache, second.stdout.strip())["etc/note"] == b"two\n"
    (folder / "build.yml").write_text("image: uses\nextra-sources:\n  - ../shared\n")
    bad = distrokit(cache, "pkg", "build", str(folder))
    assert bad.returncode == 2 and "give SOURCE:DESTINATION" in bad.stderr, bad.stderr


@pytest.mark.boot
def test_the_package_runs_as_a_service_in_a_booted_guest(base: str, shared_cache: Path, tmp_path: Path) -> None:
    from bootkit import boot_path
    from conftest import build

    package_folder(tmp_path, base, greeting="booted")
    spec = tmp_path / "guest.yml"
    spec.write_text(
        f'kernel:\n  image: "@pkg:{COMPONENTS / "kernel"}"\n  cmdline: "console=ttyS0 quiet"\n'
        f'init:\n  - "@pkg:{COMPONENTS / "init"}"\n  - "@pkg:{COMPONENTS / "runc"}"\n'
        'services:\n  - name: hello\n    image: "@pkg:hello"\n    pid: host\n'
        '    command: ["/bin/sh", "-c", "echo package says $(cat /etc/greeting); sleep 1; poweroff"]\n'
    )
    built = build(spec, shared_cache, tmp_path / "out")
    console = boot_path(built, built.prefix)
    assert "hello: package says booted" in console, console[-3000:]


@pytest.fixture(scope="module")
def two_platform_base(registry: Registry, shared_cache: Path) -> str:
    """Our busybox component for amd64 and arm64, pushed to the loopback registry as one multi-arch index."""
    store = Store(shared_cache)
    built = {}
    for arch in ("amd64", "arm64"):
        recipe = recipes.load_recipe(COMPONENTS / "busybox", arch)
        built[arch] = component_builds.ensure(store, recipe, archive.pinned_packages(store.root, recipe))[0]
    name = f"{registry.host}/distrokit/busybox:two-platforms"
    push_index(store, built, name)
    return name


def small_package(root: Path, name: str, dockerfile: str, **files: str) -> Path:
    """A package folder `root/name` (org example) with this Dockerfile and these files beside it."""
    folder = root / name
    folder.mkdir()
    (folder / "build.yml").write_text(f"image: {name}\norg: example\n")
    (folder / "Dockerfile").write_text(dockerfile)
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def index_platforms(cache: Path, ref: str) -> dict[str, str]:
    store = Store(cache)
    digest = store.named_digest(ImageRef.parse(ref))
    assert digest is not None
    entries = store.read_json_blob(digest).get("manifests") or []
    return {entry["platform"]["architecture"]: entry["digest"] for entry in entries}


@pytest.mark.skipif(not BINFMT_ARM64.exists(), reason="no qemu-aarch64 binfmt handler: scripts/setup.sh registers it")
def test_platforms_build_each_and_the_name_holds_an_index(
    two_platform_base: str, tmp_path: Path, debs_dir: Path
) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    folder = small_package(tmp_path, "machine", f"FROM {two_platform_base}\nRUN uname -m > /etc/machine\n")
    done = distrokit(cache, "pkg", "build", "--platforms", "linux/amd64,linux/arm64", str(folder))
    assert done.returncode == 0, done.stderr
    ref = done.stdout.strip()
    held = index_platforms(cache, ref)
    assert sorted(held) == ["amd64", "arm64"], held
    for arch, machine in (("amd64", b"x86_64\n"), ("arm64", b"aarch64\n")):
        image = Store(cache, arch).image(ImageRef.parse(ref))
        assert image.manifest_digest == held[arch] and image.config["architecture"] == arch
        assert image_files(cache, f"{ref.split(':')[0]}@{held[arch]}")["etc/machine"] == machine
    again = distrokit(cache, "pkg", "build", "--platforms", "linux/amd64,linux/arm64", str(folder))
    assert again.returncode == 0 and again.stderr.count("(up to date)") == 2, again.stderr


def test_an_arm64_package_without_run_steps_needs_no_emulation(
    two_platform_base: str, tmp_path: Path, debs_dir: Path
) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    dockerfile = f"FROM {two_platform_base}\nENV WHERE=arm\nCOPY note /etc/note\n"
    folder = small_package(tmp_path, "copy-only", dockerfile, note="copied\n")
    done = distrokit(cache, "pkg", "build", "--arch", "arm64", str(folder))
    assert done.returncode == 0, done.stderr
    image = Store(cache, "arm64").image(ImageRef.parse(done.stdout.strip()))
    assert image.config["architecture"] == "arm64" and "WHERE=arm" in image.config["config"]["Env"]
    assert image_files(cache, f"{done.stdout.strip().split(':')[0]}@{image.manifest_digest}")["etc/note"] == b"copied\n"


def test_depends_images_are_saved_into_the_build_context(
    base: str, two_platform_base: str, tmp_path: Path, debs_dir: Path
) -> None:
    """LinuxKit's `depends.docker-images`: each image by digest (a manifest's, or a multi-platform index's)
    as a docker-archive tar, one a file in `target-dir` or all in one `target` tar; the package folder
    itself is left as it was."""
    cache = new_cache(tmp_path / "cache", debs_dir)
    digest = pulls.pull(Store(cache), ImageRef.parse(base))
    pinned = f"{base.rsplit(':', 1)[0]}@{digest}"
    index = pulls.inspect_pins(ImageRef.parse(two_platform_base), ["linux/amd64"]).digest
    folder = tmp_path / "bundles"
    folder.mkdir()
    (folder / "images.txt").write_text(f"# one a line\n\n{pinned}\n{two_platform_base.rsplit(':', 1)[0]}@{index}\n")
    (folder / "build.yml").write_text(
        "image: bundles\norg: example\ndepends:\n  docker-images:\n"
        f"    target-dir: saved\n    list:\n      - {pinned}\n"
    )
    (folder / "Dockerfile").write_text(f"FROM {base}\nCOPY saved/ /saved/\n")
    first = distrokit(cache, "pkg", "build", str(folder))
    assert first.returncode == 0, first.stderr
    files = image_files(cache, first.stdout.strip())
    saved = files.get(f"saved/busybox@{digest}.tar")
    assert saved is not None, sorted(name for name in files if "sav" in name)
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert len(manifest) == 1 and len(manifest[0]["Layers"]) >= 1
    assert sorted(path.name for path in folder.iterdir()) == ["Dockerfile", "build.yml", "images.txt"]
    again = distrokit(cache, "pkg", "build", str(folder))
    assert again.returncode == 0 and "(up to date)" in again.stderr, again.stderr
    # from a file, into one tar: a change of where they go builds again
    (folder / "build.yml").write_text(
        "image: bundles\norg: example\ndepends:\n  docker-images:\n    target: all.tar\n    from-file: images.txt\n"
    )
    (folder / "Dockerfile").write_text(f"FROM {base}\nCOPY all.tar /all.tar\n")
    one_tar = distrokit(cache, "pkg", "build", str(folder))
    assert one_tar.returncode == 0 and "(up to date)" not in one_tar.stderr, one_tar.stderr
    with tarfile.open(fileobj=io.BytesIO(image_files(cache, one_tar.stdout.strip())["all.tar"])) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert len(manifest) == 2  # both images, the index's as its amd64 image
    again = distrokit(cache, "pkg", "build", str(folder))  # the index digest resolves from the store now
    assert again.returncode == 0 and "(up to date)" in again.stderr, again.stderr


def test_depends_without_a_digest_is_an_error_at_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "nodigest"
    folder.mkdir()
    (folder / "build.yml").write_text(
        "image: nodigest\ndepends:\n  docker-images:\n    target-dir: saved\n    target: one.tar\n"
        "    list:\n      - example.com/some/image:latest\n"
    )
    (folder / "Dockerfile").write_text("FROM scratch\n")
    done = distrokit(tmp_path / "cache", "pkg", "build", str(folder))
    assert done.returncode == 2, done.stderr
    assert f"{folder / 'build.yml'}:4:5" in done.stderr and "not both" in done.stderr, done.stderr
    assert "lacks a digest" in done.stderr, done.stderr
    assert not (tmp_path / "cache" / "packages").exists()


def test_dev_and_hash_path_name_the_package_as_linuxkit_does(tmp_path: Path) -> None:
    folder, git = committed_package(tmp_path, "image: hello\n")
    parent = subprocess.run([*git, "rev-parse", "HEAD:pkg"], capture_output=True, text=True, check=True).stdout.strip()
    env_user = os.environ.get("USER") or getpass.getuser()
    dev = distrokit(tmp_path / "cache", "pkg", "show-tag", "--dev", str(folder))
    assert dev.stdout == f"{env_user}/hello:dev\n", dev.stderr
    hashed = distrokit(tmp_path / "cache", "pkg", "show-tag", "--hash-path", str(folder.parent), str(folder))
    assert hashed.stdout == f"linuxkit/hello:{parent}\n", hashed.stderr
    outside = distrokit(tmp_path / "cache", "pkg", "show-tag", "--hash-path", str(tmp_path / "elsewhere"), str(folder))
    assert outside.returncode == 2 and "--hash-path" in outside.stderr and outside.stdout == "", outside.stderr


def test_cache_gc_removes_a_killed_builds_storage_and_the_record_of_a_dropped_package(
    base: str, tmp_path: Path, debs_dir: Path
) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    folder = package_folder(tmp_path, base, greeting="collected")
    built = distrokit(cache, "pkg", "build", str(folder))
    assert built.returncode == 0, built.stderr
    ref = built.stdout.strip()
    records = sorted((cache / "packages").glob("*.built.json"))
    assert [path.name for path in records] == ["example-hello-amd64.built.json"]
    leftover = cache / "tmp" / "buildah-killed" / "root" / "vfs"  # as a SIGKILLed build leaves it
    leftover.mkdir(parents=True)
    (leftover / "layer").write_bytes(b"x" * 4096)
    kept = distrokit(cache, "cache", "gc")
    assert kept.returncode == 0, kept.stderr
    assert not (cache / "tmp" / "buildah-killed").exists() and records[0].is_file()  # the name keeps its record
    assert distrokit(cache, "pkg", "build", str(folder)).stderr.count("(up to date)") == 1
    assert distrokit(cache, "cache", "rm", ref).returncode == 0
    collected = distrokit(cache, "cache", "gc")
    assert collected.returncode == 0, collected.stderr
    assert not records[0].exists()
    again = distrokit(cache, "pkg", "build", str(folder))
    assert again.returncode == 0 and "(up to date)" not in again.stderr, again.stderr


def test_a_lock_pins_the_packages_from_image(base: str, registry: Registry, tmp_path: Path, debs_dir: Path) -> None:
    """`distrokit lock` pins a LinuxKit package's FROM image as any image of the spec; `build --locked` from a
    clean store builds FROM the pinned digest after the tag moved (to an image without a shell, on which
    the package's RUN step would fail)."""
    moving = f"{registry.host}/distrokit/busybox:moving"
    other = Store(tmp_path / "other")
    pulls.pull(other, ImageRef.parse(base))
    pulls.push(other, ImageRef.parse(base), moving)
    folder = package_folder(tmp_path, moving, greeting="pinned")
    spec = tmp_path / "spec.yml"
    spec.write_text('onboot:\n  - name: hello\n    image: "@pkg:hello"\n')
    locking = distrokit(new_cache(tmp_path / "lock-cache", debs_dir), "lock", str(spec))
    assert locking.returncode == 0, locking.stderr
    pinned = json.loads((tmp_path / "spec.lock").read_text())["images"]
    assert list(pinned) == [moving] and "linux/amd64" in pinned[moving]["platforms"], pinned
    shell_less = stored_image(other, ImageRef.parse("local/no-shell:1"), [random_layer(other, 1000)])
    pulls.push_digest(other, shell_less, moving)  # the tag moves on
    cache = new_cache(tmp_path / "cache", debs_dir)
    out = tmp_path / "root.tar"
    built = distrokit(cache, "build", "--locked", "-f", "tar", "-o", str(out), str(spec))
    assert built.returncode == 0, built.stderr
    with tarfile.open(out) as tar:
        greeting = tar.extractfile("containers/onboot/000-hello/lower/etc/greeting")
        assert greeting is not None and greeting.read() == b"pinned\n"
    again = distrokit(cache, "build", "--locked", "-f", "tar", "-o", str(out), str(spec))
    assert again.returncode == 0 and "0 tasks ran" in again.stderr + again.stdout, again.stderr
    (folder / "Dockerfile").write_text(f"FROM {registry.host}/distrokit/busybox:unpinned\n")
    unpinned = distrokit(cache, "build", "--locked", "-f", "tar", "-o", str(out), str(spec))
    assert unpinned.returncode != 0 and "busybox:unpinned is not pinned" in unpinned.stderr, unpinned.stderr


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_build_ended_by_sigterm_stops_its_package_build(base: str, tmp_path: Path, debs_dir: Path) -> None:
    """A LinuxKit package builds on one of the build's worker threads: SIGTERM (a cancelled CI job) must
    not leave buildah and the RUN step going on without distrokit."""
    cache = new_cache(tmp_path / "cache", debs_dir)
    folder = package_folder(tmp_path, base)
    (folder / "Dockerfile").write_text(f"FROM {base}\nRUN sleep 300\n")
    spec = tmp_path / "spec.yml"
    spec.write_text('onboot:\n  - name: hello\n    image: "@pkg:hello"\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = ["--cache", str(cache), "build", "-q", "-f", "tar", str(spec), "--dir", str(tmp_path / "out")]
    build = subprocess.Popen([sys.executable, "-m", "buildlib.cli", *argv], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(b"sleep" in cmdline(pid) for pid in descendants(build.pid) if process_running(pid)):
        assert build.poll() is None, build.communicate()
        assert time.monotonic() < deadline, "the RUN step never started"
        time.sleep(0.05)
    below = descendants(build.pid)
    build.send_signal(signal.SIGTERM)
    _, err = build.communicate(timeout=120)
    assert build.returncode == 128 + signal.SIGTERM, err
    deadline = time.monotonic() + 30
    while left := [pid for pid in below if process_running(pid)]:
        assert time.monotonic() < deadline, [cmdline(pid) for pid in left]
        time.sleep(0.1)
