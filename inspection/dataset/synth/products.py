"""The four default products, seen from above on the tray: phone, headphones, shoe, boxed kit.

Each is drawn at the pixel size it will have in the photo from a `ProductStyle` (colours and
proportions fixed per SKU and item), and names its surfaces (`screen`, `body`, `cushion`,
`upper`, `sole`, ...) so damage lands where it would in life: cracks on a screen, tears in a
shoe's upper or a box's cardboard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from inspection.dataset.synth.draw import (
    Colour,
    Layer,
    fill,
    poly_mask,
    pts,
    rounded_rect,
    shade,
    text_lines,
    vertical_sheen,
)

# width / height of each product's bounding box as drawn (before rotation)
ASPECT = {"phone": 0.52, "headphones": 1.05, "shoe": 2.3, "boxed_kit": 1.35}
# SKUs: one body colour and one accent each, so the embedding has something to tell apart
SKU_COLOURS: dict[str, list[tuple[Colour, Colour]]] = {
    "phone": [((30, 30, 34), (90, 90, 98)), ((225, 225, 230), (150, 150, 160)),
              ((40, 70, 130), (120, 150, 200)), ((150, 40, 50), (210, 120, 120))],
    "headphones": [((35, 35, 38), (90, 90, 95)), ((220, 218, 210), (140, 135, 125)),
                   ((60, 90, 70), (160, 190, 160)), ((170, 120, 70), (90, 60, 40))],
    "shoe": [((240, 240, 236), (40, 80, 170)), ((35, 35, 40), (230, 230, 230)),
             ((180, 60, 45), (250, 250, 250)), ((110, 130, 90), (230, 220, 190))],
    "boxed_kit": [((195, 160, 115), (60, 60, 60)), ((245, 245, 245), (30, 90, 170)),
                  ((40, 40, 45), (230, 120, 30)), ((70, 120, 170), (250, 250, 250))],
}


@dataclass(frozen=True)
class ProductStyle:
    category: str
    sku_index: int
    shape: tuple[float, float, float]  # small proportion jitters in -1..1, fixed per item

    @property
    def colours(self) -> tuple[Colour, Colour]:
        return SKU_COLOURS[self.category][self.sku_index]

    @property
    def sku(self) -> str:
        return f"{self.category}-{self.sku_index + 1:02d}"


def draw_phone(style: ProductStyle, width: int, height: int, rng: np.random.Generator) -> Layer:
    layer = Layer.empty(width, height)
    body, accent = style.colours
    radius = width * (0.13 + 0.03 * style.shape[0])
    fill(layer, rounded_rect(0, 0, width - 1, height - 1, radius), body)
    rim = rounded_rect(1, 1, width - 2, height - 2, radius)
    cv2.polylines(layer.rgb, [rim], True, accent, 1, cv2.LINE_AA)
    inset, top = width * 0.06, height * (0.07 + 0.01 * style.shape[1])
    screen = rounded_rect(inset, top, width - 1 - inset, height - 1 - top, radius * 0.6)
    fill(layer, screen, (18, 20, 26), cover=False)
    layer.surfaces["screen"] = poly_mask(layer.alpha.shape, screen)
    # faint wallpaper glow and the camera dot make a screen read as a screen
    glow = np.zeros(layer.alpha.shape, np.float32)
    cv2.circle(glow, (int(width * 0.3), int(height * 0.35)), int(width * 0.6), 1.0, -1, cv2.LINE_AA)
    glow = cv2.GaussianBlur(glow, (0, 0), width * 0.25) * layer.surfaces["screen"]
    blue_glow = glow[..., None] * np.array([10, 18, 34], np.float32)
    layer.rgb[:] = np.clip(layer.rgb + blue_glow, 0, 255).astype(np.uint8)
    cv2.circle(layer.rgb, (width // 2, int(top + height * 0.025)), max(1, width // 28), (5, 5, 8), -1,
               cv2.LINE_AA)
    layer.surfaces["body"] = layer.alpha > 200
    return layer


def draw_headphones(style: ProductStyle, width: int, height: int, rng: np.random.Generator) -> Layer:
    layer = Layer.empty(width, height)
    body, cushion = style.colours
    band = max(3, int(width * (0.08 + 0.01 * style.shape[0])))
    centre = (width // 2, int(height * 0.58))
    axes = (int(width * 0.38), int(height * 0.5))
    for target, value in ((layer.rgb, body), (layer.alpha, 255)):
        cv2.ellipse(target, centre, axes, 0, 180, 360, value, band, cv2.LINE_AA)
    band_mask = np.zeros(layer.alpha.shape, np.uint8)
    cv2.ellipse(band_mask, centre, axes, 0, 180, 360, 1, max(1, band - 2))
    cup_axes = (int(width * 0.12), int(height * (0.2 + 0.02 * style.shape[1])))
    cups, cushions = np.zeros_like(band_mask), np.zeros_like(band_mask)
    for side in (-1, 1):
        cx = width // 2 + side * int(width * 0.36)
        cy = int(height * 0.73)
        for target, value in ((layer.rgb, body), (layer.alpha, 255), (cups, 1)):
            cv2.ellipse(target, (cx, cy), cup_axes, 0, 0, 360, value, -1, cv2.LINE_AA)
        inner = (int(cup_axes[0] * 0.62), int(cup_axes[1] * 0.78))
        cv2.ellipse(layer.rgb, (cx + side * 2, cy), inner, 0, 0, 360, cushion, -1, cv2.LINE_AA)
        cv2.ellipse(cushions, (cx + side * 2, cy), inner, 0, 0, 360, 1, -1)
    vertical_sheen(layer, 0.12)
    layer.surfaces.update(body=(cups > 0) & ~(cushions > 0) | (band_mask > 0), cushion=cushions > 0,
                          cup=cups > 0)
    return layer


SHOE_UPPER = [(0.04, 0.80), (0.03, 0.42), (0.10, 0.22), (0.22, 0.18), (0.34, 0.30), (0.44, 0.16),
              (0.56, 0.14), (0.64, 0.32), (0.80, 0.44), (0.94, 0.56), (0.985, 0.70), (0.97, 0.80)]


def draw_shoe(style: ProductStyle, width: int, height: int, rng: np.random.Generator) -> Layer:
    layer = Layer.empty(width, height)
    upper_colour, accent = style.colours
    upper = pts(SHOE_UPPER, width, height)
    fill(layer, upper, upper_colour)
    collar = pts([(0.12, 0.28), (0.22, 0.24), (0.33, 0.34), (0.22, 0.36)], width, height)
    fill(layer, collar, shade(upper_colour, 0.45), cover=False)
    stripe = pts([(0.30, 0.70), (0.55, 0.45), (0.80, 0.52), (0.58, 0.58), (0.36, 0.76)], width, height)
    fill(layer, stripe, accent, cover=False)
    for step in range(5):  # laces across the tongue
        x = 0.44 + step * 0.045
        a, b = pts([(x, 0.22 + step * 0.03), (x + 0.05, 0.30 + step * 0.03)], width, height)
        cv2.line(layer.rgb, tuple(a), tuple(b), shade(accent, 0.8), max(1, height // 30), cv2.LINE_AA)
    sole_top = 0.78 + 0.02 * style.shape[0]
    sole = rounded_rect(0.01 * width, sole_top * height, 0.99 * width, height - 1, height * 0.08)
    fill(layer, sole, (236, 232, 222) if sum(upper_colour) < 600 else (60, 58, 55))
    vertical_sheen(layer, 0.1)
    layer.surfaces["upper"] = poly_mask(layer.alpha.shape, upper) & ~poly_mask(layer.alpha.shape, sole)
    layer.surfaces["sole"] = poly_mask(layer.alpha.shape, sole)
    layer.surfaces["body"] = layer.alpha > 200
    return layer


def draw_boxed_kit(style: ProductStyle, width: int, height: int, rng: np.random.Generator) -> Layer:
    layer = Layer.empty(width, height)
    card, print_colour = style.colours
    fill(layer, rounded_rect(0, 0, width - 1, height - 1, 3), card)
    lid = rounded_rect(width * 0.03, height * 0.04, width * 0.97, height * 0.96, 2)
    cv2.polylines(layer.rgb, [lid], True, shade(card, 0.75), max(1, width // 90), cv2.LINE_AA)
    band_y = int(height * (0.18 + 0.04 * style.shape[1]))
    cv2.rectangle(layer.rgb, (int(width * 0.03), band_y), (int(width * 0.97), band_y + height // 9),
                  print_colour, -1)
    icon = rounded_rect(width * 0.12, height * 0.42, width * 0.42, height * 0.84, width * 0.04)
    fill(layer, icon, shade(print_colour, 1.1), cover=False)
    text_lines(layer, int(width * 0.5), int(height * 0.48), int(width * 0.88), 4, max(3, height // 14),
               shade(print_colour, 0.9), rng)
    vertical_sheen(layer, 0.08)
    layer.surfaces["body"] = layer.alpha > 200
    return layer


DRAWERS: dict[str, Callable[[ProductStyle, int, int, np.random.Generator], Layer]] = {
    "phone": draw_phone, "headphones": draw_headphones, "shoe": draw_shoe, "boxed_kit": draw_boxed_kit,
}
# Where the grade-A seal sits, relative to the product box
SEAL_SPOT = {"phone": (0.5, 0.62), "headphones": (0.14, 0.73), "shoe": (0.2, 0.6), "boxed_kit": (0.8, 0.3)}


def draw_product(style: ProductStyle, width: int, height: int, rng: np.random.Generator) -> Layer:
    return DRAWERS[style.category](style, width, height, rng)
