"""Writing a file so that a reader sees the old one or the new one, never half of either.

The content goes to a temporary file beside the target, which is then renamed onto it (atomic on
POSIX within one folder). The temporary's name is unique to the writer: two processes writing the
same target at once (two `dataset split` runs, `calibrate` and `anomaly fit` on one bundle's card)
each rename a whole file of their own, and the last rename wins, where a shared temporary name let
one writer rename the other's half-written file, or fail because it had already been renamed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def partial_path(target: Path) -> Path:
    """A name beside `target` no other writer uses. It is opened the usual way, so the file gets
    the umask's permissions (a bundle's files must stay readable by the service's user)."""
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


@contextlib.contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `target`, on any failure it is
    removed and `target` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(target)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
