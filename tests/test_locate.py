"""Finding the item on a tray photo without a model: crop square, padded with the tray colour."""

from __future__ import annotations

import numpy as np

from inspection.locate import border_colour, crop_to_item, item_box


def _tray(size: int = 200) -> np.ndarray:
    """A light tray with faint grid lines, as the synthetic station photos have."""
    rgb = np.full((size, size, 3), (210, 220, 200), np.uint8)
    rgb[::20] = (200, 210, 190)
    rgb[:, ::20] = (200, 210, 190)
    return rgb


def test_finds_the_item_and_ignores_a_small_accessory() -> None:
    photo = _tray()
    photo[40:120, 100:140] = (30, 40, 120)  # the item: a dark blue phone, 80 x 40
    photo[170:180, 10:20] = (20, 20, 20)  # a small charger
    box = item_box(photo)
    assert box is not None
    assert box.right - box.left == box.bottom - box.top  # square
    assert box.left <= 100 and box.right >= 140 and box.top <= 40 and box.bottom >= 120
    assert box.left > 20  # the charger is left out
    crop = crop_to_item(photo)
    assert crop.shape[0] == crop.shape[1] and crop.shape[0] < 120


def test_crop_running_off_the_photo_is_padded_with_the_tray_colour() -> None:
    photo = _tray()
    photo[0:60, 0:60] = (30, 40, 120)  # the item in the corner
    crop = crop_to_item(photo)
    assert crop.shape[0] == crop.shape[1] > 60
    assert np.array_equal(crop[0, 0], border_colour(photo))  # padding, not the item


def test_a_texture_filling_the_photo_is_not_cropped() -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
    assert item_box(texture) is None and crop_to_item(texture) is texture


def test_an_empty_tray_is_not_cropped() -> None:
    photo = _tray()
    assert item_box(photo) is None and crop_to_item(photo).shape == photo.shape
