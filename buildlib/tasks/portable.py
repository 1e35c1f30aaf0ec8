"""A store that travels: doit's task state names files inside the store relative to it.

doit keys a task's saved file states by path, and a store's tasks name files in the store
(image records, segment pointers). Saved as absolute paths, a store restored by CI to another
folder, or copied to another runner, would look changed everywhere and rebuild every part. This
codec writes every path under the store root as `$DISTROKIT_STORE/...` in doit's database and
reads it back under wherever the store is now; paths outside the store (spec sources, the output
folder) are kept as they are. File states are content hashes (see keys.XXHashChecker), so new
modification times from the copy cost one hash per file, not a rebuild.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from doit.dependency import JSONCodec

TOKEN = "$DISTROKIT_STORE/"


@cache
def store_codec(root: Path) -> type[JSONCodec]:
    """doit's `codec_cls` for the store at `root` (one class per root, so doit can construct it bare)."""
    here = json.dumps(str(Path(root)) + "/")[1:-1]  # as the path appears inside JSON text
    token = json.dumps(TOKEN)[1:-1]

    class StoreRelativeCodec(JSONCodec):  # type: ignore[misc]
        def encode(self, data: Any) -> str:
            return str(super().encode(data)).replace(f'"{here}', f'"{token}')

        def decode(self, data: str) -> Any:
            return super().decode(data.replace(f'"{token}', f'"{here}'))

    StoreRelativeCodec.__qualname__ = StoreRelativeCodec.__name__ = f"StoreRelativeCodec[{root}]"
    return StoreRelativeCodec
