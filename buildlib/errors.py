"""The one small exception hierarchy of distrokit.

Every message tells the user what to do next. The CLI turns an error into one line and
its `exit_code`: 2 for bad input (a spec, a reference, an argument), 1 for a build that failed.
"""

from __future__ import annotations


class DistrokitError(Exception):
    """Base of every error distrokit raises on purpose."""

    exit_code = 1


class BadInput(DistrokitError):
    """The user gave something distrokit cannot use: fix the input and run again."""

    exit_code = 2


class SpecError(BadInput):
    """A spec file is not valid YAML or does not follow the schema."""


class BadReference(BadInput):
    """An image reference cannot be parsed."""


class ComponentError(BadInput):
    """A component recipe is missing or malformed."""


class ImageNotFound(BadInput):
    """An image is neither in the store nor in any registry that was asked."""


class BadImage(BadInput):
    """An image's manifest or config is malformed: the message names the image and the field."""


class LockMismatch(BadInput):
    """`--locked`: the spec needs what its lock file does not pin (or pins differently)."""


class BuildError(DistrokitError):
    """A build step failed although its input was valid."""


class TransportError(BuildError):
    """skopeo could not move an image (network, registry, authentication)."""


class ArchiveDrift(BuildError):
    """A pinned Debian package the archive no longer serves, or serves with other bytes."""


class StoreError(BuildError):
    """The content-addressed store holds something that does not match its key."""


class NoSpace(StoreError):
    """The disk filled up while writing the store or an output; nothing half-written was kept."""


class HostileLayer(BuildError):
    """A layer tries to write outside the root or otherwise cannot be trusted."""


class BootError(DistrokitError):
    """A guest did not boot or did not power off cleanly."""


class AuditError(BuildError):
    """An up-to-date task whose result, computed again, gives other bytes: its key misses an input."""
