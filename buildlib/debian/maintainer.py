"""What dpkg would leave of a service's packages without running their maintainer scripts.

A component's packages are unpacked, never installed, so nothing of `dpkg --configure` happens: no
/etc/passwd entries for the users the scripts add, no links or copies the postinst makes, no /run.
A service image (one with an entrypoint or a command) gets, from the .debs alone:

- the conffiles and the empty folders (/var/log/nginx, /etc/nginx/sites-enabled) of every package of
  the closure, since a named package's configuration often lives in a dependency (nginx-common);
- the folders every running Debian system has (/run, /tmp, /var/log, /var/lib, ...);
- /etc/passwd and /etc/group with Debian's standard accounts (base-passwd's, e.g. www-data) and the
  users and groups the scripts create with `adduser`, `useradd`, `addgroup` or `groupadd`;
- what the postinst does with plain `ln -s`, `cp` and `mkdir -p` lines on literal absolute paths
  (nginx-common's sites-enabled/default and Debian's default page). Nothing else of a script is
  guessed at: a line with a command substitution, a glob or an unknown variable is left alone.
"""

from __future__ import annotations

import io
import posixpath
import re
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path

# The folders of a Debian system that services write into, with their modes.
BASE_FOLDERS = (
    ("run", 0o755),
    ("tmp", 0o1777),
    ("var/cache", 0o755),
    ("var/lib", 0o755),
    ("var/log", 0o755),
    ("var/spool", 0o755),
    ("var/tmp", 0o1777),
)

# Debian's base-passwd (passwd.master, group.master): the static accounts every Debian system has.
STANDARD_USERS = (
    ("root", 0, 0, "root", "/root", "/bin/sh"),
    ("daemon", 1, 1, "daemon", "/usr/sbin", "/usr/sbin/nologin"),
    ("bin", 2, 2, "bin", "/bin", "/usr/sbin/nologin"),
    ("sys", 3, 3, "sys", "/dev", "/usr/sbin/nologin"),
    ("sync", 4, 65534, "sync", "/bin", "/bin/sync"),
    ("games", 5, 60, "games", "/usr/games", "/usr/sbin/nologin"),
    ("man", 6, 12, "man", "/var/cache/man", "/usr/sbin/nologin"),
    ("lp", 7, 7, "lp", "/var/spool/lpd", "/usr/sbin/nologin"),
    ("mail", 8, 8, "mail", "/var/mail", "/usr/sbin/nologin"),
    ("news", 9, 9, "news", "/var/spool/news", "/usr/sbin/nologin"),
    ("uucp", 10, 10, "uucp", "/var/spool/uucp", "/usr/sbin/nologin"),
    ("proxy", 13, 13, "proxy", "/bin", "/usr/sbin/nologin"),
    ("www-data", 33, 33, "www-data", "/var/www", "/usr/sbin/nologin"),
    ("backup", 34, 34, "backup", "/var/backups", "/usr/sbin/nologin"),
    ("list", 38, 38, "Mailing List Manager", "/var/list", "/usr/sbin/nologin"),
    ("irc", 39, 39, "ircd", "/run/ircd", "/usr/sbin/nologin"),
    ("_apt", 42, 65534, "", "/nonexistent", "/usr/sbin/nologin"),
    ("nobody", 65534, 65534, "nobody", "/nonexistent", "/usr/sbin/nologin"),
)
STANDARD_GROUPS = (
    ("root", 0), ("daemon", 1), ("bin", 2), ("sys", 3), ("adm", 4), ("tty", 5), ("disk", 6), ("lp", 7),
    ("mail", 8), ("news", 9), ("uucp", 10), ("man", 12), ("proxy", 13), ("kmem", 15), ("dialout", 20),
    ("fax", 21), ("voice", 22), ("cdrom", 24), ("floppy", 25), ("tape", 26), ("sudo", 27), ("audio", 29),
    ("dip", 30), ("www-data", 33), ("backup", 34), ("operator", 37), ("list", 38), ("irc", 39), ("src", 40),
    ("shadow", 42), ("utmp", 43), ("video", 44), ("sasl", 45), ("plugdev", 46), ("staff", 50), ("games", 60),
    ("users", 100), ("nogroup", 65534),
)  # fmt: skip
FIRST_SYSTEM_ID = 100  # adduser --system's range starts here (Debian's adduser.conf: FIRST_SYSTEM_UID)


@dataclass(frozen=True)
class Control:
    """What a .deb's control archive says about configuring it."""

    conffiles: tuple[str, ...]  # root-relative paths
    postinst: str


