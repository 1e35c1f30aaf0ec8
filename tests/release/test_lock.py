"""buildlib.release.lock and `distrokit lock`: pins written, followed, refused when they disagree, and kept honest
against a real registry whose tag moves and the real Debian archive."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest
from conftest import COMPONENTS, build, new_cache
from registry import Registry, push_index, random_layer, stored_image

from buildlib import cli, tasks
from buildlib.debian.recipes import Package, PkgResolver
from buildlib.errors import ArchiveDrift, BadInput, LockMismatch
from buildlib.release import lock, lockpath, pinning
from buildlib.spec.model import load_spec
from buildlib.spec.refs import ImageRef
from buildlib.store import pulls
from buildlib.store.images import Store
from buildlib.store.transport import Network, RetryPolicy

NET = Network(retry=RetryPolicy(attempts=3, timeout=30, backoff=0.05, max_backoff=0.2))


def lock_cli(cache: Path, *args: str) -> int:
    return cli.main(["--cache", str(cache), "lock", *args])


def options(cache: Path, out: Path, spec: Path, **kwargs: object) -> tasks.BuildOptions:
    path = lockpath.path_for(spec)
    pins = lock.read(path) if path.is_file() else None
    return tasks.BuildOptions(cache=cache, out_dir=out, name=spec.stem, lock=pins, lock_file=str(path), **kwargs)  # type: ignore[arg-type]


# the file -----------------------------------------------------------------------------------
def test_the_file_is_sorted_and_reads_back(tmp_path: Path) -> None:
    deb = Package("b", "1:2.0", "b_1%3a2.0_amd64.deb", "ab" * 32, "amd64", 1234)
    pins = lock.Lock(
        {"docker.io/library/z:1": lock.ImagePin("sha256:" + "1" * 64, {"linux/arm64": "sha256:" + "2" * 64})},
        {"init": lock.ComponentPin("k1", (deb,))},
    )
    text = lock.render(pins).decode()
    top = [line.split('"')[1] for line in text.splitlines() if line.startswith('  "')]
    assert top == ["components", "images", "version"]
    assert text.endswith("}\n") and "\n" in text and json.loads(text)["version"] == lock.LOCK_VERSION
    assert text.index('"architecture"') < text.index('"filename"') < text.index('"name"') < text.index('"sha256"')
    path = tmp_path / "x.lock"
    assert lock.write(path, pins) and not lock.write(path, pins)  # the second write finds the same bytes
    assert lock.read(path) == pins and lock.render(lock.read(path)) == text.encode()


def test_a_broken_lock_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text('{"version": 1, "components": {"init": {"recipe": "k"}}}')
    with pytest.raises(BadInput, match=r"x\.lock: a malformed entry \(no packages\)"):  # no KeyError('packages')
        lock.read(path)
    path.write_text("not json")
    with pytest.raises(BadInput, match=r"x\.lock: not a distrokit lock"):
        lock.read(path)


# lock, build, lock ----------------------------------------------------------------------------
def test_lock_then_build_then_lock_changes_nothing(
    spec_copy: Path, shared_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock_cli(shared_cache, str(spec_copy)) == 0
    path = spec_copy.with_suffix(".lock")
    first = path.read_bytes()
    pinned = json.loads(first)
    assert set(pinned["components"]) == {"kernel", "init"} and pinned["images"] == {}
    (busybox,) = pinned["components"]["init"]["packages"]
    assert busybox["name"] == "busybox-static" and busybox["architecture"] == "amd64" and busybox["size"] > 0
    assert len(busybox["sha256"]) == 64 and busybox["filename"].endswith("_amd64.deb")
    out = tmp_path / "out"
    argv = ["build", "-q", "--locked", str(spec_copy), "--dir", str(out), "--name", "locked"]
    assert cli.main(["--cache", str(shared_cache), *argv]) == 0
    assert lock_cli(shared_cache, str(spec_copy)) == 0
    assert path.read_bytes() == first
    assert "is up to date" in capsys.readouterr().err
    # The SBOM names the lock's .deb digests.
    capsys.readouterr()
    assert cli.main(["--cache", str(shared_cache), "sbom", str(spec_copy)]) == 0
    document = json.loads(capsys.readouterr().out)
    (entry,) = [p for p in document["packages"] if p["name"] == "busybox-static"]
    assert entry["checksums"] == [{"algorithm": "SHA256", "checksumValue": busybox["sha256"]}]
    # The store's pins are a cache of the lock: a build keeps them equal to it.
    # (the amd64 pin, NAME-KEY.json: not a build record NAME-KEY.built.json nor another architecture's)
    (pin,) = [
        p for p in (shared_cache / "components").glob("init-*.json") if re.fullmatch(r"init-\w{16}\.json", p.name)
    ]
    cached = json.loads(pin.read_text())
    assert [(p["name"], p["sha256"]) for p in cached] == [(busybox["name"], busybox["sha256"])]


def test_locked_names_an_image_the_lock_does_not_know(
    spec_copy: Path, shared_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lock_cli(shared_cache, str(spec_copy)) == 0
    text = spec_copy.read_text() + "onboot:\n  - name: extra\n    image: 127.0.0.1:9/team/extra:v3\n"
    spec_copy.write_text(text)
    with pytest.raises(LockMismatch, match=r"image 127\.0\.0\.1:9/team/extra:v3 is not pinned in .*minimal\.lock"):
        tasks.plan_build([spec_copy], options(shared_cache, tmp_path / "out", spec_copy, locked=True), COMPONENTS)
    capsys.readouterr()
    code = cli.main(["--cache", str(shared_cache), "build", "--locked", str(spec_copy), "--dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "127.0.0.1:9/team/extra:v3" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    # Without --locked the build warns and takes the image unpinned.
    plan = tasks.plan_build([spec_copy], options(shared_cache, tmp_path / "out", spec_copy), COMPONENTS)
    assert any("extra:v3 is not pinned" in warning for warning in plan.warnings)


def test_locked_names_a_changed_recipe(tmp_path: Path, shared_cache: Path) -> None:
    components = tmp_path / "components"
    components.mkdir()
    for name in ("init", "kernel"):
        (components / name).symlink_to(COMPONENTS / name)
    spec = tmp_path / "specs" / "mine.yml"
    spec.parent.mkdir()
    spec.write_text('init:\n  - "@pkg:../components/init"\n  - "@pkg:../components/extra"\n')
    extra = components / "extra"
    extra.mkdir()
    (extra / "component.yml").write_text("files:\n  - path: etc/extra\n    contents: one\n")
    assert lock_cli(shared_cache, str(spec)) == 0
    (extra / "component.yml").write_text("files:\n  - path: etc/extra\n    contents: two\n")
    with pytest.raises(LockMismatch, match=r"component extra: its recipe changed") as raised:
        tasks.plan_build([spec], options(shared_cache, tmp_path / "out", spec, locked=True), COMPONENTS)
    assert "component init" not in str(raised.value)


# the registry -------------------------------------------------------------------------------
@pytest.mark.registry
def test_a_moved_tag_is_not_followed_until_lock_update(registry: Registry, tmp_path: Path) -> None:
    source = Store(tmp_path / "source")
    per_arch = {
        arch: stored_image(source, ImageRef.parse(f"local/first-{arch}"), [random_layer(source, 500, "first")], arch)
        for arch in ("amd64", "arm64")
    }
    ref = f"{registry.host}/lock/app:v1"
    index = push_index(source, per_arch, ref)
    spec = tmp_path / "app.yml"
    spec.write_text(f"init:\n  - {ref}\n")
    cache = tmp_path / "cache"
    assert lock_cli(cache, str(spec), "--arch", "amd64", "--arch", "arm64") == 0
    pins = lock.read(spec.with_suffix(".lock"))
    assert pins.images[ref] == lock.ImagePin(index, {f"linux/{arch}": digest for arch, digest in per_arch.items()})

    moved = stored_image(source, ImageRef.parse(ref), [random_layer(source, 500, "second")])
    pulls.push(source, ImageRef.parse(ref), ref, network=NET)

    def built_file(cache_dir: Path, out: Path) -> set[str]:
        done = build(spec, cache_dir, out, formats=("tar",), network=NET, lock=lock.read(spec.with_suffix(".lock")))
        with tarfile.open(done.prefix.with_name("app.tar")) as archive:
            return set(archive.getnames()) & {"first", "second"}

    # A clean store pulls the pinned digest, not what the tag names now.
    assert built_file(tmp_path / "clean", tmp_path / "out1") == {"first"}
    assert Store(tmp_path / "clean").lookup(ImageRef.parse(ref)) == per_arch["amd64"]
    assert lock_cli(cache, str(spec), "--update", ref) == 0
    platforms = {"linux/amd64": moved, "linux/arm64": moved}  # one manifest, no index: as a pull takes it
    assert lock.read(spec.with_suffix(".lock")).images[ref] == lock.ImagePin(moved, platforms)
    assert built_file(tmp_path / "clean", tmp_path / "out2") == {"second"}


# the archive --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "said"),
    [("sha256", "0" * 64, "serves other bytes"), ("version", "1:0.0-gone1", "no longer serves")],
)  # a changed version comes with its own file name (the sha256 alone would find the cached .deb)
def test_a_pinned_deb_the_archive_cannot_give_names_the_package(
    field: str, value: str, said: str, spec_copy: Path, shared_cache: Path, tmp_path: Path, debs_dir: Path
) -> None:
    spec = spec_copy.with_name("initonly.yml")
    spec.write_text('init:\n  - "@pkg:../components/init"\n')
    assert lock_cli(shared_cache, str(spec)) == 0
    path = spec.with_suffix(".lock")
    document = json.loads(path.read_text())
    (package,) = document["components"]["init"]["packages"]
    package[field] = value
    if field == "version":
        package["filename"] = f"busybox-static_{value.replace(':', '%3a')}_amd64.deb"
    path.write_text(json.dumps(document))
    fresh = new_cache(tmp_path / "fresh", debs_dir)
    with pytest.raises(ArchiveDrift) as raised:
        tasks.ensure_images([spec], options(fresh, tmp_path / "out", spec, locked=True), COMPONENTS)
    message = str(raised.value)
    assert said in message and "busybox-static" in message and package["version"] in message
    assert "lock --update init" in message and "cache import" in message


def test_an_imported_component_image_stands_in_for_debs_the_archive_lost(
    spec_copy: Path, shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_copy.with_name("initonly.yml")
    spec.write_text('init:\n  - "@pkg:../components/init"\n')
    assert lock_cli(shared_cache, str(spec)) == 0
    _, built = tasks.ensure_images([spec], options(shared_cache, tmp_path / "out", spec, locked=True), COMPONENTS)
    (ref,) = built
    archive = tmp_path / "init.tar"
    assert cli.main(["--cache", str(shared_cache), "cache", "export", ref, str(archive)]) == 0
    # An apt whose archive serves nothing (empty package lists): what a lock sees once Debian moved on.
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::State::Lists "{lists}";\nDir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')
    monkeypatch.setenv("APT_CONFIG", str(config))
    with pytest.raises(ArchiveDrift, match="no longer serves busybox-static"):
        tasks.ensure_images([spec], options(tmp_path / "bare", tmp_path / "out", spec, locked=True), COMPONENTS)
    imported = tmp_path / "imported"
    assert cli.main(["--cache", str(imported), "cache", "import", str(archive), ref]) == 0
    _, again = tasks.ensure_images([spec], options(imported, tmp_path / "out", spec, locked=True), COMPONENTS)
    assert again[ref].manifest_digest == built[ref].manifest_digest


def test_every_disagreement_is_named_once() -> None:
    pins = lock.Lock(
        {"docker.io/library/redis:7": lock.ImagePin("sha256:" + "1" * 64, {"linux/amd64": "sha256:" + "2" * 64})},
        {"init": lock.ComponentPin("old", ()), "gone": lock.ComponentPin("k", ())},
    )
    wanted = lock.Wanted(
        ("docker.io/library/redis:7", "docker.io/library/nginx:1"), {"init": "new"}, ("linux/amd64", "linux/arm64")
    )
    assert lock.disagreements(pins, wanted, "x.lock") == [
        "image redis:7: x.lock pins no linux/arm64 image",
        "image nginx:1 is not pinned in x.lock",
        "component init: its recipe changed (x.lock pins old, it is now new)",
        "x.lock pins component gone, which the spec no longer uses",
    ]


def test_update_asks_again_only_for_what_it_names(spec_copy: Path, shared_cache: Path) -> None:
    assert lock_cli(shared_cache, str(spec_copy)) == 0
    path = spec_copy.with_suffix(".lock")
    document = json.loads(path.read_text())
    real = document["components"]["init"]["packages"][0]["sha256"]
    for name in ("init", "kernel"):  # pins of an older archive
        document["components"][name]["packages"][0]["sha256"] = "f" * 64
    path.write_text(json.dumps(document))
    assert lock_cli(shared_cache, str(spec_copy), "--update", "init") == 0
    updated = json.loads(path.read_text())["components"]
    assert updated["init"]["packages"][0]["sha256"] == real  # what apt serves now
    assert updated["kernel"]["packages"][0]["sha256"] == "f" * 64  # untouched
    with pytest.raises(BadInput, match="nosuch is no image or component of this spec"):
        cli.main(["--cache", str(shared_cache), "--debug", "lock", str(spec_copy), "--update", "nosuch"])


# platforms ----------------------------------------------------------------------------------
@pytest.mark.arm64
def test_each_platform_components_are_pinned_under_their_own_names(
    spec_copy: Path, shared_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """amd64's .debs under NAME (as every lock had them), arm64's under NAME-arm64, from Debian's arm64 archive."""
    assert lock_cli(shared_cache, str(spec_copy), "--arch", "amd64", "--arch", "arm64") == 0
    path = spec_copy.with_suffix(".lock")
    first = path.read_bytes()
    pinned = json.loads(first)["components"]
    assert set(pinned) == {"kernel", "init", "kernel-arm64", "init-arm64"}
    for name in ("kernel", "init"):
        assert pinned[name]["recipe"] == pinned[f"{name}-arm64"]["recipe"]  # one recipe, two sets of .debs
        for arch, entry in (("amd64", pinned[name]), ("arm64", pinned[f"{name}-arm64"])):
            assert entry["packages"], entry
            for package in entry["packages"]:
                assert package["architecture"] in (arch, "all"), package
                assert package["filename"].endswith(f"_{package['architecture']}.deb") and package["size"] > 0
    (amd64,), (arm64,) = pinned["init"]["packages"], pinned["init-arm64"]["packages"]
    assert amd64["name"] == arm64["name"] == "busybox-static" and arm64["architecture"] == "arm64"
    assert amd64["sha256"] != arm64["sha256"]
    assert {p["name"] for p in pinned["kernel-arm64"]["packages"]} >= {
        p["name"].replace("amd64", "arm64") for p in pinned["kernel"]["packages"]
    }
    for arch in ("amd64", "arm64"):  # each platform's build agrees with it (the other's entries are no stale pins)
        locked = options(shared_cache, tmp_path / "out", spec_copy, arch=arch, locked=True)
        assert tasks.plan_build([spec_copy], locked, COMPONENTS).warnings == []
    # Locking again without --arch keeps every platform the lock pins: the file does not change.
    capsys.readouterr()
    assert lock_cli(shared_cache, str(spec_copy)) == 0
    assert path.read_bytes() == first and "is up to date" in capsys.readouterr().err
    # --update NAME-ARCH asks again for that platform's entry alone, --update NAME for every platform's.
    document = json.loads(first)
    for entry in document["components"].values():
        entry["packages"][0]["sha256"] = "f" * 64  # pins of an older archive
    path.write_text(json.dumps(document))
    assert lock_cli(shared_cache, str(spec_copy), "--update", "init-arm64") == 0
    updated = json.loads(path.read_text())["components"]
    assert updated["init-arm64"] == pinned["init-arm64"]
    assert [updated[n]["packages"][0]["sha256"] for n in ("init", "kernel", "kernel-arm64")] == ["f" * 64] * 3
    assert lock_cli(shared_cache, str(spec_copy), "--update", "kernel") == 0
    updated = json.loads(path.read_text())["components"]
    assert updated["kernel"] == pinned["kernel"] and updated["kernel-arm64"] == pinned["kernel-arm64"]
    assert updated["init"]["packages"][0]["sha256"] == "f" * 64
    # --arch names the platforms to pin, and only those.
    assert lock_cli(shared_cache, str(spec_copy), "--arch", "arm64") == 0
    assert set(json.loads(path.read_text())["components"]) == {"kernel-arm64", "init-arm64"}


