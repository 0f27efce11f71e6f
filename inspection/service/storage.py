"""Photos stored content-addressed on disk: <root>/ab/cdef….jpg where abcdef… is the sha256 of
the bytes as uploaded. The same photo sent twice is stored once; a write goes to a temporary
file first and is renamed into place, so a reader never sees half a photo."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "HEIF": ".heic",
            "MPO": ".jpg", "BMP": ".bmp", "GIF": ".gif"}


@dataclass(frozen=True)
class StoredPhoto:
    sha256: str
    path: str  # relative to the store's root, with forward slashes
    size_bytes: int
    created: bool  # False when the same bytes were already stored


class PhotoStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def put(self, data: bytes, image_format: str = "") -> StoredPhoto:
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{digest[:2]}/{digest[2:]}{SUFFIXES.get(image_format.upper(), '.bin')}"
        target = self.root / relative
        if target.exists():
            return StoredPhoto(digest, relative, len(data), created=False)
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
        return StoredPhoto(digest, relative, len(data), created=True)

    def remove(self, relative: str) -> None:
        self.path(relative).unlink(missing_ok=True)

    def files(self) -> list[str]:
        """Every stored photo, relative to the root (temporary files excluded)."""
        if not self.root.is_dir():
            return []
        return sorted(f"{path.parent.name}/{path.name}" for path in self.root.glob("*/*")
                      if path.is_file() and not path.name.startswith(".partial-"))

    def modified(self, relative: str) -> datetime:
        return datetime.fromtimestamp(self.path(relative).stat().st_mtime, UTC)

    def clean_partials(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files a killed process left behind (a live writer's are younger)."""
        if not self.root.is_dir():
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
        candidate = (self.root / relative).resolve()
        if self.root.resolve() not in candidate.parents:
            msg = f"photo path {relative!r} is outside the store"
            raise ValueError(msg)
        return candidate

    def read(self, relative: str) -> bytes:
        return self.path(relative).read_bytes()