@dataclass(frozen=True)
class Accounts:
    """The users and groups packages' maintainer scripts add."""

    users: tuple[str, ...]  # the users the scripts add, in the order met
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Action:
    """One postinst line that can be done at build time: `ln -s`, `cp` or `mkdir -p` on literal paths."""

    verb: str  # "link", "copy" or "mkdir"
    source: str  # root-relative; empty for mkdir
    target: str


def read_control(deb: Path) -> Control:
    """The .deb's conffiles and postinst, from its control archive (`dpkg-deb --ctrl-tarfile`)."""
    import subprocess

    data = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
    members: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            name = posixpath.basename(member.name)
            handle = archive.extractfile(member) if member.isfile() and name in ("conffiles", "postinst") else None
            if handle is not None:
                members[name] = handle.read().decode(errors="replace")
    conffiles = tuple(
        line.split()[-1].lstrip("/") for line in members.get("conffiles", "").splitlines() if line.strip()
    )
    return Control(conffiles=conffiles, postinst=members.get("postinst", ""))


def _logical_lines(script: str) -> list[str]:
    """The script's lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", script)
    return [line.split(" #", 1)[0].strip() for line in joined.splitlines() if not line.strip().startswith("#")]


def _variables(lines: list[str]) -> dict[str, str]:
    """Plain `NAME=value` assignments (no substitution in the value): redis's `USER=redis`."""
    found: dict[str, str] = {}
    for line in lines:
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(\"?)([A-Za-z0-9_./-]*)\2", line)
        if match:
            found.setdefault(match.group(1), match.group(3))
    return found


def _words(line: str, variables: dict[str, str]) -> list[str] | None:
    """The line's words with known variables put in; None when anything is left to the shell."""
    expanded = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), "\0"), line)
    line = re.split(r"\s*(?:\|\||&&|;|>|2>|\|)\s*", expanded, maxsplit=1)[0]
    if "\0" in line or any(mark in line for mark in ("`", "$(", "*", "?", "[")):
        return None
    try:
        return shlex.split(line)
    except ValueError:
        return None


def _commands(script: str) -> list[list[str]]:
    lines = _logical_lines(script)
    variables = _variables(lines)
    words = (_words(re.sub(r"^(?:then|else|do)\s+", "", line), variables) for line in lines)
    return [command for command in words if command]


def declared_accounts(scripts: list[str]) -> Accounts:
    """The users and groups the scripts' `adduser`/`useradd`/`addgroup`/`groupadd` calls create.
    `adduser --system --group NAME` and `useradd NAME` (Debian's USERGROUPS_ENAB) make a group of the
    same name too; `adduser USER GROUP` and `addgroup USER GROUP` only add a member, so they add nothing."""
    users: list[str] = []
    groups: list[str] = []
    for script in scripts:
        for command in _commands(script):
            made_users, made_groups = _created(command[0].rsplit("/", 1)[-1], command[1:])
            users += made_users
            groups += made_groups
    return Accounts(users=tuple(dict.fromkeys(users)), groups=tuple(dict.fromkeys(groups)))


def _created(tool: str, arguments: list[str]) -> tuple[list[str], list[str]]:
    names = _plain_arguments(arguments)
    if tool not in ("adduser", "useradd", "addgroup", "groupadd") or not names:
        return [], []
    if tool in ("addgroup", "groupadd") or (
        tool == "adduser" and "--group" in arguments and "--system" not in arguments
    ):
        return ([], [names[0]]) if len(names) == 1 else ([], [])
    if tool == "useradd":
        own_group = not {"-g", "--gid", "-N", "--no-user-group"} & set(arguments)
        return [names[-1]], [names[-1]] if own_group else []
    if len(names) == 2:
        return [], []
    return [names[0]], [names[0]] if "--group" in arguments else []


# Options of adduser/useradd/addgroup/groupadd that take a value (so the value is not a name).
_VALUED = {
    "--home", "--shell", "--uid", "--gid", "--ingroup", "--gecos", "--comment", "--firstuid", "--lastuid",
    "--firstgid", "--lastgid", "--conf", "--add_extra_groups", "--key", "-d", "-s", "-u", "-g", "-G", "-c",
    "-k", "-K", "-e", "-f", "-p", "--password", "--groups", "--expiredate", "--inactive", "--skel",
}  # fmt: skip


def _plain_arguments(arguments: list[str]) -> list[str]:
    names, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in _VALUED:
            skip = True
        elif not argument.startswith("-") and re.fullmatch(r"[a-z_][a-z0-9_.-]*\$?", argument):
            names.append(argument)
    return names


