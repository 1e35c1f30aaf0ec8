"""What every command shares: the consoles, the store path, sizes, tables and the transfer flags."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..release import lockpath
from ..store.transport import Network, RetryPolicy
from ..store.trust import Trust

if TYPE_CHECKING:
    from rich.console import Console

    from ..release.lock import Lock
    from ..store.signing import Signer

Subparsers = argparse._SubParsersAction  # the type `register` functions receive

DEFAULT_CACHE = "cache"
_EMOJI_CODE = re.compile(r":[a-z0-9_+-]+:")  # rich would replace these: leave such text to rich


class _LazyConsole:
    """rich's Console, imported on first use: importing rich costs more than a whole no-change build."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)

    def print(self, *objects: Any, markup: bool | None = None, **options: Any) -> None:
        """Plain text goes out as it is, without loading rich (a tenth of a second of every command)."""
        text = objects[0] if len(objects) == 1 else None
        plain = isinstance(text, str) and (markup is False or "[" not in text) and not _EMOJI_CODE.search(text)
        if plain and not options and self._console is None:
            stream = sys.stderr if self._options.get("stderr") else sys.stdout
            stream.write(f"{text}\n")
            stream.flush()
            return
        self.__getattr__("print")(*objects, markup=markup, **options)


err_console = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))
out_console = cast("Console", _LazyConsole(highlight=False))


def store_root(args: argparse.Namespace) -> Path:
    return Path(args.cache or os.environ.get("DISTROKIT_CACHE") or DEFAULT_CACHE).resolve()


def component_root(args: argparse.Namespace) -> Path:
    """The project's component folder: --components, else DISTROKIT_COMPONENTS, else ./components. Its
    recipes win over the built-in ones of the same name."""
    given = getattr(args, "components", None) or os.environ.get("DISTROKIT_COMPONENTS", "components")
    return Path(given).resolve()


def read_lock(option: str | None, specs: Sequence[Path]) -> tuple[Lock | None, str]:
    """The lock a build follows: --lock FILE, else SPEC.lock beside the first spec when there is one."""
    path = Path(option) if option else lockpath.path_for(specs[0])
    if option is None and not path.is_file():
        return None, ""
    from ..release import lock

    return lock.read(path), str(path)


def human_size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def network_options(args: argparse.Namespace) -> Network:
    retry = RetryPolicy(attempts=args.retries, timeout=args.timeout, stall=args.stall)
    trust = Trust.from_env(policy=getattr(args, "policy", None), registries_d=getattr(args, "registries_d", None))
    return Network.from_env(mirrors=args.mirror or (), insecure=args.insecure_registry or (), retry=retry, trust=trust)


def signing_flags(command: argparse.ArgumentParser, what: str = "what is pushed") -> None:
    command.add_argument(
        "--sign-by",
        metavar="FINGERPRINT",
        help=f"sign {what} with this GPG key (from GNUPGHOME); the signature goes where --registries-d says",
    )
    command.add_argument(
        "--sign-by-sigstore",
        metavar="KEYFILE",
        help="sign with a sigstore private key (needs a skopeo built with sigstore; Debian 12's is not)",
    )
    command.add_argument("--sign-passphrase-file", metavar="FILE", help="the signing key's passphrase")


def signer_options(args: argparse.Namespace) -> Signer | None:
    from ..store.signing import Signer

    return Signer.from_options(args.sign_by, args.sign_by_sigstore, args.sign_passphrase_file)


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()) -> None:
    """A rich table on a terminal; tab-separated lines with a header otherwise (for scripts)."""
    if not out_console.is_terminal:
        for row in [list(columns), *rows]:
            print("\t".join(row))
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)


def layer_limit_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--max-layer-size",
        metavar="SIZE",
        help="most uncompressed bytes one layer may hold, e.g. 2G (env DISTROKIT_MAX_LAYER_SIZE, default 16G)",
    )


def apply_layer_limit(args: argparse.Namespace) -> None:
    """`--max-layer-size` for this process: the layer indexer reads it where every layer is read."""
    if args.max_layer_size:
        from ..fsutil import parse_size
        from ..rootfs.layers import MAX_LAYER_SIZE_ENV

        parse_size(args.max_layer_size)  # a nonsense size is bad input before anything starts
        os.environ[MAX_LAYER_SIZE_ENV] = args.max_layer_size


def transfer_flags(command: argparse.ArgumentParser) -> None:
    default = RetryPolicy()
    command.add_argument(
        "--mirror",
        action="append",
        default=argparse.SUPPRESS,  # one given before the subcommand stays unless this one is given
        help="[REGISTRY=]URL to pull REGISTRY's images from (all registries without REGISTRY=); repeatable; "
        "env DISTROKIT_MIRRORS (spaces or commas), flags win",
    )
    command.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST",
        help="allow plain http and unverified TLS for HOST (loopback always is); env DISTROKIT_INSECURE_REGISTRIES",
    )
    command.add_argument("--retries", type=int, default=default.attempts, help="attempts in all per image")
    command.add_argument("--timeout", type=float, default=default.timeout, help="seconds per attempt at most")
    command.add_argument(
        "--stall", type=float, default=default.stall, help="seconds without a new byte before an attempt is retried"
    )
    command.add_argument("-q", "--quiet", action="store_true", help="no progress, only errors and warnings")
    command.add_argument("--policy", metavar="FILE", default=argparse.SUPPRESS, help="as before the subcommand")
    command.add_argument("--registries-d", metavar="DIR", default=argparse.SUPPRESS, help="as before the subcommand")


def show_console(chunk: bytes) -> None:
    """The guest's console bytes on stdout, as they come (not through rich: they are the guest's own)."""
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
