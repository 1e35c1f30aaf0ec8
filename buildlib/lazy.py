"""Modules imported on first use, so a command loads only what it runs.

`distrokit --help` or `validate` should not pay for doit, rich or the image store. A command module
names what it uses as usual for the type checker and through `lazy_module` at run time:

    if TYPE_CHECKING:
        from .. import tasks
    else:
        tasks = lazy_module("buildlib.tasks")
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _Deferred(ModuleType):
    """Stands for a module until an attribute is read; then imports it (parents included) and reads there."""

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self.__name__), attr)
        setattr(self, attr, value)
        return value


def lazy_module(name: str) -> ModuleType:
    return _Deferred(name)
