"""Drawing primitives shared by products, accessories and damage: an RGBA layer and shapes.

A `Layer` is what one object looks like from above: colour, coverage (alpha) and the surfaces
where damage may land. Everything is drawn anti-aliased with OpenCV at the size it will appear,
so thin scratches stay thin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

Colour = tuple[int, int, int]


@dataclass
class Layer:
    rgb: np.ndarray  # H x W x 3 uint8
    alpha: np.ndarray  # H x W uint8, 255 = the object
    surfaces: dict[str, np.ndarray] = field(default_factory=dict)  # name -> H x W bool

    @classmethod
    def empty(cls, width: int, height: int) -> Layer:
        return cls(np.zeros((height, width, 3), np.uint8), np.zeros((height, width), np.uint8))

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def pts(points: np.ndarray | list, width: int, height: int) -> np.ndarray:
    """Relative (x, y) in 0..1 -> int32 pixel polygon."""
    array = np.asarray(points, dtype=np.float64) * (width - 1, height - 1)
    return np.round(array).astype(np.int32)


def rounded_rect(x0: float, y0: float, x1: float, y1: float, radius: float) -> np.ndarray:
    """Pixel polygon of a rounded rectangle (OpenCV has no such primitive)."""
    radius = max(1.0, min(radius, (x1 - x0) / 2, (y1 - y0) / 2))
    corners = [(x1 - radius, y1 - radius, 0), (x0 + radius, y1 - radius, 90),
               (x0 + radius, y0 + radius, 180), (x1 - radius, y0 + radius, 270)]
    outline = []
    for cx, cy, start in corners:
        angles = np.deg2rad(np.arange(start, start + 91, 15))
        outline += [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in angles]
    return np.round(np.asarray(outline)).astype(np.int32)


def fill(layer: Layer, polygon: np.ndarray, colour: Colour, cover: bool = True) -> None:
    cv2.fillPoly(layer.rgb, [polygon], colour, cv2.LINE_AA)
    if cover:
        cv2.fillPoly(layer.alpha, [polygon], 255, cv2.LINE_AA)


def poly_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [polygon], 1)
    return mask.astype(bool)


def shade(colour: Colour, factor: float) -> Colour:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)  # type: ignore[return-value]


def vertical_sheen(layer: Layer, strength: float, region: np.ndarray | None = None) -> None:
    """A soft top-to-bottom light falloff, so flat fills read as solid objects."""
    height = layer.rgb.shape[0]
    ramp = np.linspace(1.0 + strength, 1.0 - strength, height, dtype=np.float32)[:, None, None]
    lit = np.clip(layer.rgb.astype(np.float32) * ramp, 0, 255).astype(np.uint8)
    where = (layer.alpha > 0) if region is None else region
    layer.rgb[where] = lit[where]


def text_lines(layer: Layer, x0: int, y0: int, x1: int, rows: int, step: int, colour: Colour,
               rng: np.random.Generator) -> None:
    """Grey bars standing in for printed text."""
    for row in range(rows):
        end = int(x0 + (x1 - x0) * rng.uniform(0.5, 1.0))
        y = y0 + row * step
        cv2.line(layer.rgb, (x0, y), (end, y), colour, max(1, step // 3), cv2.LINE_AA)


def seal_sticker(layer: Layer, centre: tuple[int, int], radius: int) -> None:
    """The factory seal of an unopened (grade A) item: a gold disc, white ring, dark tick."""
    cv2.circle(layer.rgb, centre, radius, (236, 196, 52), -1, cv2.LINE_AA)
    cv2.circle(layer.rgb, centre, max(2, int(radius * 0.72)), (250, 250, 245), max(1, radius // 6),
               cv2.LINE_AA)
    x, y = centre
    r = radius * 0.4
    tick = np.array([[x - r, y], [x - r * 0.2, y + r * 0.7], [x + r, y - r * 0.6]], np.int32)
    cv2.polylines(layer.rgb, [tick], False, (40, 60, 40), max(1, radius // 5), cv2.LINE_AA)


def film_sheen(layer: Layer, rng_value: float) -> None:
    """Shrink wrap / screen film: one bright diagonal band over the whole object."""
    width, height = layer.size
    band = np.zeros((height, width), np.float32)
    offset = int((0.2 + 0.6 * rng_value) * width)
    thickness = max(3, width // 7)
    cv2.line(band, (offset - height // 2, height), (offset + height // 2, 0), 1.0, thickness, cv2.LINE_AA)
    light = cv2.GaussianBlur(band, (0, 0), max(1.0, thickness / 4)) * (layer.alpha / 255.0)
    rgb = layer.rgb.astype(np.float32)
    layer.rgb[:] = np.clip(rgb + light[..., None] * (255 - rgb) * 0.45, 0, 255).astype(np.uint8)
