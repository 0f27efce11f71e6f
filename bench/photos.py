"""Real-looking JPEGs for load tests: the repository's example product photo, scaled to a station
crop (~1 MP) or a phone photo (12 MP), with sensor grain and a vignette so the JPEG is as large and
as hard to decode as a camera's (a flat upscale would compress to almost nothing)."""

from __future__ import annotations

import io
import struct
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

EXAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "examples" / "phone_cracked.jpg"
SIZES = {"1MP": (1280, 960), "12MP": (4000, 3000)}


def camera_jpeg(width: int, height: int, seed: int = 0, quality: int = 92) -> bytes:
    base = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    scene = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    y, x = np.ogrid[-1:1:complex(0, height), -1:1:complex(0, width)]
    vignette = 1.0 - 0.25 * (x**2 + y**2)
    grain = np.random.default_rng(seed).normal(0, 4.0, (height, width, 1)).astype(np.float32)
    rgb = np.clip(scene * vignette[:, :, None] + grain, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@lru_cache(maxsize=4)
def _size_jpeg(size: str) -> bytes:
    width, height = SIZES[size]
    return camera_jpeg(width, height)


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same picture with a JPEG comment segment after the start marker: other bytes (the
    photo store deduplicates equal ones, real traffic differs), the same decoding work."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def photo_set(size: str, count: int, mark: bytes = b"") -> list[bytes]:
    """`count` distinct photos of one size; `mark` (bench.loadgen.UNIQUE_MARK) lets the load
    generator make each request's photos unique."""
    return [with_comment(_size_jpeg(size), f"bench {index} {mark.decode()}") for index in range(count)]
