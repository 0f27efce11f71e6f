"""Synthetic damage: each kind changes the photo where its mask says, and only there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.synthetic_damage import (
    KINDS,
    SyntheticDamage,
    add_synthetic_damage,
    parse_synthetic_damage,
)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_pixels_inside_its_mask_only(kind: str) -> None:
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(128, 10, (96, 128, 3)), 0, 255).astype(np.uint8)
    original = photo.copy()
    damaged, mask, chosen = add_synthetic_damage(photo, rng, (kind,))
    assert np.array_equal(photo, original)  # the caller's photo is not modified
    assert chosen == kind and damaged.shape == photo.shape and damaged.dtype == np.uint8
    changed = np.any(damaged != photo, axis=2)
    assert changed.any() and mask.any()
    # anti-aliased scratch edges may spill one pixel beyond the drawn mask
    outside = changed & (mask == 0)
    assert outside.sum() <= 2 * mask.sum()


@pytest.mark.parametrize(("text", "expected"), [
    ("", None),  # off
    ("0.3", SyntheticDamage(KINDS, 0.3)),  # every kind
    ("scratch,cutpaste@1", SyntheticDamage(("scratch", "cutpaste"), 1.0)),
])
def test_parse_option(text: str, expected: SyntheticDamage | None) -> None:
    assert parse_synthetic_damage(text) == expected


@pytest.mark.parametrize("text", ["rust@0.3", "0", "1.5", "cutpaste@x"])
def test_parse_rejects_bad_option(text: str) -> None:
    with pytest.raises(ValueError, match="synthetic_damage"):
        parse_synthetic_damage(text)


def test_dataset_wrapper_labels_damaged_good_photos(tmp_path: Path) -> None:
    from tiny_checkpoint import write_photo_set

    from inspection.card import PreprocessSpec
    from inspection.manifest import read_manifest
    from inspection.taxonomy import load_taxonomy, shows_no_defect
    from training.data import InspectionDataset
    from training.synthetic_damage import SyntheticDamageDataset

    manifest = read_manifest(write_photo_set(tmp_path))
    taxonomy = load_taxonomy()
    rows = manifest.samples
    base = InspectionDataset(manifest, rows, taxonomy, ["phone", "headphones", "shoe",
                                                        "boxed_kit"], PreprocessSpec(input_size=32))
    wrapped = SyntheticDamageDataset(base, "scratch@1")
    scratch = [h for h in taxonomy.heads if h.name == "damage"][0].index("scratch")
    good = next(i for i, s in enumerate(rows) if shows_no_defect(s.labels, taxonomy))
    item = wrapped[good]
    assert item["damage"][scratch] == 1.0 and item["condition_mask"] == 0.0
    assert base[good]["damage"][scratch] == 0.0  # the plain dataset is untouched
    assert len(wrapped) == len(base)


def test_parse_option_with_labels() -> None:
    option = parse_synthetic_damage("cutpaste=broken_small,texture@0.5")
    assert option is not None and option.kinds == ("cutpaste", "texture")
    assert option.label("cutpaste") == "broken_small"
    assert option.label("texture") == "stain"  # unnamed: the default damage label


def test_single_label_head_learns_the_named_class(tmp_path: Path) -> None:
    # MVTec-style task: one single-label `defect` head whose first label is "good"
    from PIL import Image

    from inspection.card import PreprocessSpec
    from inspection.manifest import Sample, read_manifest, write_manifest
    from inspection.taxonomy import Taxonomy
    from training.data import InspectionDataset
    from training.synthetic_damage import SyntheticDamageDataset

    taxonomy = Taxonomy.from_dict({"name": "bottle", "heads": {
        "defect": {"type": "single", "labels": ["good", "broken_small", "contamination"]}}})
    samples = []
    for index, label in enumerate(["good", "contamination"]):
        Image.fromarray(np.full((40, 40, 3), 90 + 60 * index, np.uint8)).save(tmp_path / f"{index}.png")
        samples.append(Sample(image=f"{index}.png", item_id=str(index), split="train",
                              labels={"defect": (label,)}))
    manifest = read_manifest(write_manifest(tmp_path / "m.csv", samples, ["defect"]))
    base = InspectionDataset(manifest, manifest.samples, taxonomy, [], PreprocessSpec(input_size=32))
    wrapped = SyntheticDamageDataset(base, "cutpaste=broken_small@1")
    assert int(wrapped[0]["defect"]) == 1  # the good photo became broken_small
    assert int(wrapped[1]["defect"]) == 2  # a real defect keeps its own label
    assert int(base[0]["defect"]) == 0


def test_a_label_no_head_has_is_refused(tmp_path: Path) -> None:
    from tiny_checkpoint import write_photo_set

    from inspection.card import PreprocessSpec
    from inspection.manifest import read_manifest
    from inspection.taxonomy import load_taxonomy
    from training.data import InspectionDataset
    from training.synthetic_damage import SyntheticDamageDataset

    manifest = read_manifest(write_photo_set(tmp_path))
    base = InspectionDataset(manifest, manifest.samples, load_taxonomy(), ["phone"],
                             PreprocessSpec(input_size=32))
    with pytest.raises(ValueError, match="rust_spot"):
        SyntheticDamageDataset(base, "cutpaste=rust_spot@0.3")