def test_an_amd64_lock_refuses_a_locked_arm64_build_in_one_line(
    spec_copy: Path, shared_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    argv = ["build", "--arch", "arm64", "--locked", str(spec_copy), "--dir", str(out)]
    assert cli.main(["--cache", str(shared_cache), *argv]) == 2  # no lock at all: the command that writes one
    assert f"has no lock file: write one with `distrokit lock {spec_copy} --arch arm64`" in capsys.readouterr().err
    assert lock_cli(shared_cache, str(spec_copy)) == 0
    capsys.readouterr()
    code = cli.main(["--cache", str(shared_cache), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and not out.exists(), err
    assert "component init-arm64 is not pinned" in err and "component kernel-arm64 is not pinned" in err
    assert "no longer uses" not in err  # amd64's entries are still the spec's
    assert f"run `distrokit lock {spec_copy} --arch amd64 --arch arm64`" in err
    # The amd64 build it was locked for still agrees with it.
    plan = tasks.plan_build([spec_copy], options(shared_cache, tmp_path / "out", spec_copy, locked=True), COMPONENTS)
    assert plan.warnings == []


@pytest.mark.registry
def test_an_arm64_build_follows_the_lock_arm64_manifest(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A multi-platform image locked for both platforms: each --arch takes its own pinned manifest, the
    SBOM of the arm64 build (`--arch aarch64` is arm64) names the arm64 manifest, and the store's pins are
    told apart per platform."""
    source = Store(tmp_path / "source")
    per_arch = {
        arch: stored_image(source, ImageRef.parse(f"local/m-{arch}"), [random_layer(source, 500, f"only-{arch}")], arch)
        for arch in ("amd64", "arm64")
    }
    ref = f"{registry.host}/lock/multi:v1"
    push_index(source, per_arch, ref)
    spec = tmp_path / "multi.yml"
    spec.write_text(f"init:\n  - {ref}\n")
    cache = tmp_path / "cache"
    assert lock_cli(cache, str(spec), "--arch", "amd64", "--arch", "arm64") == 0
    pins = lock.read(spec.with_suffix(".lock"))
    for arch in ("arm64", "amd64"):
        done = build(spec, cache, tmp_path / arch, formats=("tar",), network=NET, arch=arch, lock=pins, locked=True)
        with tarfile.open(done.prefix.with_name("multi.tar")) as archive:
            assert set(archive.getnames()) & {"only-amd64", "only-arm64"} == {f"only-{arch}"}
    capsys.readouterr()
    assert cli.main(["--cache", str(cache), "sbom", "--arch", "aarch64", str(spec)]) == 0
    document = json.loads(capsys.readouterr().out)
    (image,) = [p for p in document["packages"] if p.get("primaryPackagePurpose") == "CONTAINER"]
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": per_arch["arm64"].split(":")[1]}]
    inputs = pinning.spec_inputs(load_spec([spec]), COMPONENTS, PkgResolver("arm64"))
    for arch, digest in per_arch.items():
        in_store = pinning.pins_in_store(Store(cache), inputs, f"linux/{arch}")
        assert in_store.manifest(ref, f"linux/{arch}") == digest


@pytest.mark.arm64
def test_a_locked_arm64_build_fetches_the_arm64_pins(
    spec_copy: Path, shared_cache: Path, tmp_path: Path, debs_dir: Path
) -> None:
    """What an arm64 build fetches is the lock's NAME-arm64 entry: a pin the archive does not serve is
    named by that entry, and nothing of it lands in the store."""
    spec = spec_copy.with_name("initonly.yml")
    spec.write_text('init:\n  - "@pkg:../components/init"\n')
    assert lock_cli(shared_cache, str(spec), "--arch", "arm64") == 0
    path = spec.with_suffix(".lock")
    document = json.loads(path.read_text())
    (package,) = document["components"]["init-arm64"]["packages"]
    package["sha256"] = "0" * 64
    path.write_text(json.dumps(document))
    fresh = new_cache(tmp_path / "fresh", debs_dir)
    with pytest.raises(ArchiveDrift) as raised:
        tasks.ensure_images([spec], options(fresh, tmp_path / "out", spec, arch="arm64", locked=True), COMPONENTS)
    message = str(raised.value)
    assert message.startswith("component init-arm64: the Debian archive serves other bytes")
    assert f"busybox-static {package['version']}" in message and "lock --update init-arm64" in message
    assert list((fresh / "components").glob("init-*")) == []  # neither the bad pin nor a build record
