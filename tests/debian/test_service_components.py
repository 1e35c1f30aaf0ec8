"""A service component from Debian packages with one line: what dpkg's configure step would have
left (the closure's conffiles, base folders, the scripts' users and groups, postinst links and copies)
is in the image, from real .debs, without running a maintainer script."""

from __future__ import annotations

from pathlib import Path

import pytest
from bootkit import distrokit
from conftest import new_cache

from buildlib.debian import maintainer
from buildlib.rootfs import layers
from buildlib.rootfs.parts import merged_image_tree
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store

NGINX_RECIPE = "packages: [nginx]\nconfig: {entrypoint: [nginx, -g, 'daemon off;']}\n"

# redis-tools' postinst (Debian 12), the part that makes its user: a variable, a continued line.
REDIS_POSTINST = """#!/bin/sh
set -e
USER="redis"
GROUP="$USER"
if [ "$1" = "configure" ]
then
\tadduser \\
\t\t--system \\
\t\t--home /var/lib/redis \\
\t\t--quiet \\
\t\t--group \\
\t\t${USER} || true
fi
"""


def test_adduser_useradd_and_addgroup_calls_are_read_from_the_script() -> None:
    script = REDIS_POSTINST + (
        "useradd -r -g daemon -d /var/lib/x xsvc\n"  # in an existing group: no group of its own
        "addgroup --system ssl-cert\n"
        "adduser www-data ssl-cert\n"  # a member added, nothing created
        'adduser --system "$(id -un)"\n'  # left to the shell: not guessed at
    )
    accounts = maintainer.declared_accounts([script])
    assert accounts.users == ("redis", "xsvc")
    assert accounts.groups == ("redis", "ssl-cert")


def test_only_literal_ln_cp_and_mkdir_lines_are_taken() -> None:
    script = (
        "if [ ! -e /etc/a ]; then\n  ln -s /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default\nfi\n"
        "    cp /usr/share/nginx/html/index.html /var/www/html/index.nginx-debian.html\n"
        "mkdir -p /var/www/html\n"
        'ln -s "$target" /etc/b\n'  # unknown variable
        "cp /usr/share/x/*.conf /etc/x/\n"  # a glob
        "ln -s ../../x /etc/../../escape\n"  # relative source: not a literal absolute path
    )
    assert maintainer.postinst_actions(script) == [
        maintainer.Action("link", "/etc/nginx/sites-available/default", "etc/nginx/sites-enabled/default"),
        maintainer.Action("copy", "usr/share/nginx/html/index.html", "var/www/html/index.nginx-debian.html"),
        maintainer.Action("mkdir", "", "var/www/html"),
    ]


def test_accounts_get_debian_ids_and_the_next_free_system_ids(tmp_path: Path) -> None:
    maintainer.write_accounts(tmp_path, maintainer.Accounts(users=("redis", "lone"), groups=("redis",)))
    passwd = (tmp_path / "etc/passwd").read_text().splitlines()
    group = (tmp_path / "etc/group").read_text().splitlines()
    assert "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin" in passwd
    assert "redis:x:101:101::/nonexistent:/usr/sbin/nologin" in passwd
    assert "lone:x:102:65534::/nonexistent:/usr/sbin/nologin" in passwd  # adduser --system: nogroup
    assert "redis:x:101:" in group and "adm:x:4:" in group and "lone:x:102:" not in group


@pytest.fixture(scope="module")
def nginx_image(tmp_path_factory: pytest.TempPathFactory, debs_dir: Path) -> tuple[Store, str]:
    """`pkg build` of a one-line nginx recipe, as a user runs it."""
    folder = tmp_path_factory.mktemp("components") / "nginx"
    folder.mkdir()
    (folder / "component.yml").write_text(NGINX_RECIPE)
    cache = new_cache(tmp_path_factory.mktemp("store") / "cache", debs_dir)
    built = distrokit(cache, "pkg", "build", str(folder), timeout=900)
    assert built.returncode == 0, built.stderr
    return Store(cache), built.stdout.strip().splitlines()[-1]


def test_a_one_line_nginx_recipe_has_what_dpkg_would_have_configured(nginx_image: tuple[Store, str]) -> None:
    store, name = nginx_image
    tree = merged_image_tree(store, store.image(ImageRef.parse(name)), "nginx")
    for conffile in ("etc/nginx/nginx.conf", "etc/nginx/mime.types", "etc/nginx/sites-available/default"):
        assert tree.get(conffile) is not None, f"{conffile}: a conffile of nginx-common, a dependency"
    enabled = tree.get("etc/nginx/sites-enabled/default")
    assert enabled is not None and (enabled.kind, enabled.link) == (
        layers.SYMLINK,
        "/etc/nginx/sites-available/default",
    )
    page = tree.get("var/www/html/index.nginx-debian.html")
    assert page is not None and b"Welcome to nginx!" in page.read_bytes()
    passwd = tree.get("etc/passwd")
    assert passwd is not None and b"www-data:x:33:33:" in passwd.read_bytes()
    for folder in ("run", "var/log/nginx", "var/lib/nginx", "tmp"):
        entry = tree.get(folder)
        assert entry is not None and entry.kind == layers.DIR, folder
    assert tree.get("usr/sbin/nginx") is not None
    assert tree.get("usr/share/doc/libc6") is None  # still only what the service needs of the closure


# docs/components.md's redis recipe, as written there.
REDIS_RECIPE = """packages: [redis-server]
files:
  - {path: /var/lib/redis, directory: true, mode: "0750"}
  - {path: /run/redis, directory: true}
config:
  entrypoint: [redis-server, /etc/redis/redis.conf, --daemonize, "no", --logfile, "",
               --bind, 0.0.0.0, --protected-mode, "no"]
"""


def test_the_guide_s_redis_recipe_has_its_user_from_redis_tools_postinst(
    tmp_path: Path, nginx_image: tuple[Store, str]
) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "components.md").read_text()
    assert REDIS_RECIPE.replace("packages", "# components/redis/component.yml\npackages") in guide
    store, _ = nginx_image
    folder = tmp_path / "redis"
    folder.mkdir()
    (folder / "component.yml").write_text(REDIS_RECIPE)
    built = distrokit(store.root, "pkg", "build", str(folder), timeout=900)
    assert built.returncode == 0, built.stderr
    tree = merged_image_tree(store, store.image(ImageRef.parse(built.stdout.strip().splitlines()[-1])), "redis")
    passwd, group = tree.get("etc/passwd"), tree.get("etc/group")
    assert passwd is not None and b"redis:x:101:101::/nonexistent:/usr/sbin/nologin" in passwd.read_bytes()
    assert group is not None and b"redis:x:101:" in group.read_bytes()
    assert tree.get("etc/redis/redis.conf") is not None and tree.get("usr/bin/redis-server") is not None


def test_postinst_actions_never_go_through_a_link_of_the_image(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("host\n")
    (root / "etc" / "out").symlink_to(outside)  # an absolute link, as images have
    (root / "etc" / "page").write_text("page\n")
    maintainer.apply_actions(
        root,
        [
            maintainer.Action("copy", "etc/page", "etc/out/written"),
            maintainer.Action("copy", "etc/out/secret", "etc/leaked"),
            maintainer.Action("mkdir", "", "etc/out/made"),
            maintainer.Action("link", "/etc/page", "etc/out/linked"),
            maintainer.Action("copy", "etc/page", "etc/copied"),
        ],
    )
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not (root / "etc" / "leaked").exists()
    assert (root / "etc" / "copied").read_text() == "page\n"
