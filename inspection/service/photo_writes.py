"""Write an item's photos to the store while the model looks at them.

Storing a photo is I/O (hash, write, fsync: 4-7 ms a 1 MP photo, ~45 ms for four on a busy
disk, measured in BENCHMARKS.md); scoring it is CPU. Started together, the photos are durable by
the time the answer is ready and the request pays for the longer of the two, not their sum.
If scoring fails (a damaged photo is a 422), the photos this request newly wrote are removed:
nothing of a refused request stays on disk.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from inspection.pipeline import Upload
from inspection.service.storage import PhotoStore, StoredPhoto

# I/O threads, shared by all requests of the process: fsyncs wait on the disk, not the CPU.
_WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="photo-write")


def _format(data: bytes) -> str:
    try:
        return Image.open(io.BytesIO(data)).format or ""  # the header only; no decoding
    except Exception:  # noqa: BLE001 - an unreadable photo is stored as .bin; scoring refuses it
        return ""


def _write_all(store: PhotoStore, uploads: Sequence[Upload]) -> list[StoredPhoto]:
    return [store.put(upload.data, _format(upload.data)) for upload in uploads]


def start_writing(store: PhotoStore, uploads: Sequence[Upload]) -> Future[list[StoredPhoto]]:
    return _WRITERS.submit(_write_all, store, uploads)


def discard(store: PhotoStore, writing: Future[list[StoredPhoto]]) -> None:
    """After a refused request: remove the photos it created (not ones stored before it)."""
    try:
        stored = writing.result()
    except OSError:
        return
    for photo in stored:
        if photo.created:
            store.path(photo.path).unlink(missing_ok=True)
