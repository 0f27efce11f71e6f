"""dataset synth: deterministic by seed, whatever the worker count; labels agree with masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspection.dataset.synth import generate
from inspection.dataset.synth.plan import plan_items
from inspection.manifest import file_sha256, read_manifest
from inspection.taxonomy import load_taxonomy

PHOTOS, SIZE = 12, 96


@pytest.fixture(scope="module")
def sample_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    generate(out, PHOTOS, SIZE, seed=3, taxonomy=load_taxonomy(), workers=1, progress=False)
    return out


def test_same_seed_gives_the_same_bytes_and_labels(sample_set: Path, tmp_path: Path) -> None:
    generate(tmp_path / "b", PHOTOS, SIZE, seed=3, taxonomy=load_taxonomy(), workers=1, progress=False)
    assert (tmp_path / "b" / "manifest.csv").read_text() == (sample_set / "manifest.csv").read_text()
    for mask in sorted((sample_set / "masks").glob("*.png")):
        assert file_sha256(mask) == file_sha256(tmp_path / "b" / "masks" / mask.name)


def test_another_seed_gives_other_photos(sample_set: Path, tmp_path: Path) -> None:
    generate(tmp_path / "c", PHOTOS, SIZE, seed=4, taxonomy=load_taxonomy(), workers=1, progress=False)
    assert (tmp_path / "c" / "manifest.csv").read_text() != (sample_set / "manifest.csv").read_text()


def test_manifest_rows_match_files_and_masks(sample_set: Path) -> None:
    manifest = read_manifest(sample_set / "manifest.csv", load_taxonomy(sample_set / "taxonomy.yaml"))
    assert len(manifest.samples) == PHOTOS
    for sample in manifest.samples:
        assert file_sha256(manifest.image_path(sample)) == sample.sha256
        assert Image.open(manifest.image_path(sample)).size == (SIZE, SIZE)
        damaged = bool(sample.labels["damage"])
        assert bool(sample.mask) == damaged
        if damaged:
            mask = np.asarray(Image.open(manifest.mask_path(sample)))
            assert mask.shape == (SIZE, SIZE) and mask.max() == 255, sample.image
        grade = sample.labels["condition"][0]
        assert (grade in ("A", "B")) == (not damaged), (grade, sample.labels["damage"])
        kit = load_taxonomy().kits[sample.category]
        assert set(sample.labels["accessories"]) <= set(kit)


def test_photos_of_one_item_share_split_and_labels(sample_set: Path) -> None:
    manifest = read_manifest(sample_set / "manifest.csv")
    by_item: dict[str, set] = {}
    for sample in manifest.samples:
        key = (sample.split, sample.category, sample.sku, tuple(sorted(sample.labels.items())))
        by_item.setdefault(sample.item_id, set()).add(key)
    assert all(len(keys) == 1 for keys in by_item.values())
    assert len(by_item) < PHOTOS  # some items have several photos


def test_grades_and_categories_are_balanced() -> None:
    items = plan_items(load_taxonomy(), 800, seed=0)
    blocks = len(items) // 16 * 16  # complete blocks of every (category, grade) pair
    grades = np.bincount([item.grade for item in items[:blocks]], minlength=4)
    assert grades.min() == grades.max()
    heavy = [item for item in items if item.grade == 3]
    assert all(set(item.damage) & {"crack", "tear", "broken_part"} for item in heavy)
    light = [item for item in items if item.grade == 2]
    assert all(item.damage and set(item.damage) <= {"scratch", "dent", "stain"} for item in light)


def test_worker_count_does_not_change_the_output(sample_set: Path, tmp_path: Path) -> None:
    generate(tmp_path / "w", PHOTOS, SIZE, seed=3, taxonomy=load_taxonomy(), workers=2, progress=False)
    assert (tmp_path / "w" / "manifest.csv").read_text() == (sample_set / "manifest.csv").read_text()
