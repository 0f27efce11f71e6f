"""One photo: the tray, the product in a pose, the accessories in their slots, then the camera
(light gain, gradient, colour temperature, sensor noise, a little blur).

The product (with its seal or damage) is drawn once per photo at a fixed reference size from the
item's own random stream, so every photo of an item shows the same marks, then rotated, scaled
and placed with the photo's random stream. The damage mask goes through the same warp.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspection.dataset.synth.accessories import ASPECT as ACCESSORY_ASPECT
from inspection.dataset.synth.accessories import draw_accessory
from inspection.dataset.synth.damage import apply_damage
from inspection.dataset.synth.draw import Layer, film_sheen, seal_sticker
from inspection.dataset.synth.plan import ItemSpec, item_rng, photo_rng
from inspection.dataset.synth.products import ASPECT, SEAL_SPOT, draw_product

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the photo
PRODUCT_BOX: Box = (0.03, 0.03, 0.66, 0.74)
SHOE_PAIR_BOXES: tuple[Box, Box] = ((0.03, 0.03, 0.66, 0.37), (0.03, 0.40, 0.66, 0.74))
SLOTS: tuple[Box, ...] = ((0.69, 0.03, 0.97, 0.33), (0.69, 0.35, 0.97, 0.65), (0.69, 0.67, 0.97, 0.97),
                          (0.03, 0.77, 0.33, 0.97), (0.36, 0.77, 0.66, 0.97))
TRAYS = ((196, 198, 196), (118, 122, 128), (66, 86, 108), (58, 104, 80), (214, 204, 184), (236, 236, 234))


def _fit(aspect: float, box_w: float, box_h: float, angle: float = 0.0) -> tuple[float, float]:
    """Largest (w, h) with w/h = aspect whose rotated bounding box fits box_w x box_h."""
    c, s = abs(np.cos(angle)), abs(np.sin(angle))
    scale = min(box_w / (aspect * c + s), box_h / (aspect * s + c))
    return aspect * scale, scale


def _product_layer(spec: ItemSpec, size: int) -> tuple[Layer, np.ndarray]:
    box = SHOE_PAIR_BOXES[0] if "second_shoe" in spec.accessories else PRODUCT_BOX
    width, height = _fit(ASPECT[spec.category], (box[2] - box[0]) * size, (box[3] - box[1]) * size)
    width, height = max(8, int(width)), max(8, int(height))
    layer = draw_product(spec.style, width, height, item_rng(spec.seed, spec.index, 1))
    mask = np.zeros(layer.alpha.shape, bool)
    if spec.sealed:
        film_sheen(layer, item_rng(spec.seed, spec.index, 2).random())
        u, v = SEAL_SPOT[spec.category]
        seal_sticker(layer, (int(u * width), int(v * height)), max(3, int(min(width, height * 2) * 0.09)))
    elif spec.damage:
        mask = apply_damage(layer, spec.category, list(spec.damage), spec.grade >= 3,
                            item_rng(spec.seed, spec.index, 3))
    return layer, mask


def _tray(size: int, rng: np.random.Generator) -> np.ndarray:
    base = np.array(TRAYS[rng.integers(len(TRAYS))], np.float32) * rng.uniform(0.9, 1.1, 3)
    low = cv2.resize(rng.normal(0, 8, (6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    tray = base + low[..., None] + 2.5 * rng.standard_normal((size, size, 1), dtype=np.float32)
    if rng.random() < 0.4:  # a cutting mat's grid
        step = size // int(rng.integers(8, 14))
        tray[::step] *= 0.9
        tray[:, ::step] *= 0.9
    if rng.random() < 0.5:  # the tray's raised rim along the edges
        rim = max(2, size // 40)
        frame = np.ones((size, size), np.float32)
        frame[rim:-rim, rim:-rim] = 0
        tray *= 1 - 0.3 * cv2.GaussianBlur(frame, (0, 0), rim / 2)[..., None]
    return tray


def _place(canvas: np.ndarray, shadow: np.ndarray, layer: Layer, box: Box, size: int, angle: float,
           fill: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate, scale and drop `layer` into `box`; return the warp so masks can follow."""
    w, h = layer.size
    bw, bh = (box[2] - box[0]) * size, (box[3] - box[1]) * size
    fit_w, _ = _fit(w / h, bw, bh, angle)
    scale = min(1.0, fit_w / w) * fill
    c, s = abs(np.cos(angle)), abs(np.sin(angle))
    room_x = max(0.0, bw - scale * (w * c + h * s)) / 2
    room_y = max(0.0, bh - scale * (w * s + h * c)) / 2
    centre = (box[0] * size + bw / 2 + rng.uniform(-room_x, room_x),
              box[1] * size + bh / 2 + rng.uniform(-room_y, room_y))
    warp = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), np.rad2deg(angle), scale), np.float64)
    warp[:, 2] = warp[:, 2] + (np.array(centre) - (w / 2, h / 2))
    rgb = cv2.warpAffine(layer.rgb, warp, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32)
    alpha = cv2.warpAffine(layer.alpha, warp, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    canvas *= 1 - alpha[..., None]
    np.add(canvas, rgb * alpha[..., None], out=canvas)
    shadow[:] = np.maximum(shadow, alpha)
    return warp


def _camera(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = rgb.shape[0]
    direction = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    strength = np.float32(rng.uniform(0, 0.3))
    gradient = 1 + strength * (ramp[None, :] * np.cos(direction) + ramp[:, None] * np.sin(direction))
    temperature = rng.uniform(-1, 1)
    tint = np.array([1 + 0.07 * temperature, 1.0, 1 - 0.07 * temperature], np.float32)
    rgb = rgb * (np.float32(rng.uniform(0.78, 1.15)) * gradient.astype(np.float32))[..., None] * tint
    rgb += np.float32(rng.uniform(1.5, 5.0)) * rng.standard_normal(rgb.shape, dtype=np.float32)
    if rng.random() < 0.35:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.4, 1.0))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render_photo(spec: ItemSpec, photo_index: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 size x size x 3, damage mask bool size x size) of one photo of the item."""
    rng = photo_rng(seed, photo_index)
    canvas = _tray(size, rng)
    objects = np.zeros((size, size), np.float32)
    product, damage = _product_layer(spec, size)
    accessories = [a for a in spec.accessories if a != "second_shoe"]
    slots = rng.permutation(len(SLOTS))[: len(accessories)]
    layers = []
    for name, slot in zip(accessories, slots, strict=True):
        box = SLOTS[slot]
        w, h = _fit(ACCESSORY_ASPECT[name], (box[2] - box[0]) * size, (box[3] - box[1]) * size)
        layer = draw_accessory(name, max(6, int(w)), max(6, int(h)), rng, spec.style)
        layers.append((layer, box, rng.uniform(-0.35, 0.35)))
    if "second_shoe" in spec.accessories:
        pair = draw_accessory("second_shoe", product.size[0], product.size[1], rng, spec.style)
        layers.append((pair, SHOE_PAIR_BOXES[1], rng.uniform(-0.15, 0.15)))
    shadow_source = np.zeros_like(objects)
    photo = np.zeros_like(canvas)
    for layer, box, angle in layers:
        _place(photo, shadow_source, layer, box, size, angle, rng.uniform(0.75, 0.95), rng)
    box = SHOE_PAIR_BOXES[0] if "second_shoe" in spec.accessories else PRODUCT_BOX
    product_angle = rng.uniform(-0.5, 0.5) + (np.pi if rng.random() < 0.25 else 0.0)
    warp = _place(photo, shadow_source, product, box, size, product_angle, rng.uniform(0.8, 1.0), rng)
    # shadows fall down-right of every object; objects cover the tray where alpha says
    offset = np.array([[1, 0, size / 90], [0, 1, size / 70]], np.float32)
    shadow = cv2.GaussianBlur(cv2.warpAffine(shadow_source, offset, (size, size)), (0, 0), size / 90)
    canvas = canvas * (1 - 0.4 * shadow[..., None]) * (1 - shadow_source[..., None]) + photo
    mask = cv2.warpAffine(damage.astype(np.uint8) * 255, warp, (size, size), flags=cv2.INTER_LINEAR) > 127
    turns, flip = int(rng.integers(4)), rng.random() < 0.5
    canvas, mask = np.rot90(canvas, turns), np.rot90(mask, turns)
    if flip:
        canvas, mask = canvas[:, ::-1], mask[:, ::-1]
    return _camera(np.ascontiguousarray(canvas), rng), np.ascontiguousarray(mask)
