"""buildlib.debian.unpack and archive.fetch_packages: .debs fetched together and unpacked several at
once, giving the tree and files that one `dpkg-deb -x` after another gives."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from buildlib.debian import archive, recipes
from buildlib.debian.unpack import listing, unpack_all
from buildlib.errors import BuildError
from buildlib.fsutil import sha256_file
from buildlib.store.images import Store
from buildlib.store.transport import Event, EventKind


def make_deb(folder: Path, name: str, tree: dict[str, str | tuple[str, int] | None]) -> Path:
    """A real .deb (dpkg-deb --build) holding `tree`, path to: a file's text, "->TARGET" a link, None a
    folder, (text, mode) a file with its mode, ("dir", mode) a folder with its mode."""
    package = folder / f"{name}-src"
    (package / "DEBIAN").mkdir(parents=True)
    (package / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n"
    )
    for path, what in tree.items():
        target = package / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if what is None:
            target.mkdir(exist_ok=True)
        elif isinstance(what, str) and what.startswith("->"):
            target.symlink_to(what.removeprefix("->"))
        elif isinstance(what, tuple) and what[0] == "dir":
            target.mkdir(exist_ok=True)
            target.chmod(what[1])
        elif isinstance(what, tuple):
            target.write_text(what[0])
            target.chmod(what[1])
        else:
            target.write_text(what)
    deb = folder / f"{name}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(package), str(deb)], check=True, capture_output=True
    )
    return deb


def tree_of(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under root: its kind, mode and content (a link's target, a file's bytes)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
            else:
                found[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_text())
    return found


def one_after_another(debs: list[Path], root: Path) -> None:
    root.mkdir()
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)


def test_unpacking_at_once_gives_the_tree_of_one_after_another(tmp_path: Path) -> None:
    debs = [
        make_deb(tmp_path, "first", {"etc/d": ("dir", 0o700), "etc/d/f": "first", "usr/x": "->y", "usr/y": "y"}),
        # a later file replaces an earlier one, a later folder's mode wins, a folder replaces a link
        make_deb(tmp_path, "second", {"etc/d": ("dir", 0o755), "etc/d/f": ("second", 0o600), "usr/x/in": "in"}),
        make_deb(tmp_path, "third", {"usr/y": "->x/in", "usr/share/t": "t", "etc/d/g": "g"}),
    ]
    one_after_another(debs, tmp_path / "expected")
    (tmp_path / "actual").mkdir()
    unpack_all(debs, tmp_path / "actual", tmp_path / "scratch")
    expected = tree_of(tmp_path / "expected")
    assert expected["etc/d"][1] == 0o755 and expected["usr/x"][0] == "dir"  # the cases this test is about
    assert tree_of(tmp_path / "actual") == expected
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").iterdir())


def dpkg_listing(deb: Path) -> list[str]:
    """What `dpkg-deb -c` lists, as `listing` gives it: files and links, and the folders holding nothing."""
    lines = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    names = [line.split(None, 5)[5].split(" -> ")[0].removeprefix("./") for line in lines.splitlines()]
    names = [name for name in names if name.rstrip("/")]
    folders = {os.path.dirname(name.rstrip("/")) for name in names}
    return sorted(name for name in names if name.rstrip("/") not in folders)


def test_each_deb_s_listing_is_what_dpkg_deb_lists(tmp_path: Path) -> None:
    debs = [
        make_deb(tmp_path, "a", {"etc/d/f": "f", "etc/empty": None, "usr/x": "->y", "usr/share/doc/a/copyright": "c"}),
        make_deb(tmp_path, "b", {"etc/d/g": "g", "var/lib/b/nested/empty": None, "usr/y": "->/etc/d"}),
    ]
    (tmp_path / "root").mkdir()
    listings = unpack_all(debs, tmp_path / "root", tmp_path / "scratch")
    assert listings == [dpkg_listing(deb) for deb in debs]
    assert "etc/empty/" in listings[0] and "var/lib/b/nested/empty/" in listings[1] and "usr/y" in listings[1]
    assert listing(tmp_path / "root") == sorted(set(listings[0]) | set(listings[1]))


def test_the_order_of_the_debs_decides_as_it_did(tmp_path: Path) -> None:
    a = make_deb(tmp_path, "a", {"etc/f": "a"})
    b = make_deb(tmp_path, "b", {"etc/f": "b"})
    for order, name in (([a, b], "ab"), ([b, a], "ba")):
        (tmp_path / name).mkdir()
        unpack_all(order, tmp_path / name, tmp_path / f"scratch-{name}")
    assert (tmp_path / "ab" / "etc" / "f").read_text() == "b"
    assert (tmp_path / "ba" / "etc" / "f").read_text() == "a"


def test_a_file_over_a_full_folder_is_one_line_naming_the_deb(tmp_path: Path) -> None:
    debs = [make_deb(tmp_path, "dir", {"etc/x/f": "f"}), make_deb(tmp_path, "file", {"etc/x": "x"})]
    (tmp_path / "root").mkdir()
    with pytest.raises(BuildError, match=r"file\.deb: cannot put a file at /etc/x"):
        unpack_all(debs, tmp_path / "root", tmp_path / "scratch")


def test_a_broken_deb_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.deb"
    broken.write_bytes(b"not a deb")
    (tmp_path / "root").mkdir()
    with pytest.raises(BuildError, match=r"broken\.deb: dpkg-deb cannot unpack it"):
        unpack_all([broken], tmp_path / "root", tmp_path / "scratch")


# fetching: real apt against Debian's archive ------------------------------------------------
@pytest.fixture(scope="module")
def small_closure(tmp_path_factory: pytest.TempPathFactory) -> list[recipes.Package]:
    folder = tmp_path_factory.mktemp("recipe")
    (folder / "component.yml").write_text("name: t\npackages: [htop]\n")
    return archive.resolve_packages(recipes.load_recipe(folder))


def test_missing_debs_come_in_one_download_and_each_is_checked(tmp_path: Path, small_closure) -> None:
    store = Store(tmp_path / "store")
    heard: list[Event] = []
    debs = archive.fetch_packages(store, small_closure, heard.append)
    assert [deb.name for deb in debs] == [p.filename for p in small_closure]
    assert all(sha256_file(deb) == "sha256:" + p.sha256 for deb, p in zip(debs, small_closure, strict=True))
    kinds = [event.kind for event in heard if event.kind is not EventKind.PROGRESS]
    # one apt-get for all: every download starts before the first ends (one after another alternates)
    assert kinds == [EventKind.START] * len(small_closure) + [EventKind.DONE] * len(small_closure)
    assert {e.name for e in heard if e.kind is EventKind.DONE} == {p.filename for p in small_closure}
    assert {deb.parent.name for deb in (tmp_path / "store").rglob("*.deb")} == {"debs"}  # nothing left behind


def test_listings_of_debian_s_debs_are_what_dpkg_deb_lists(tmp_path: Path, small_closure) -> None:
    debs = archive.fetch_packages(Store(tmp_path / "store"), small_closure)
    (tmp_path / "root").mkdir()
    assert unpack_all(debs, tmp_path / "root", tmp_path / "scratch") == [dpkg_listing(deb) for deb in debs]


def test_a_deb_with_other_bytes_than_pinned_is_named_and_not_kept(tmp_path: Path, small_closure) -> None:
    store = Store(tmp_path / "store")
    wrong = replace(small_closure[-1], sha256="0" * 64)
    pinned = [*small_closure[:-1], wrong]
    with pytest.raises(archive.PackageUnavailable) as raised:
        archive.fetch_packages(store, pinned)
    assert raised.value.package == wrong and "other bytes" in raised.value.what
    assert not (tmp_path / "store" / "debs" / wrong.filename).exists()