def postinst_actions(script: str) -> list[Action]:
    """The `ln -s SRC DST`, `cp SRC DST` and `mkdir -p DIR` lines on literal absolute paths."""
    actions = []
    for command in _commands(script):
        verb, arguments = command[0], command[1:]
        if verb == "ln" and len(arguments) == 3 and arguments[0] in ("-s", "-sf"):
            source, target = arguments[1], arguments[2]
            if source.startswith("/") and target.startswith("/"):
                actions.append(Action("link", source, target.lstrip("/")))
        elif verb == "cp" and len(arguments) == 2 and all(a.startswith("/") for a in arguments):
            actions.append(Action("copy", arguments[0].lstrip("/"), arguments[1].lstrip("/")))
        elif verb == "mkdir" and len(arguments) == 2 and arguments[0] == "-p" and arguments[1].startswith("/"):
            actions.append(Action("mkdir", "", arguments[1].lstrip("/")))
    return actions


def _inside(root: Path, rel: str) -> Path | None:
    """`root/rel` when it stays inside the root: no `..`, and no link among its folders (an image's
    absolute link, e.g. `etc/x -> /etc`, would otherwise lead a write or a read to the host)."""
    normal = posixpath.normpath(rel)
    if normal.startswith("..") or normal in (".", ""):
        return None
    folder = root
    for part in normal.split("/")[:-1]:
        folder = folder / part
        if folder.is_symlink():
            return None
    return root / normal


def apply_actions(root: Path, actions: list[Action]) -> None:
    """Do what each action does, in order, when it can be done (an existing target is left as it is, as
    the scripts themselves test first); a copy whose source the image does not hold is skipped."""
    for action in actions:
        target = _inside(root, action.target)
        if target is None or target.exists() or target.is_symlink():
            continue
        if action.verb == "mkdir":
            make_folders(root, action.target)
            continue
        if not target.parent.is_dir():
            continue
        if action.verb == "link":
            target.symlink_to(action.source)
        else:
            source = _inside(root, action.source)
            if source is not None and source.is_file() and not source.is_symlink():
                target.write_bytes(source.read_bytes())
                target.chmod(0o644)


def make_folders(root: Path, rel: str, mode: int = 0o755) -> None:
    """`root/rel` and its missing parents, each with `mode` (the image records modes; umask must not)."""
    folder = _inside(root, rel)
    missing = []
    while folder is not None and not folder.exists() and not folder.is_symlink() and folder != root:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        path.chmod(mode)


def copy_sources(actions: list[Action]) -> list[str]:
    """The files the actions read: kept with the image even when their package is only a dependency."""
    return [action.source for action in actions if action.verb == "copy"]


def write_accounts(root: Path, accounts: Accounts) -> None:
    """/etc/passwd and /etc/group: base-passwd's accounts, then the declared ones with the next free
    system ids (in the order the scripts name them, so the same .debs give the same ids). An image
    whose packages ship their own files keeps them."""
    passwd, group = root / "etc" / "passwd", root / "etc" / "group"
    if (root / "etc").is_symlink() or any(path.exists() or path.is_symlink() for path in (passwd, group)):
        return
    make_folders(root, "etc")
    group_ids = dict(STANDARD_GROUPS)
    user_ids = {user[0]: user[1] for user in STANDARD_USERS}
    taken = set(group_ids.values()) | set(user_ids.values())
    free = (number for number in range(FIRST_SYSTEM_ID, 1000) if number not in taken)
    for name in dict.fromkeys(accounts.users + accounts.groups):
        if name in user_ids or (name in group_ids and name not in accounts.users):
            continue
        number = group_ids.get(name) or next(free)
        if name in accounts.users:
            user_ids[name] = number
        if name in accounts.groups:
            group_ids[name] = number
    lines = [f"{n}:x:{uid}:{gid}:{gecos}:{home}:{shell}" for n, uid, gid, gecos, home, shell in STANDARD_USERS]
    for name in accounts.users:
        if not any(line.startswith(f"{name}:") for line in lines):
            gid = group_ids.get(name, 65534)  # adduser --system without --group: nogroup
            lines.append(f"{name}:x:{user_ids[name]}:{gid}::/nonexistent:/usr/sbin/nologin")
    passwd.write_text("\n".join(lines) + "\n")
    group.write_text("".join(f"{name}:x:{gid}:\n" for name, gid in sorted(group_ids.items(), key=lambda i: i[1])))
    passwd.chmod(0o644)
    group.chmod(0o644)
