"""Photo usability: each check measures a value, compares it to the policy and explains itself."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import textured_photo

from inspection.decide import load_policy
from inspection.quality import QualityLimits, assess_quality, sharpness

LIMITS = QualityLimits()


def failed(rgb: np.ndarray, size: tuple[int, int] | None = None) -> dict[str, object]:
    size = size or (rgb.shape[1], rgb.shape[0])
    return {check.name: check for check in assess_quality(rgb, size, LIMITS).problems}


def test_a_sharp_well_lit_photo_passes_every_check() -> None:
    quality = assess_quality(textured_photo(), (320, 240), LIMITS)
    assert quality.usable
    assert {check.name for check in quality.checks} == {"too_small", "blurred", "too_dark",
                                                        "too_bright"}
    assert all(check.reason == "" for check in quality.checks)


def test_blur_is_measured_and_explained() -> None:
    blurred = cv2.GaussianBlur(textured_photo(), (0, 0), 6)
    problems = failed(blurred)
    assert set(problems) == {"blurred"}
    check = problems["blurred"]
    assert check.value < LIMITS.min_sharpness == check.threshold
    assert "blurred" in check.reason and "focus" in check.reason


def test_sharpness_does_not_depend_on_resolution() -> None:
    # The same scene at 2x and 1x: measured on the same analysis size, within a factor of 2.
    small = textured_photo(320, 240)
    large = cv2.resize(small, (640, 480), interpolation=cv2.INTER_NEAREST)
    from inspection.quality import analysis_grey
    a = sharpness(analysis_grey(small, 200))
    b = sharpness(analysis_grey(large, 200))
    assert 0.5 < a / b < 2.0


@pytest.mark.parametrize(("scale", "offset", "kind", "word"), [
    (0.1, 0, "too_dark", "dark"),        # everything near black
    (0.1, 235, "too_bright", "bright"),  # everything near white
])
def test_exposure(scale: float, offset: int, kind: str, word: str) -> None:
    rgb = np.clip(textured_photo() * scale + offset, 0, 255).astype(np.uint8)
    problems = failed(rgb)
    assert kind in problems
    assert word in problems[kind].reason  # the reason says which way it is wrong


def test_too_small_uses_the_size_as_sent() -> None:
    # A JPEG decoded at reduced scale is still judged by its original size.
    assert "too_small" not in failed(textured_photo(100, 100), size=(1600, 1200))
    problems = failed(textured_photo(120, 90))
    assert problems["too_small"].value == 90
    assert "at least 160 pixels" in problems["too_small"].reason


def test_the_packaged_policy_configures_the_limits() -> None:
    assert load_policy().quality == QualityLimits()


def test_unknown_quality_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="min_sharpnes"):
        QualityLimits.from_dict({"min_sharpnes": 3})
