"""The placement protocol: seeded, moves a photo and its mask alike, fills with the border."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.anomaly.placement import (
    Placement,
    border_colour,
    place,
    place_mask,
    random_placement,
    rotations,
    tray_side,
)


def _tray_photo() -> np.ndarray:
    """A 64 px grey tray with a red square item in the middle."""
    rgb = np.full((64, 64, 3), 90, np.uint8)
    rgb[24:40, 24:40] = (200, 30, 30)
    return rgb


def test_placement_is_seeded_per_photo_and_within_its_ranges() -> None:
    first = random_placement(Path("a/001.png"), seed=0)
    assert first == random_placement(Path("b/001.png"), seed=0)  # by file name and seed
    assert first != random_placement(Path("a/002.png"), seed=0)
    assert first != random_placement(Path("a/001.png"), seed=1)
    for index in range(50):
        placement = random_placement(Path(f"{index}.png"), seed=0)
        assert 0 <= placement.angle < 360 and 0.8 <= placement.scale <= 1.0
        assert all(abs(shift) <= 0.1 for shift in placement.shift)


def test_uncovered_area_takes_the_border_colour() -> None:
    photo = _tray_photo()
    assert border_colour(photo) == (90.0, 90.0, 90.0)
    placed = place(photo, Placement(45.0, 0.8, (0.1, -0.1)))
    assert tuple(placed[0, 0]) == (90, 90, 90) and tuple(placed[-1, -1]) == (90, 90, 90)


def test_the_whole_photo_stays_on_its_tray_at_any_pose() -> None:
    """Turned inside its own frame a long photo loses its ends (and the defects there); on its
    tray every pixel of it is still seen, only scaled."""
    mask = np.ones((40, 120), np.uint8)  # a long photo: every pixel of it marked
    for angle in (0.0, 37.0, 90.0, 135.0, 270.0):
        for shift in ((0.1, 0.1), (-0.1, 0.1), (0.1, -0.1)):
            placed = place_mask(mask, Placement(angle, 0.8, shift))
            assert placed.shape == (tray_side(120, 40),) * 2
            assert placed.sum() == pytest.approx(0.64 * mask.sum(), rel=0.05)
            ring = np.concatenate([placed[0], placed[-1], placed[:, 0], placed[:, -1]])
            assert not ring.any()  # nothing touches the tray's edge


def test_mask_moves_with_its_photo() -> None:
    photo = _tray_photo()
    mask = np.zeros((64, 64), np.uint8)
    mask[24:40, 24:40] = 1
    placement = Placement(30.0, 0.9, (0.1, 0.05))
    placed, placed_mask = place(photo, placement), place_mask(mask, placement)
    red = (placed[:, :, 0] > 150) & (placed[:, :, 1] < 80)
    assert set(np.unique(placed_mask)) <= {0, 1}
    overlap = (red & (placed_mask == 1)).sum() / max(1, (placed_mask == 1).sum())
    assert overlap > 0.8  # the item's pixels are where its mask went


def test_rotated_copies_turn_evenly(tmp_path: Path) -> None:
    photo = _tray_photo()
    photo[24:28, 24:40] = (30, 30, 200)  # a blue stripe marks the item's top edge
    turned = rotations(lambda _: photo, 4)
    assert np.array_equal(turned((tmp_path, 0)), photo)
    quarter = turned((tmp_path, 1))  # 90 degrees counter-clockwise: the top goes left
    assert np.array_equal(quarter, np.rot90(photo)) or \
        np.abs(quarter.astype(int) - np.rot90(photo).astype(int)).mean() < 2


def test_a_bank_on_upright_items_holds_both_half_turns() -> None:
    from training.anomaly.placement import upright_views
    photo = np.full((60, 100, 3), 90, np.uint8)
    photo[20:40, 20:80] = (200, 30, 30)
    photo[22:26, 70:78] = (30, 200, 30)  # a mark at one end
    views = upright_views(place(photo, Placement(120.0, 1.0, (0.0, 0.0))))
    assert len(views) == 2 and np.array_equal(views[1], views[0][::-1, ::-1])
    assert views[0].shape[1] > views[0].shape[0]  # upright: long side horizontal
    texture = np.random.default_rng(0).integers(0, 255, (50, 50, 3), dtype=np.uint8)
    assert len(upright_views(texture)) == 1  # nothing on a tray: the photo, once
