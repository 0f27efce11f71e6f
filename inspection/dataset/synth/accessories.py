"""Accessories laid out on the tray beside the product: charger, cable, case, manual, earbuds,
ear tips, box, second shoe. Each is drawn to fit the slot it is given."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from inspection.dataset.synth.draw import Layer, fill, rounded_rect, shade, text_lines, vertical_sheen
from inspection.dataset.synth.products import ProductStyle, draw_shoe

# width / height of each accessory's box
ASPECT = {"charger": 0.8, "cable": 1.0, "case": 0.55, "manual": 0.72, "earbuds": 1.3, "ear_tips": 1.6,
          "box": 1.5, "second_shoe": 2.3}
WHITE, BLACK = (238, 238, 234), (38, 38, 40)


def charger(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = Layer.empty(w, h)
    colour = WHITE if rng.random() < 0.6 else BLACK
    fill(layer, rounded_rect(0, h * 0.25, w - 1, h - 1, w * 0.15), colour)
    for x in (0.32, 0.62):  # the plug's prongs
        fill(layer, rounded_rect(w * x, 0, w * (x + 0.08), h * 0.3, 1), (175, 175, 170))
    cv2.rectangle(layer.rgb, (int(w * 0.35), int(h * 0.8)), (int(w * 0.65), int(h * 0.86)),
                  shade(colour, 0.7), -1)
    vertical_sheen(layer, 0.1)
    return layer


def cable(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = Layer.empty(w, h)
    colour = WHITE if rng.random() < 0.6 else BLACK
    turns = np.linspace(0, 2 * np.pi * rng.uniform(2.0, 3.0), 160)
    wobble = 1 + 0.08 * np.sin(turns * 3.1)
    coil = np.stack([0.5 + 0.36 * np.cos(turns) * wobble + 0.02 * turns / np.pi,
                     0.5 + 0.30 * np.sin(turns) * wobble], 1) * (w - 1, h - 1)
    coil = np.round(coil).astype(np.int32)
    thickness = max(2, w // 30)
    cv2.polylines(layer.rgb, [coil], False, colour, thickness, cv2.LINE_AA)
    cv2.polylines(layer.alpha, [coil], False, 255, thickness, cv2.LINE_AA)
    for end in (coil[0], coil[-1]):  # connectors
        x, y = int(end[0]), int(end[1])
        plug = rounded_rect(x - w * 0.05, y - h * 0.035, x + w * 0.05, y + h * 0.035, 2)
        fill(layer, plug, (185, 185, 190))
    return layer


def case(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = Layer.empty(w, h)
    if style.category == "headphones":  # a charging case: a pill with a hinge line and a light
        colour = shade(style.colours[0], 1.05)
        fill(layer, rounded_rect(0, h * 0.25, w - 1, h * 0.75, h * 0.25), colour)
        cv2.line(layer.rgb, (2, h // 2), (w - 3, h // 2), shade(colour, 0.7), 1, cv2.LINE_AA)
        cv2.circle(layer.rgb, (w // 2, int(h * 0.62)), max(1, w // 30), (80, 200, 90), -1, cv2.LINE_AA)
    else:  # a phone case: a coloured shell with a camera cut-out
        colour = [(60, 110, 180), (200, 70, 80), (40, 40, 44), (120, 170, 120)][rng.integers(4)]
        fill(layer, rounded_rect(0, 0, w - 1, h - 1, w * 0.16), colour)
        fill(layer, rounded_rect(w * 0.08, h * 0.05, w * 0.45, h * 0.24, w * 0.08), shade(colour, 0.55),
             cover=False)
        cv2.polylines(layer.rgb, [rounded_rect(w * 0.04, h * 0.03, w * 0.96, h * 0.97, w * 0.14)], True,
                      shade(colour, 1.25), max(1, w // 25), cv2.LINE_AA)
    vertical_sheen(layer, 0.1)
    return layer


def manual(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = Layer.empty(w, h)
    fill(layer, rounded_rect(0, 0, w - 1, h - 1, 1), (246, 245, 240))
    cv2.rectangle(layer.rgb, (int(w * 0.1), int(h * 0.08)), (int(w * 0.9), int(h * 0.24)),
                  style.colours[1] if sum(style.colours[1]) < 600 else (60, 60, 60), -1)
    text_lines(layer, int(w * 0.1), int(h * 0.36), int(w * 0.9), 7, max(3, h // 12), (150, 150, 150), rng)
    return layer


def earbuds(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = Layer.empty(w, h)
    for cx in (0.27, 0.73):
        centre = (int(w * cx), int(h * 0.3))
        for target, value in ((layer.rgb, WHITE), (layer.alpha, 255)):
            cv2.circle(target, centre, int(h * 0.22), value, -1, cv2.LINE_AA)
            cv2.line(target, centre, (centre[0], int(h * 0.95)), value, max(2, w // 14), cv2.LINE_AA)
    vertical_sheen(layer, 0.12)
    return layer


def ear_tips(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = Layer.empty(w, h)
    colour = (70, 70, 74) if rng.random() < 0.6 else (215, 215, 210)
    for index, cx in enumerate((0.18, 0.5, 0.82)):  # three sizes of silicone tip
        radius = int(h * (0.22 + 0.06 * index))
        for target, value in ((layer.rgb, colour), (layer.alpha, 255)):
            cv2.circle(target, (int(w * cx), h // 2), radius, value, -1, cv2.LINE_AA)
        cv2.circle(layer.rgb, (int(w * cx), h // 2), max(1, radius // 3), shade(colour, 0.5), -1, cv2.LINE_AA)
    return layer


def box(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = Layer.empty(w, h)
    colour = (196, 160, 112) if rng.random() < 0.5 else (225, 90, 40)
    fill(layer, rounded_rect(0, 0, w - 1, h - 1, 2), colour)
    cv2.rectangle(layer.rgb, (2, int(h * 0.12)), (w - 3, int(h * 0.2)), shade(colour, 0.7), -1)
    cv2.rectangle(layer.rgb, (int(w * 0.35), int(h * 0.45)), (int(w * 0.65), int(h * 0.7)), WHITE, -1)
    vertical_sheen(layer, 0.08)
    return layer


def second_shoe(w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    layer = draw_shoe(style, w, h, rng)
    return Layer(np.ascontiguousarray(layer.rgb[:, ::-1]), np.ascontiguousarray(layer.alpha[:, ::-1]))


DRAWERS: dict[str, Callable[[int, int, np.random.Generator, ProductStyle], Layer]] = {
    "charger": charger, "cable": cable, "case": case, "manual": manual, "earbuds": earbuds,
    "ear_tips": ear_tips, "box": box, "second_shoe": second_shoe,
}


def draw_accessory(name: str, w: int, h: int, rng: np.random.Generator, style: ProductStyle) -> Layer:
    return DRAWERS[name](w, h, rng, style)
