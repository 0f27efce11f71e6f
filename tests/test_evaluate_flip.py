"""`evaluate --flip-tta`: each photo's logits averaged with its mirror image's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_factory import CRACKED_ITEM, build_bundle
from tiny_checkpoint import write_photo_set

from inspection.cli import main as cli


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
