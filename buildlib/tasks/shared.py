"""A build cache shared through OCI registries: which task results to fetch and push, and what a failure means.

`--cache-from REPO` (repeatable, env DISTROKIT_CACHE_FROM) is asked, in order, for a result before a
task builds it; `--cache-to REPO` (env DISTROKIT_CACHE_TO) is given every result a task built here.
Shared: component images (the slowest tasks: .deb files unpacked and packed) and part segments (every
compressed piece of the root), keyed by the same keys the tasks use, so a result fetched is the result
that would have been built. Outputs are not shared: they are the segments joined, and cheap.

A registry that cannot be used (nothing answers, credentials refused, TLS) gives one warning and is
left alone for the rest of the build, which goes on locally; a missing tag is an ordinary miss; an
artifact that fails its digest checks gives a warning and the result is built here (and pushed again).
The bytes move through `remotecache`. With `--sign-by` every result pushed is signed (the key and the
signature store are checked once, before the build), so a `signedBy` policy accepts it on `--cache-from`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..debian import archive, recipes
from ..errors import BadInput
from ..fsutil import write_bytes_atomic, xxh_file
from ..outputs.initrd import seal_path
from ..spec.refs import ImageRef
from ..store import remotecache
from ..store.images import Store
from ..store.remotecache import ArtifactRejected, CacheMiss, CacheUnusable, Repository
from ..store.signing import Signer
from ..store.transport import Network

SEGMENT, COMPONENT, PIN = "segment", "component", "pin"


@dataclass
class SharedCache:
    """One build's shared caches and what it did with them (read by the CLI for its report)."""

    sources: tuple[Repository, ...] = ()
    targets: tuple[Repository, ...] = ()
    network: Network = field(default_factory=Network)
    on_warning: Callable[[str], None] | None = None
    signer: Signer | None = None  # signs every push
    fetched: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _unusable: set[Repository] = field(default_factory=set)
    _probed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_flags(
        cls,
        cache_from: Sequence[str] = (),
        cache_to: Sequence[str] = (),
        network: Network | None = None,
        env: Mapping[str, str] | None = None,
        on_warning: Callable[[str], None] | None = None,
        signer: Signer | None = None,
    ) -> SharedCache | None:
        """The caches the flags and DISTROKIT_CACHE_FROM / DISTROKIT_CACHE_TO name; None when there is none."""
        sources = remotecache.repositories(cache_from, remotecache.FROM_ENV, env)
        targets = remotecache.repositories(cache_to, remotecache.TO_ENV, env)
        if signer is not None and not targets:
            raise BadInput(
                f"build signs only what --cache-to pushes: give --cache-to REPOSITORY (or {remotecache.TO_ENV}) "
                "with --sign-by, or leave --sign-by out"
            )
        if not sources and not targets:
            return None
        return cls(sources, targets, network or Network.from_env(env), on_warning, signer)

    def check_signer(self, cache: Path) -> None:
        """Before the build: every --cache-to repository has a place for signatures, and the key signs."""
        if self.signer is None:
            return
        for repository in self.targets:
            remotecache.check_signer(Store(cache), repository, self.signer, self.network)

    # segments ---------------------------------------------------------------------------------
    def fetch_segment(self, store: Store, key: str, target: Path, task: str) -> bool:
        """Put the segment `key` at `target` from the first cache that has it; False when none has."""

        def fetch(repository: Repository) -> None:
            with store.tempdir("cache-fetch-") as folder:
                files = remotecache.fetch_files(store, repository, SEGMENT, key, self.network, folder)
                if set(files) != {SEGMENT}:
                    raise ArtifactRejected(f"it holds {sorted(files)}, not one segment")
                target.parent.mkdir(parents=True, exist_ok=True)
                files[SEGMENT].chmod(0o644)
                os.replace(files[SEGMENT], target)
                # sealed as a segment written here is: its bytes' key beside it (checked before each use)
                write_bytes_atomic(seal_path(target), xxh_file(target).encode())

        return self._fetch(SEGMENT, key, task, fetch)

    def push_segment(self, store: Store, key: str, path: Path, task: str) -> None:
        self._push(
            task, lambda r: remotecache.push_files(store, r, SEGMENT, key, {SEGMENT: path}, self.network, self.signer)
        )

    # component images -------------------------------------------------------------------------
    def fetch_component(self, store: Store, ref: ImageRef, key: str, arch: str, task: str) -> bool:
        """Copy the component image `key` into the store under `ref`; False when no cache has it."""

        def fetch(repository: Repository) -> None:
            remotecache.fetch_image(store, repository, COMPONENT, key, ref, self.network, arch)

        return self._fetch(COMPONENT, key, task, fetch)

    def push_component(self, store: Store, ref: ImageRef, key: str, task: str) -> None:
        self._push(task, lambda r: remotecache.push_image(store, ref, r, COMPONENT, key, self.network, self.signer))

    # package pins: a store without them would ask apt (seconds per recipe) and might pin newer .debs
    def fetch_pin(self, store: Store, recipe: recipes.Recipe) -> bool:
        """Fetch the recipe's .deb pins when the store has none: the same packages as the machine that built it."""
        target = archive.pin_path(store.root, recipe)
        if target.is_file():
            return False

        def fetch(repository: Repository) -> None:
            with store.tempdir("cache-fetch-") as folder:
                files = remotecache.fetch_files(store, repository, PIN, _pin_key(recipe), self.network, folder)
                if set(files) != {PIN}:
                    raise ArtifactRejected(f"it holds {sorted(files)}, not one pin file")
                json.loads(files[PIN].read_bytes())  # a pin that is no JSON is rejected, not stored
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(files[PIN], target)

        return self._fetch(PIN, _pin_key(recipe), f"pin:{recipe.name}", fetch)

    def push_pin(self, store: Store, recipe: recipes.Recipe, task: str) -> None:
        pin = {PIN: archive.pin_path(store.root, recipe)}
        key = _pin_key(recipe)
        self._push(task, lambda r: remotecache.push_files(store, r, PIN, key, pin, self.network, self.signer))

    # bookkeeping ------------------------------------------------------------------------------
    def _usable(self, repositories: Sequence[Repository]) -> Iterator[Repository]:
        for repository in repositories:
            with self._lock:
                first = repository.registry not in self._probed
                self._probed.add(repository.registry)
            if first:
                try:
                    remotecache.probe(repository)
                except CacheUnusable as exc:
                    self._give_up(repository, exc, whole_registry=True)
            if repository not in self._unusable:
                yield repository

    def _fetch(self, kind: str, key: str, task: str, fetch: Callable[[Repository], None]) -> bool:
        for repository in self._usable(self.sources):
            try:
                fetch(repository)
            except CacheMiss:
                continue
            except ArtifactRejected as exc:
                self._warn(f"cache {repository.name}: {kind}-{key} rejected ({exc}); building it here")
                continue
            except CacheUnusable as exc:
                self._give_up(repository, exc)
                continue
            if kind != PIN:  # a pin is no task result
                self._note(self.fetched, task)
            return True
        return False

    def _push(self, task: str, push: Callable[[Repository], None]) -> None:
        for repository in self._usable(self.targets):
            try:
                push(repository)
            except (CacheUnusable, CacheMiss, ArtifactRejected) as exc:
                self._give_up(repository, exc)
                continue
            self._note(self.pushed, task)

    def _give_up(self, repository: Repository, exc: Exception, whole_registry: bool = False) -> None:
        with self._lock:
            doomed = {r for r in (*self.sources, *self.targets) if r.registry == repository.registry}
            doomed = doomed if whole_registry else {repository}
            if doomed <= self._unusable:
                return
            self._unusable |= doomed
        self._warn(f"cache {repository.name} cannot be used ({exc}); building without it")

    def _note(self, into: list[str], task: str) -> None:
        with self._lock:
            into.append(task)

    def _warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)


def _pin_key(recipe: recipes.Recipe) -> str:
    return f"{recipe.name}-{recipe.key}"
