"""`evaluate --flip-tta`: each photo's logits averaged with its mirror image's."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import CRACKED_ITEM, build_bundle
from tiny_checkpoint import write_photo_set

from inspection.card import PreprocessSpec
from inspection.cli import main as cli
from inspection.manifest import read_manifest
from inspection.taxonomy import Taxonomy, load_taxonomy
from training.predictions import collect_logits


@dataclass
class Card:
    preprocessing: PreprocessSpec


class LeftRightEngine:
    """Stands in for a bundle: every head's logits are (left half - right half, whole) brightness,
    so the first is odd under a left-right mirror and the second is not."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.card = Card(PreprocessSpec(input_size=32))

    def iter_raw(self, photos: Sequence[np.ndarray], batch_size: int = 32,
                 outputs: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(photos), batch_size):
            rows = []
            for photo in photos[start:start + batch_size]:
                grey = photo.astype(np.float64).mean(axis=2)
                half = grey.shape[1] // 2
                rows.append([grey[:, :half].mean() - grey[:, -half:].mean(), grey.mean()])
            yield {name: np.array(rows) for name in outputs or ()}


def test_flip_averages_a_photo_with_its_left_right_mirror(tmp_path: Path) -> None:
    manifest = read_manifest(write_photo_set(tmp_path / "photos"))
    engine = LeftRightEngine(load_taxonomy())
    plain = collect_logits(engine, manifest, manifest.samples)  # type: ignore[arg-type]
    flipped = collect_logits(engine, manifest, manifest.samples, flip=True)  # type: ignore[arg-type]
    for head in engine.taxonomy.heads:
        asymmetry, brightness = plain.logits[head.name].T
        assert np.abs(asymmetry).max() > 1.0  # the boxes sit off-centre: the check can fail
        # A left-right mirror negates the asymmetry (a top-bottom one would not) ...
        np.testing.assert_allclose(flipped.logits[head.name][:, 0], 0.0, atol=1e-9)
        # ... and leaves what is symmetric alone.
        np.testing.assert_allclose(flipped.logits[head.name][:, 1], brightness)


def test_evaluate_records_the_flip_and_refuses_it_in_the_card(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_photo_set(tmp_path / "photos")
    bundle = build_bundle(tmp_path / "bundle", biases=CRACKED_ITEM)  # one answer whatever the photo
    out = tmp_path / "eval"
    assert cli(["evaluate", "--bundle", str(bundle), "--manifest", str(manifest), "--out", str(out),
                "--flip-tta"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_time_augmentation"] == "horizontal flip"
    assert metrics["heads"]["condition"]["accuracy"] == pytest.approx(0.3)  # as without the flip
    code = cli(["evaluate", "--bundle", str(bundle), "--manifest", str(manifest),
                "--out", str(tmp_path / "eval2"), "--flip-tta", "--update-card"])
    assert code == 2 and "--update-card" in capsys.readouterr().err
