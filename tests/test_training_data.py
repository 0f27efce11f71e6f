"""Targets, masks, class weights and augmentation presets on hand-made rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from inspection.manifest import Sample
from inspection.taxonomy import load_taxonomy
from training.config import TrainConfig
from training.data import balanced_sampler, class_weights, encode_targets
from training.presets import PRESETS, augment

TAXONOMY = load_taxonomy()
CATEGORIES = TAXONOMY.categories


def row(**labels: tuple[str, ...]) -> Sample:
    return Sample(image="x.png", item_id="i", category="shoe", labels=labels)


def test_targets_and_masks() -> None:
    targets = encode_targets(row(condition=("C",), damage=("dent", "stain")), TAXONOMY, CATEGORIES)
    assert int(targets["condition"]) == 2 and float(targets["condition_mask"]) == 1.0
    assert targets["damage"].tolist() == [0, 0, 1, 1, 0, 0] and float(targets["damage_mask"]) == 1
    # No accessories column at all: unlabelled, masked out of the loss.
    assert float(targets["accessories_mask"]) == 0.0
    assert int(targets["category"]) == CATEGORIES.index("shoe")


def test_empty_single_label_is_unlabelled_but_empty_multi_label_means_none() -> None:
    targets = encode_targets(row(condition=(), damage=()), TAXONOMY, CATEGORIES)
    assert float(targets["condition_mask"]) == 0.0
    assert float(targets["damage_mask"]) == 1.0 and targets["damage"].sum() == 0


def test_unknown_category_is_minus_one() -> None:
    sample = Sample(image="x.png", item_id="i", category="", labels={})
    assert int(encode_targets(sample, TAXONOMY, CATEGORIES)["category"]) == -1


def test_class_weights_favour_rare_labels() -> None:
    rows = [row(condition=("A",), damage=()) for _ in range(9)] + \
        [row(condition=("D",), damage=("crack",))]
    weights = class_weights(rows, TAXONOMY)
    condition = weights["condition"]
    assert condition[3] > condition[0]  # D is 9x rarer than A
    assert weights["damage"][1] == pytest.approx(9.0)  # 9 negatives per positive crack
    assert weights["damage"][0] == 1.0  # never seen: left neutral


def test_balanced_sampler_draws_rare_grades_about_as_often() -> None:
    rows = [row(condition=("A",)) for _ in range(90)] + [row(condition=("D",)) for _ in range(10)]
    sampler = balanced_sampler(rows, TAXONOMY, torch.Generator().manual_seed(0))
    drawn = [rows[i].labels["condition"][0] for i in sampler]
    assert 0.3 < drawn.count("D") / len(drawn) < 0.7


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_keep_shape_and_type(name: str) -> None:
    photo = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    out = augment(photo, PRESETS[name], np.random.default_rng(1))
    assert out.shape == photo.shape and out.dtype == np.uint8
    again = augment(photo, PRESETS[name], np.random.default_rng(1))
    assert np.array_equal(out, again)  # the same draw for the same seed
    draws = [augment(photo, PRESETS[name], np.random.default_rng(seed)) for seed in range(8)]
    changed = [not np.array_equal(draw, photo) for draw in draws]
    assert not any(changed) if name == "none" else any(changed)


@pytest.mark.parametrize("name", [TrainConfig().augment, "mirror"])
def test_default_and_mirror_presets_move_no_pixel_off_the_photo(name: str) -> None:
    # Rotations, zooms and shifts resample the photo, cut off its borders and mirror new ones
    # in: on magnetic tile they cost 0.14 test macro-F1 (BENCHMARKS.md, issue 10). The trainer's
    # default and `mirror` at most mirror the photo, so with colour changes off every pixel survives.
    geometry = dataclasses.replace(PRESETS[name], brightness=0.0, contrast=0.0, saturation=0.0,
                                   blur=0.0, noise=0.0)
    photo = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    allowed = [photo, photo[:, ::-1], photo[::-1], photo[::-1, ::-1]]
    for seed in range(20):
        out = augment(photo, geometry, np.random.default_rng(seed))
        assert any(np.array_equal(out, image) for image in allowed), seed


def test_turns_preset_draws_only_the_eight_lossless_poses_of_a_square() -> None:
    photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    poses = [np.rot90(image, turns) for image in (photo, photo[:, ::-1]) for turns in range(4)]
    seen = set()
    for seed in range(64):
        out = augment(photo, PRESETS["turns"], np.random.default_rng(seed))
        matches = [index for index, pose in enumerate(poses) if np.array_equal(out, pose)]
        assert matches, seed  # no resampling: every pixel kept, only moved
        seen.add(matches[0])
    assert seen == set(range(8))  # and every pose is drawn
