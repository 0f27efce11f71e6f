"""Photos stored content-addressed: <root>/ab/cdef….jpg where abcdef… is the sha256 of the bytes
as uploaded. The same photo sent twice is stored once, and a reader never sees half a photo.

The root is a folder (local or shared, e.g. NFS: every replica of the service mounts it) or an
fsspec URL (`s3://bucket/photos`, `gs://…`, `memory://…`) that every replica reaches. A local
write goes to a temporary file renamed into place; an object store's PUT is already all or
nothing. Credentials and endpoints come from the object store's own environment
(`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, …), never from this service's settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "HEIF": ".heic",
            "MPO": ".jpg", "BMP": ".bmp", "GIF": ".gif"}


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str
    path: str  # relative to the store's root, with forward slashes
    size_bytes: int
    created: bool  # False when the same bytes were already stored


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and "://" in location


class PhotoStore:
    def __init__(self, root: str | Path):
        self.url = str(root).rstrip("/") if is_url(root) else None
        self.root = Path(root) if self.url is None else None
        self._fs: Any = None
        if self.url is not None:
            import fsspec  # only object stores need it

            # No listings cache: other replicas add photos, and a cached listing would hide them.
            self._fs, self._key_root = fsspec.core.url_to_fs(self.url, use_listings_cache=False)

    def put(self, data: bytes, image_format: str = "") -> StoredPhoto:
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{digest[:2]}/{digest[2:]}{SUFFIXES.get(image_format.upper(), '.bin')}"
        if self.exists(relative):
            return StoredPhoto(digest, relative, len(data), created=False)
        if self._fs is not None:
            self._fs.pipe_file(self._key(relative), data)
        else:
            _write_atomic(self.path(relative), data)
        return StoredPhoto(digest, relative, len(data), created=True)

    def exists(self, relative: str) -> bool:
        if self._fs is not None:
            return bool(self._fs.exists(self._key(relative)))
        return self.path(relative).is_file()

    def read(self, relative: str) -> bytes:
        if self._fs is not None:
            return bytes(self._fs.cat_file(self._key(relative)))
        return self.path(relative).read_bytes()

    def local_path(self, relative: str) -> Path | None:
        """The file on this machine, or None in an object store (stream `read()` instead)."""
        return None if self._fs is not None else self.path(relative)

    def location(self, relative: str) -> str:
        """Where another process (a re-scoring worker) reads the photo: a path or a URL."""
        if self.url is not None:
            return f"{self.url}/{_checked(relative)}"
        return str(self.path(relative))

    def remove(self, relative: str) -> None:
        if self._fs is not None:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(self._key(relative))
            return
        self.path(relative).unlink(missing_ok=True)

    def files(self) -> list[str]:
        """Every stored photo, relative to the root (temporary files excluded)."""
        if self._fs is not None:
            prefix = self._key_root.rstrip("/") + "/"
            return sorted(key[len(prefix):] for key in self._fs.glob(prefix + "*/*"))
        if self.root is None or not self.root.is_dir():
            return []
        return sorted(f"{path.parent.name}/{path.name}" for path in self.root.glob("*/*")
                      if path.is_file() and not path.name.startswith(".partial-"))

    def modified(self, relative: str) -> datetime:
        if self._fs is not None:
            moment = self._fs.modified(self._key(relative))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return datetime.fromtimestamp(self.path(relative).stat().st_mtime, UTC)

    def clean_partials(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files a killed process left behind (a live writer's are younger).
        An object store has none: a PUT is all or nothing."""
        if self.root is None or not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for partial in self.root.glob("*/.partial-*"):
            with contextlib.suppress(FileNotFoundError):
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
                    removed += 1
        return removed

    def path(self, relative: str) -> Path:
        """Absolute path of a stored photo; refuses anything that escapes the root."""
        if self.root is None:
            msg = f"photos in {self.url} are objects, not files; read them with read()"
            raise ValueError(msg)
        candidate = (self.root / relative).resolve()
        if self.root.resolve() not in candidate.parents:
            msg = f"photo path {relative!r} is outside the store"
            raise ValueError(msg)
        return candidate

    def _key(self, relative: str) -> str:
        return f"{self._key_root.rstrip('/')}/{_checked(relative)}"


def _checked(relative: str) -> str:
    normal = posixpath.normpath(relative)
    if normal.startswith(("/", "..")) or normal == ".":
        msg = f"photo path {relative!r} is outside the store"
        raise ValueError(msg)
    return normal


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)  # atomic on POSIX: all or nothing
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
