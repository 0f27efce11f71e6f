"""The placement protocol of `anomaly evaluate --placement random`: every photo, good and
defective, train and test alike, is put down anywhere — rotated 0-360 degrees, scaled 0.8-1.0,
shifted up to 10 % of its side each way — on a square tray of the photo's own border colour, as
an item lying on a plain tray would be. Seeded per photo (by seed and file name), so a rerun
places every photo the same way and a photo's mask moves with it.

The tray is large enough to hold the whole photo at any angle and shift (its diagonal plus the
shift): a camera over a tray sees the whole item. Turned inside its own frame, a photo loses its
corners — on magnetic tile 19 % of the defects left the frame that way (BENCHMARKS.md), so no
detector could have found them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspection import locate

MAX_SHIFT = 0.10  # of the photo's side, each axis
MIN_SCALE = 0.8


@dataclass(frozen=True)
class Placement:
    angle: float  # degrees, counter-clockwise
    scale: float
    shift: tuple[float, float]  # (x, y), fractions of width and height

    def matrix(self, width: int, height: int) -> np.ndarray:
        """2 x 3 affine matrix from the photo to its tray: rotate and scale about the photo's
        centre, move that centre to the tray's centre, then shift."""
        side = tray_side(width, height)
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), self.angle, self.scale)
        matrix[:, 2] += np.array([(side - width) / 2 + self.shift[0] * width,
                                  (side - height) / 2 + self.shift[1] * height])
        return matrix


def tray_side(width: int, height: int) -> int:
    """A square tray that holds a width x height photo at any angle, scale <= 1 and shift."""
    return math.ceil(math.hypot(width, height) + 2 * MAX_SHIFT * max(width, height))


def random_placement(photo: Path, seed: int) -> Placement:
    rng = random.Random(f"{seed}:{photo.name}")
    return Placement(angle=rng.uniform(0.0, 360.0), scale=rng.uniform(MIN_SCALE, 1.0),
                     shift=(rng.uniform(-MAX_SHIFT, MAX_SHIFT), rng.uniform(-MAX_SHIFT, MAX_SHIFT)))


def border_colour(rgb: np.ndarray) -> tuple[float, ...]:
    """The tray colour (inspection.locate.border_colour) as OpenCV's fill value."""
    return tuple(float(v) for v in locate.border_colour(rgb))


def place(rgb: np.ndarray, placement: Placement) -> np.ndarray:
    """The photo put down on its tray by `placement`; the tray has the photo's border colour."""
    height, width = rgb.shape[:2]
    side = tray_side(width, height)
    return cv2.warpAffine(rgb, placement.matrix(width, height), (side, side),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border_colour(rgb))


def place_mask(mask: np.ndarray, placement: Placement) -> np.ndarray:
    """A pixel mask moved with its photo (nearest neighbour keeps it binary; the tray is 0)."""
    height, width = mask.shape[:2]
    side = tray_side(width, height)
    return cv2.warpAffine(mask, placement.matrix(width, height), (side, side),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def turn(rgb: np.ndarray, angle: float) -> np.ndarray:
    """The photo turned by `angle` degrees inside its own frame (corners filled with its border
    colour): a rotated copy for a rotation-aware bank, not a placement."""
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_colour(rgb))


def rotations(load: Callable[[Path], np.ndarray], copies: int
              ) -> Callable[[tuple[Path, int]], np.ndarray]:
    """A loader of (photo, k): the photo turned by k/copies of a full turn (k = 0: as loaded).
    Fitting a bank on every turn makes it rotation-aware: a good patch seen at any angle has a
    near neighbour in it."""
    def load_turned(item: tuple[Path, int]) -> np.ndarray:
        path, index = item
        rgb = load(path)
        return turn(rgb, 360.0 * index / copies) if index else rgb
    return load_turned


def upright_views(rgb: np.ndarray) -> list[np.ndarray]:
    """What a bank on upright items is fitted on, from one good photo: its upright cut-out and
    that cut-out turned half round — the cut-out settles an item's angle only up to a half turn,
    so the bank holds both (placed magnetic tiles, `anomaly evaluate`: 0.885 -> 0.890 AUROC at
    1,536 rows; with twice the rows, patchcore.default_max_bank, 0.919). A photo with no item on
    a tray is kept as it is, once."""
    item = locate.find_upright(rgb)
    return [rgb] if item is None else [item.rgb, np.ascontiguousarray(item.rgb[::-1, ::-1])]
