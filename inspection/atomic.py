"""Writing a file so that a reader sees the old one or the new one, never half of either.

The content goes to a temporary file beside the target, which is then renamed onto it (atomic on
POSIX within one folder). The temporary's name is unique to the writer: two processes writing the
same target at once (two `dataset split` runs, `calibrate` and `anomaly fit` on one bundle's card)
each rename a whole file of their own, and the last rename wins, where a shared temporary name let
one writer rename the other's half-written file, or fail because it had already been renamed.
The temporary is flushed to the disk before the rename and the folder after it, so a power cut
leaves the old file or the whole new one, never a renamed empty file (a bundle's card, a seal).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

# A temporary untouched this long is a killed writer's: a live one's modification time moves with
# each buffer it writes (a scored backlog's JSONL stays open for the whole run, but is written to
# every few items). The next writer of the same target removes it.
STALE_AFTER_S = 3600.0


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
    remove_stale_partials(target)
    temporary = partial_path(target)
    try:
        yield temporary
        flush_to_disk(temporary)
        os.replace(temporary, target)
        flush_to_disk(target.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def flush_to_disk(path: Path) -> None:
    """fsync a file, or a folder (its entries: a rename is durable once its folder is flushed)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale_partials(target: Path) -> None:
    """Each writer's temporary has its own name, so one killed mid-write (kill -9, power loss) is
    never overwritten by the next: remove those of this target older than STALE_AFTER_S."""
    cutoff = time.time() - STALE_AFTER_S
    for partial in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
        with contextlib.suppress(FileNotFoundError):  # another writer removed it first
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
