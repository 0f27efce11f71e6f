"""Finding the item on a tray photo without a model: crop square, padded with the tray colour."""

from __future__ import annotations

import numpy as np

from inspection.locate import border_colour, crop_to_item, find_upright, item_box, upright_item
from training.anomaly.placement import Placement, place


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


def _long_item() -> np.ndarray:
    """A 120 x 60 red item on a grey tray, with a green mark near its right end."""
    rgb = np.full((120, 200, 3), 90, np.uint8)
    rgb[30:90, 40:160] = (200, 60, 40)
    rgb[40:50, 140:150] = (20, 200, 20)
    return rgb


def _mark(rgb: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero((rgb[:, :, 1] > 150) & (rgb[:, :, 0] < 80))
    return float(xs.mean()), float(ys.mean())


def test_an_item_put_down_at_any_angle_comes_back_upright() -> None:
    for angle in (0.0, 33.0, 90.0, 161.0, 250.0):
        placed = place(_long_item(), Placement(angle, 0.9, (0.05, -0.05)))
        found = find_upright(placed)
        assert found is not None
        height, width = found.rgb.shape[:2]
        assert abs(width - 0.9 * 120) < 8 and abs(height - 0.9 * 60) < 8  # long side horizontal
        # the item fills its crop: red (or the mark) almost everywhere
        item = (found.rgb[:, :, 0] > 150) | (found.rgb[:, :, 1] > 150)
        assert item.mean() > 0.9
        mark_x, mark_y = _mark(found.rgb)  # near one end: a half turn is the only ambiguity
        assert min(mark_x, width - mark_x) < 0.25 * width


def test_a_map_over_the_crop_is_drawn_back_where_the_item_lies() -> None:
    placed = place(_long_item(), Placement(33.0, 0.9, (0.05, -0.05)))
    found = find_upright(placed)
    assert found is not None
    crop_map = np.zeros((20, 20), np.float32)
    mark_x, mark_y = _mark(found.rgb)
    crop_map[int(mark_y / found.rgb.shape[0] * 20), int(mark_x / found.rgb.shape[1] * 20)] = 1.0
    photo_map = found.map_to_photo(crop_map, (placed.shape[1], placed.shape[0]))
    assert photo_map.shape == (20, 20) and photo_map.max() > 0.3
    peak_y, peak_x = np.unravel_index(photo_map.argmax(), photo_map.shape)
    photo_x, photo_y = _mark(placed)
    assert abs(peak_x + 0.5 - photo_x / placed.shape[1] * 20) <= 1.0
    assert abs(peak_y + 0.5 - photo_y / placed.shape[0] * 20) <= 1.0
    corner = found.map_to_photo(np.ones((20, 20), np.float32), (placed.shape[1], placed.shape[0]))
    assert corner[0, 0] == 0.0  # the tray around the item scores nothing


def test_no_upright_crop_without_a_tray() -> None:
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 255, (100, 160, 3), dtype=np.uint8)  # a surface filling the photo
    assert find_upright(texture) is None and upright_item(texture) is texture
    assert find_upright(_tray()) is None  # an empty tray


def test_a_sliver_is_not_cut_out() -> None:
    photo = _tray()
    photo[100:102, 20:180] = (30, 40, 120)  # a cable: 160 x 2 px
    assert find_upright(photo) is None


def test_the_outline_gives_the_rectangle_of_every_pixel_inside() -> None:
    # find_upright fits the rectangle to the outer boundary only (fast); the smallest
    # rectangle of a filled, holed, irregular blob is the same as of all its pixels
    import cv2

    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = np.zeros((120, 160), np.uint8)
        for _ in range(4):  # overlapping ellipses at random angles, then holes punched in
            centre = tuple(int(v) for v in rng.integers(40, 80, 2))
            axes = tuple(int(v) for v in rng.integers(5, 35, 2))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        mask[rng.random(mask.shape) < 0.05] = 0
        largest = cv2.connectedComponentsWithStats(mask, connectivity=8)
        blob = (largest[1] == 1 + int(largest[2][1:, cv2.CC_STAT_AREA].argmax())).astype(np.uint8)
        every = cv2.minAreaRect(cv2.findNonZero(blob).astype(np.float32))
        contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outline = cv2.minAreaRect(np.concatenate(contours).reshape(-1, 2).astype(np.float32))
        np.testing.assert_allclose(cv2.boxPoints(every)[np.argsort(cv2.boxPoints(every)[:, 0])],
                                   cv2.boxPoints(outline)[np.argsort(cv2.boxPoints(outline)[:, 0])],
                                   atol=1e-3)
