"""Photos for catalog tests: a product (textured tiles) in a few poses, the same product with a
bright stain painted on it, and another product altogether (smooth colour bands)."""

from __future__ import annotations

import numpy as np
from conftest import encode, textured_photo


def product_photos(count: int = 10, size: tuple[int, int] = (320, 240)) -> list[bytes]:
    """`count` good photos of one product: the same texture, shifted as a unit lies differently."""
    return [encode(textured_photo(*size, seed=seed)) for seed in range(count)]


def damaged_photo(size: tuple[int, int] = (320, 240)) -> bytes:
    """The product with a bright stain over a sixth of it: one region unlike any good one."""
    rgb = textured_photo(*size, seed=42)
    height, width = rgb.shape[:2]
    rgb[height // 3: height // 3 + height // 4, width // 3: width // 3 + width // 4] = (250, 40, 200)
    return encode(rgb)


def other_product(size: tuple[int, int] = (320, 240)) -> bytes:
    """A different product: diagonal colour bands, sharp enough to pass the quality checks."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    bands = ((x + y) // 6 % 2).astype(np.uint8)
    rgb = np.stack([bands * 200 + 30, 220 - bands * 180, bands * 60 + 100], axis=2).astype(np.uint8)
    return encode(rgb)
