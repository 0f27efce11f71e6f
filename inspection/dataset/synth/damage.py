"""Damage drawn onto a product layer, each returning its exact pixel mask.

Light wear (grade C) is small: a few short scratches, a small stain, a shallow dent. Heavy damage
(grade D) is what makes an item unsellable: a branching crack, a jagged tear, a piece broken off
the outline. Every mark is clipped to the surface it is on, so the mask is exactly the pixels
that changed.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from inspection.dataset.synth.draw import Layer

LIGHT = ("scratch", "dent", "stain")
HEAVY = ("crack", "tear", "broken_part")
# damage kind -> category -> the surface it goes on (absent = does not happen to that product)
SURFACE: dict[str, dict[str, str]] = {
    "scratch": {"phone": "screen", "headphones": "body", "shoe": "body", "boxed_kit": "body"},
    "crack": {"phone": "screen", "headphones": "cup"},
    "dent": {"headphones": "cup", "boxed_kit": "body", "phone": "body"},
    "stain": {"phone": "screen", "headphones": "cushion", "shoe": "upper", "boxed_kit": "body"},
    "tear": {"headphones": "cushion", "shoe": "upper", "boxed_kit": "body"},
    "broken_part": {"phone": "body", "headphones": "body", "shoe": "body", "boxed_kit": "body"},
}


def possible(kind: str, category: str) -> bool:
    return category in SURFACE.get(kind, {})


def _point_on(surface: np.ndarray, rng: np.random.Generator, margin: int) -> tuple[int, int]:
    inner = cv2.erode(surface.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
    ys, xs = np.nonzero(inner if inner.any() else surface)
    pick = rng.integers(len(xs))
    return int(xs[pick]), int(ys[pick])


def _contrast(layer: Layer, point: tuple[int, int]) -> tuple[int, int, int]:
    """Bright marks on dark surfaces, dark marks on light ones."""
    luminance = float(layer.rgb[point[1], point[0]].mean())
    return (232, 232, 236) if luminance < 110 else (38, 34, 32)


def _walk(start: tuple[int, int], steps: int, step_px: float, angle: float, wiggle: float,
          rng: np.random.Generator) -> np.ndarray:
    points = [np.array(start, np.float64)]
    for _ in range(steps):
        angle += rng.normal(0, wiggle)
        points.append(points[-1] + step_px * np.array([np.cos(angle), np.sin(angle)]))
    return np.round(np.asarray(points)).astype(np.int32)


def _stroke(layer: Layer, surface: np.ndarray, lines: list[np.ndarray], colour: tuple[int, int, int],
            thickness: int) -> np.ndarray:
    drawn = np.zeros(layer.alpha.shape, np.uint8)
    cv2.polylines(drawn, lines, False, 255, thickness, cv2.LINE_AA)
    mask = (drawn > 96) & surface
    weight = (drawn.astype(np.float32) / 255.0 * surface)[..., None]
    layer.rgb[:] = (layer.rgb * (1 - weight) + np.array(colour, np.float32) * weight).astype(np.uint8)
    return mask


def scratch(layer: Layer, surface: np.ndarray, size: int, rng: np.random.Generator,
            heavy: bool) -> np.ndarray:
    lines = []
    for _ in range(rng.integers(2, 5) if heavy else rng.integers(1, 3)):
        start = _point_on(surface, rng, 2)
        steps = int(rng.integers(3, 6))
        length = size * rng.uniform(0.2, 0.35) * (1.4 if heavy else 1.0)
        lines.append(_walk(start, steps, length / steps, rng.uniform(0, 2 * np.pi), 0.15, rng))
    return _stroke(layer, surface, lines, _contrast(layer, tuple(lines[0][0])), max(1, round(size / 70)))


def crack(layer: Layer, surface: np.ndarray, size: int, rng: np.random.Generator, heavy: bool) -> np.ndarray:
    impact = _point_on(surface, rng, size // 12)
    lines = []
    for _ in range(rng.integers(3, 6)):  # rays from the impact point, some forking
        ray = _walk(impact, int(rng.integers(4, 8)), size * 0.06, rng.uniform(0, 2 * np.pi), 0.45, rng)
        lines.append(ray)
        fork_at = ray[int(rng.integers(1, len(ray) - 1))]
        lines.append(_walk(tuple(fork_at), 3, size * 0.05, rng.uniform(0, 2 * np.pi), 0.4, rng))
    mask = _stroke(layer, surface, lines, _contrast(layer, impact), max(1, size // 90))
    cv2.circle(layer.rgb, impact, max(2, size // 45), _contrast(layer, impact), -1, cv2.LINE_AA)
    spot = np.zeros_like(layer.alpha)
    cv2.circle(spot, impact, max(2, size // 45), 1, -1)
    return mask | ((spot > 0) & surface)


def _blob(shape: tuple[int, int], centre: tuple[int, int], radius: float,
          rng: np.random.Generator) -> np.ndarray:
    field = np.zeros(shape, np.float32)
    for _ in range(6):
        offset = rng.normal(0, radius * 0.45, 2)
        r = max(2, int(radius * rng.uniform(0.4, 0.8)))
        cv2.circle(field, (int(centre[0] + offset[0]), int(centre[1] + offset[1])), r, 1.0, -1)
    return cv2.GaussianBlur(field, (0, 0), max(1.0, radius * 0.2)) > 0.4


def stain(layer: Layer, surface: np.ndarray, size: int, rng: np.random.Generator, heavy: bool) -> np.ndarray:
    centre = _point_on(surface, rng, size // 20)
    radius = size * rng.uniform(0.06, 0.09) * (1.7 if heavy else 1.0)
    mask = _blob(layer.alpha.shape, centre, radius, rng) & surface
    dark_surface = float(layer.rgb[centre[1], centre[0]].mean()) < 110  # residue shows light on dark
    palette = [(205, 190, 150), (170, 180, 150)] if dark_surface \
        else [(120, 84, 40), (95, 105, 60), (60, 45, 35)]
    colour = np.array(palette[rng.integers(len(palette))], np.float32)
    opacity = rng.uniform(0.5, 0.7)
    rgb = layer.rgb.astype(np.float32)
    rgb[mask] = rgb[mask] * (1 - opacity) + colour * opacity
    layer.rgb[:] = rgb.astype(np.uint8)
    return mask


def dent(layer: Layer, surface: np.ndarray, size: int, rng: np.random.Generator, heavy: bool) -> np.ndarray:
    centre = _point_on(surface, rng, size // 12)
    axes = np.array([rng.uniform(0.06, 0.09), rng.uniform(0.035, 0.06)]) * size * (1.5 if heavy else 1.0)
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[: layer.alpha.shape[0], : layer.alpha.shape[1]].astype(np.float32)
    dx, dy = xs - centre[0], ys - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / axes[0]
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / axes[1]
    inside = (u**2 + v**2) <= 1.0
    mask = inside & surface
    # a dent is a dish: the side facing the light darkens, the far side catches it
    shading = 1.0 + 0.55 * np.clip(u * 0.7 + v * 0.7, -1, 1) * np.sqrt(np.clip(1 - u**2 - v**2, 0, 1))
    rgb = layer.rgb.astype(np.float32)
    rgb[mask] = np.clip(rgb[mask] * shading[mask, None] + (shading[mask, None] - 1) * 60, 0, 255)
    layer.rgb[:] = rgb.astype(np.uint8)
    return mask


def tear(layer: Layer, surface: np.ndarray, size: int, rng: np.random.Generator, heavy: bool) -> np.ndarray:
    start = _point_on(surface, rng, size // 10)
    spine = _walk(start, 8, size * rng.uniform(0.035, 0.05), rng.uniform(0, 2 * np.pi), 0.5, rng)
    width = np.concatenate([[0.5], rng.uniform(1.5, 3.5, len(spine) - 2) * max(1.0, size / 80), [0.5]])
    direction = np.gradient(spine.astype(np.float64), axis=0)
    normal = np.stack([-direction[:, 1], direction[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
    jag = rng.uniform(0.6, 1.4, (len(spine), 2))
    left = spine + normal * (width * jag[:, 0])[:, None]
    right = spine - normal * (width * jag[:, 1])[:, None]
    gap = np.round(np.concatenate([left, right[::-1]])).astype(np.int32)
    drawn = np.zeros_like(layer.alpha)
    cv2.fillPoly(drawn, [gap], 255, cv2.LINE_AA)
    cv2.polylines(drawn, [spine], False, 255, 1, cv2.LINE_AA)
    mask = (drawn > 96) & surface
    layer.rgb[mask] = (28, 22, 20)
    frayed = (cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~mask & surface
    layer.rgb[frayed] = np.clip(layer.rgb[frayed].astype(np.int16) + 45, 0, 255).astype(np.uint8)
    return mask | frayed


def broken_part(layer: Layer, surface: np.ndarray, size: int, rng: np.random.Generator,
                heavy: bool) -> np.ndarray:
    """Cut a jagged piece off the outline: the mask is the part that is gone plus the raw edge."""
    edge = (layer.alpha > 128) & ~(cv2.erode((layer.alpha > 128).astype(np.uint8), np.ones((5, 5))) > 0)
    centre = _point_on(edge, rng, 0)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radii = size * rng.uniform(0.09, 0.17, 9)
    piece = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], 1)
    cut = np.zeros_like(layer.alpha)
    cv2.fillPoly(cut, [np.round(piece).astype(np.int32)], 1)
    gone = (cut > 0) & (layer.alpha > 0)
    rim = (cv2.dilate(gone.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~gone & (layer.alpha > 128)
    layer.alpha[gone] = 0
    layer.rgb[rim] = (layer.rgb[rim] * 0.45).astype(np.uint8)
    for name in layer.surfaces:
        layer.surfaces[name] = layer.surfaces[name] & ~gone
    return gone | rim


PAINTERS: dict[str, Callable[[Layer, np.ndarray, int, np.random.Generator, bool], np.ndarray]] = {
    "scratch": scratch, "crack": crack, "stain": stain, "dent": dent, "tear": tear,
    "broken_part": broken_part,
}


def apply_damage(layer: Layer, category: str, kinds: list[str], heavy: bool,
                 rng: np.random.Generator) -> np.ndarray:
    """Draw each kind (broken_part first: it changes the outline) and return the union mask."""
    size = sum(layer.size) // 2  # damage scales with the product, not with its thin side
    union = np.zeros(layer.alpha.shape, bool)
    for kind in sorted(kinds, key=lambda k: k != "broken_part"):
        surface = layer.surfaces[SURFACE[kind][category]] & (layer.alpha > 200)
        union |= PAINTERS[kind](layer, surface, size, rng, heavy)
    return union
