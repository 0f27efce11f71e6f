"""Find the item on a photo and crop to it, so an anomaly detector compares the item and not
where it lies. No model and no torch: the tray is what the photo's border looks like, the item
is what differs from it (Otsu's threshold on the colour difference), cleaned by a morphological
opening; the largest blob, plus any blob at least half its size (the other shoe of a pair), is
the item. A crop is square, so the model's square resize does not distort it, and is padded
with the tray colour where it runs off the photo.

`upright_item` also undoes the item's pose: the smallest rotated rectangle around the item's
outline is cut out and turned so its long side lies horizontal. An item put down at any angle,
shift and scale then reaches the detector as the same picture, up to a half turn (which a bank
fitted on items lying either way covers), instead of at an angle the bank never saw.
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


def tray_difference(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """How far each pixel of a copy `side` pixels on its longer side is from the tray colour
    (largest channel difference), and that copy's scale."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    # float32 holds a uint8 minus a median (a whole or half grey level) exactly; the largest
    # channel by two maxima, since numpy's max over a last axis of 3 took 3.2 ms of the 4.6 ms
    # the served upright branch spent finding the item (256 px copy)
    difference = np.abs(small.astype(np.float32) - border_colour(small).astype(np.float32))
    largest = np.maximum(np.maximum(difference[..., 0], difference[..., 1]), difference[..., 2])
    return largest.astype(np.float64), scale


def foreground(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask (same size as `rgb`'s small copy) of what is not tray."""
    difference, _ = tray_difference(rgb, WORK_SIDE)
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


OUTLINE_SIDE = 256  # the outline is found on a copy this size: a straight edge needs pixels
OUTLINE_CONTRAST = 8.0  # grey levels, after a blur: a plain tray differs from itself by less
MAX_OUTLINE_COVER = 0.9  # an outline this large is the photo itself: nothing lies on a tray
FINE = 4  # map_to_photo samples the crop's map this many times finer per photo cell and axis
MIN_UPRIGHT_SIDE = 0.05  # of the photo's longer side: a thinner item (a cable) is not cut out
MAX_EDGE_SHARE = 0.2  # of the photo's edge pixels unlike the tray: then it is a texture, no tray


def item_outline(rgb: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The largest blob that differs from the tray, filled (closing) and whole: a mask on a
    small copy of the photo and that copy's scale; None when the photo is the item."""
    difference, scale = tray_difference(rgb, OUTLINE_SIDE)
    difference = cv2.GaussianBlur(difference, (5, 5), 0)
    level, _ = cv2.threshold(np.clip(difference, 0, 255).astype(np.uint8), 0, 255,
                             cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Otsu's level splits a busy tray from the item; capped, so an item close to the tray's
    # colour (a grey tile on grey) keeps its faint parts.
    cut = max(OUTLINE_CONTRAST, min(level, 2 * OUTLINE_CONTRAST))
    mask = (difference > cut).astype(np.uint8)
    edge = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    if edge.mean() > MAX_EDGE_SHARE:  # measured: aligned magnetic tiles 0.24-0.95, placed 0
        return None
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return None
    largest = 1 + int(stats[1:, cv2.CC_STAT_AREA].argmax())
    area = stats[largest, cv2.CC_STAT_AREA]
    if not MIN_ITEM * mask.size <= area <= MAX_OUTLINE_COVER * mask.size:
        return None
    return labels == largest, scale


@dataclass(frozen=True)
class UprightItem:
    """The item cut out upright, and where it came from: `to_crop` maps photo pixels to crop
    pixels (2 x 3 affine), so what is found on the crop can be drawn back on the photo."""

    rgb: np.ndarray
    to_crop: np.ndarray

    def map_to_photo(self, crop_map: np.ndarray, photo_size: tuple[int, int]) -> np.ndarray:
        """A map over the crop (the detector's stride-8 grid) as a map of the same grid over the
        whole photo (`photo_size` = width, height); the tray around the item is 0. A photo cell
        keeps the highest value of the crop under it: a small defect's peak is not averaged away
        where the crop's cells are finer than the photo's."""
        grid_height, grid_width = crop_map.shape
        fine_height, fine_width = FINE * grid_height, FINE * grid_width
        crop_height, crop_width = self.rgb.shape[:2]
        photo_width, photo_height = photo_size
        # fine photo cell -> its centre in photo pixels -> crop pixels -> crop grid cell
        cell_to_photo = np.array([[photo_width / fine_width, 0.0, 0.5 * photo_width / fine_width],
                                  [0.0, photo_height / fine_height,
                                   0.5 * photo_height / fine_height], [0.0, 0.0, 1.0]])
        photo_to_crop = np.vstack([self.to_crop, [0.0, 0.0, 1.0]])
        crop_to_cell = np.array([[grid_width / crop_width, 0.0, -0.5],
                                 [0.0, grid_height / crop_height, -0.5], [0.0, 0.0, 1.0]])
        fine_to_crop_cell = (crop_to_cell @ photo_to_crop @ cell_to_photo)[:2]
        fine = cv2.warpAffine(np.asarray(crop_map, np.float32), fine_to_crop_cell,
                              (fine_width, fine_height),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return fine.reshape(grid_height, FINE, grid_width, FINE).max(axis=(1, 3))


def find_upright(rgb: np.ndarray) -> UprightItem | None:
    """The item cut out along its smallest rotated rectangle and turned long side horizontal;
    None when no item lies on a tray in the photo (a texture, an item filling it)."""
    outline = item_outline(rgb)
    if outline is None:
        return None
    mask, scale = outline
    # The smallest rectangle depends only on the convex hull, which the outer boundary spans:
    # its pixels instead of every pixel inside (minAreaRect's hull of all of them took 2.4 ms)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate(contours).reshape(-1, 2).astype(np.float32) / scale
    (centre_x, centre_y), (rect_width, rect_height), angle = cv2.minAreaRect(points)
    if rect_width < rect_height:
        rect_width, rect_height, angle = rect_height, rect_width, angle + 90.0
    if rect_height < MIN_UPRIGHT_SIDE * max(rgb.shape[:2]):
        return None  # stretched to the model's square input, a sliver would be all distortion
    to_crop = cv2.getRotationMatrix2D((centre_x, centre_y), angle, 1.0)
    to_crop[:, 2] += np.array([rect_width / 2 - centre_x, rect_height / 2 - centre_y])
    size = (max(1, round(rect_width)), max(1, round(rect_height)))
    crop = cv2.warpAffine(rgb, to_crop, size, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return UprightItem(crop, to_crop)


def upright_item(rgb: np.ndarray) -> np.ndarray:
    """`find_upright`'s crop, or the photo as it is when no item lies on a tray in it."""
    found = find_upright(rgb)
    return rgb if found is None else found.rgb
