"""Decode a photo, whatever the camera sent, into an upright 8-bit RGB array.

Phones send 12 MP JPEGs rotated by EXIF, PNGs with alpha, 16-bit or grey scans, CMYK from print
workflows and HEIC from iPhones. The model sees a few hundred pixels a side, so a large JPEG is
decoded at 1/2, 1/4 or 1/8 scale straight from its DCT coefficients (PIL's draft mode): on a
2-core machine a 12 MP JPEG takes ~82 ms in full and ~14 ms at 1/8. The pixel count is checked
from the header, before any decoding, so a decompression bomb costs nothing.

PNG, TIFF, WebP and the rest have no reduced decode: they are decoded in full, so they get a
tighter pixel limit (`max_full_pixels`), and are shrunk by an integer factor (`Image.reduce`,
in their own mode, before any RGB conversion) to the same size a JPEG would reach, so a request
only ever holds small arrays. `decoded_pixels` is what a photo costs to decode; the service
bounds its sum per request.
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
# Formats decoded in full: 24 MP covers a 6000 x 4000 camera frame; an 8000 x 8000 1-bit PNG of
# 17 KB took 3.8 s and 200 MB to decode in full.
DEFAULT_MAX_FULL_PIXELS = 24_000_000
REDUCED_DECODE = {"JPEG", "MPO"}  # decoded at 1/2, 1/4 or 1/8 scale from the DCT (draft mode)
MAX_DRAFT_FACTOR = 8
REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "I", "F"}  # Image.reduce works in these directly
Image.MAX_IMAGE_PIXELS = None  # we enforce our own limit, with a clear message, from the header


@dataclass(frozen=True)
class DecodedPhoto:
    rgb: np.ndarray  # H x W x 3 uint8, upright
    original_size: tuple[int, int]  # (width, height) as stored, before orientation and draft
    format: str


def reduction_factor(width: int, height: int, min_side: int, most: int = 1 << 30) -> int:
    """The largest power of two (at most `most`) that keeps the shorter side >= min_side."""
    factor = 1
    while min_side and factor * 2 <= most and min(width, height) // (factor * 2) >= min_side:
        factor *= 2
    return factor


def decoded_pixels(width: int, height: int, image_format: str, min_side: int) -> int:
    """What decoding costs, in pixels: a JPEG at its draft scale, anything else in full."""
    if image_format.upper() in REDUCED_DECODE:
        factor = reduction_factor(width, height, min_side, MAX_DRAFT_FACTOR)
        return (width // factor) * (height // factor)
    return width * height


def pixel_limit(image_format: str, max_pixels: int, max_full_pixels: int) -> int:
    return max_pixels if image_format.upper() in REDUCED_DECODE else min(max_pixels, max_full_pixels)


def open_image(data: bytes, where: str = "photo") -> Image.Image:
    """The image's header (nothing decoded yet), or an InputError saying why it is not one."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InputError("not an image this service can read (JPEG, PNG, WebP, TIFF, HEIC)", where) from None
    except Exception as exc:  # noqa: BLE001 - decoder libraries raise many kinds
        raise InputError(f"cannot read the image header ({exc})", where) from None


def decode_photo(
    data: bytes,
    min_side: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    where: str = "photo",
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
) -> DecodedPhoto:
    """Decode bytes to upright RGB. `min_side` lets a photo decode (JPEG) or be shrunk right
    after decoding (other formats) as long as its shorter side stays at least that long."""
    image = open_image(data, where)
    width, height = image.size
    source_format = image.format or "unknown"
    limit = pixel_limit(source_format, max_pixels, max_full_pixels)
    if width * height > limit:
        msg = (f"{width}x{height} = {width * height:,} pixels is over the limit of {limit:,} "
               f"for {source_format}")
        raise InputError(msg, where)
    if min_side and source_format in REDUCED_DECODE:
        _draft_at_least(image, min_side)
    try:
        if min_side and source_format not in REDUCED_DECODE:
            image = _reduced(image, min_side)
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


def _reduced(image: Image.Image, min_side: int) -> Image.Image:
    """Shrink by an integer factor in the image's own mode (1 byte a pixel for 1-bit and grey,
    box filter in C) before any RGB copy exists; EXIF stays with the returned image."""
    factor = reduction_factor(*image.size, min_side)
    if factor == 1:
        return image
    exif = image.getexif()
    if image.mode not in REDUCIBLE_MODES:
        transparent = image.mode in ("PA", "RGBa") or "transparency" in image.info
        image = image.convert({"1": "L", "I;16": "I", "I;16B": "I", "I;16L": "I"}.get(
            image.mode, "RGBA" if transparent else "RGB"))
    reduced = image.reduce(factor)
    reduced.info["exif"] = exif.tobytes()
    return reduced


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
