"""bench/zoom_crops.py and bench/opinion_fit.py: the crop sits on the anomaly map's peak and inside
the photo; the zoom model only splits the defect kinds' share; a smaller L2 penalty on the second
opinion gives a steeper slope."""

from __future__ import annotations

import numpy as np

from bench import zoom_crops
from training.anomaly.threshold import fit_second_opinion


def test_the_crop_is_centred_on_the_maps_peak_and_moved_inside_the_photo() -> None:
    anomaly_map = np.zeros((28, 28), np.float32)
    anomaly_map[7, 21] = 5.0  # a quarter down, three quarters across
    x, y = zoom_crops.peak(anomaly_map, 900, 600)
    assert abs(x - 0.75 * 900) < 20 and abs(y - 0.25 * 600) < 20
    assert zoom_crops.square_around((x, y), 300, 900, 600) == (x - 150, y - 150)
    assert zoom_crops.square_around((890, 5), 300, 900, 600) == (600, 0)


def test_the_zoom_model_splits_only_the_defect_kinds_share() -> None:
    served = np.array([[0.6, 0.3, 0.1], [0.1, 0.45, 0.45]])  # good, crack, dent
    zoom = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    combined = zoom_crops.with_zoom(served, zoom, good=0)
    np.testing.assert_allclose(combined[:, 0], served[:, 0])
    np.testing.assert_allclose(combined.sum(axis=1), 1.0)
    kinds = np.sqrt(served[:, 1:] * zoom[:, 1:])
    expected = kinds / kinds.sum(axis=1, keepdims=True) * (1 - served[:, [0]])
    np.testing.assert_allclose(combined[:, 1:], expected)
    assert combined[1].argmax() == 2  # the zoom model breaks the head's tie


def test_a_smaller_penalty_gives_the_second_opinion_a_steeper_slope() -> None:
    goods = np.array([0.6, 0.7, 0.8, 0.9, 1.0])
    defects = np.array([1.3, 1.6, 2.5, 4.0, 6.0])
    default, _ = fit_second_opinion(goods, defects, ("defect",))
    steep, _ = fit_second_opinion(goods, defects, ("defect",), inverse_penalty=100.0)
    assert default is not None and steep is not None
    assert steep.slope > 2 * default.slope
    just_above_the_goods = np.array([1.2])
    assert steep.defect_probability(just_above_the_goods) > default.defect_probability(just_above_the_goods)
