"""Find the item on a photo and crop to it, so an anomaly detector compares the item and not
where it lies. No model and no torch: the tray is what the photo's border looks like, the item
is what differs from it (Otsu's threshold on the colour difference), cleaned by a morphological
opening; the largest blob, plus any blob at least half its size (the other shoe of a pair), is
the item. A crop is square, so the model's square resize does not distort it, and is padded
with the tray colour where it runs off the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 128  # the mask is found on a small copy: fast, and blind to fine tray texture
MIN_CONTRAST = 20.0  # grey levels: below this nothing stands out from the tray
MAX_COVER = 0.6  # foreground covering more than this of the photo is the photo (a texture)
MIN_ITEM = 0.01  # an item covers at least this much of the photo
MARGIN = 0.1  # of the item's longer side, added on each side


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int


def border_colour(rgb: np.ndarray) -> np.ndarray:
    """Median colour of the outermost pixel ring: the tray or background."""
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    return np.median(ring.reshape(-1, rgb.shape[-1]), axis=0)


def foreground(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask (same size as `rgb`'s small copy) of what is not tray."""
    height, width = rgb.shape[:2]
    scale = WORK_SIDE / max(height, width)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    difference = np.abs(small.astype(np.float32) - border_colour(small)).max(axis=2)
    level, _ = cv2.threshold(difference.astype(np.uint8), 0, 255,
                             cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (difference > max(level, MIN_CONTRAST)).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0


def item_box(rgb: np.ndarray) -> Box | None:
    """Square box around the item in `rgb`'s pixels; None when no item stands out."""
    mask = foreground(rgb)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    if areas.sum() > MAX_COVER * mask.size or areas.max() < MIN_ITEM * mask.size:
        return None  # a texture filling the photo, or specks on an empty tray
    keep = stats[1:][areas >= 0.5 * areas.max()]
    left = keep[:, cv2.CC_STAT_LEFT].min()
    top = keep[:, cv2.CC_STAT_TOP].min()
    right = (keep[:, cv2.CC_STAT_LEFT] + keep[:, cv2.CC_STAT_WIDTH]).max()
    bottom = (keep[:, cv2.CC_STAT_TOP] + keep[:, cv2.CC_STAT_HEIGHT]).max()
    scale = max(rgb.shape[:2]) / max(mask.shape)
    side = round(max(right - left, bottom - top) * (1 + 2 * MARGIN) * scale)
    if side >= 0.9 * max(rgb.shape[:2]):
        return None  # the item fills the photo already
    x0 = round((left + right) / 2 * scale - side / 2)
    y0 = round((top + bottom) / 2 * scale - side / 2)
    return Box(x0, y0, x0 + side, y0 + side)


def crop_to_item(rgb: np.ndarray) -> np.ndarray:
    """The item's square crop, padded with the tray colour; the whole photo when no item
    stands out (a texture, an empty tray)."""
    box = item_box(rgb)
    if box is None:
        return rgb
    height, width = rgb.shape[:2]
    pad = max(0, -box.left, -box.top, box.right - width, box.bottom - height)
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                value=border_colour(rgb).tolist())
    return padded[box.top + pad:box.bottom + pad, box.left + pad:box.right + pad]
