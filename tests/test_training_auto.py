"""`returns-inspect train --auto`: the candidates' table, the winner kept, the budget obeyed and
the test split never read, on a tiny generated set; plus the budget parser's edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import training.auto as auto
import training.data
from inspection.cli import main as cli
from inspection.errors import InputError
from inspection.manifest import Sample, write_manifest
from training.model import load_checkpoint

TINY = ["--input-size", "48", "--batch-size", "4", "--epochs", "2", "--freeze-epochs", "0",
        "--threads", "1"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 train and 4 val photos (grade A: plain, D: a dark stripe); 4 test rows whose photos
    do not exist, so reading one would fail."""
    root = tmp_path_factory.mktemp("auto")
    rng = np.random.default_rng(0)
    samples = []
    for index in range(20):
        damaged = index % 2 == 1
        split = "train" if index < 12 else "val" if index < 16 else "test"
        name = f"photo{index:02d}.png"
        if split != "test":
            photo = rng.integers(150, 220, (48, 48, 3), dtype=np.uint8)
            if damaged:
                photo[20:28] = 0
            Image.fromarray(photo).save(root / name)
        samples.append(Sample(image=name, item_id=f"item{index}", category="phone", split=split,
                              labels={"condition": ("D" if damaged else "A",)}))
    return write_manifest(root / "manifest.csv", samples, ["condition"])


@pytest.mark.slow
def test_auto_keeps_the_best_candidate_within_the_budget(
        manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    read: list[Path] = []
    real_load = training.data.load_photo

    def recording_load(path: Path, **options: Any) -> Any:
        read.append(Path(path))
        return real_load(path, **options)

    monkeypatch.setattr(training.data, "load_photo", recording_load)
    real_measure = auto.measure_step
    # Lite2's step is made to look an hour long: it must be skipped, not run past the budget.
    monkeypatch.setattr(auto, "measure_step", lambda candidate, config: 3600.0
                        if candidate.backbone == "efficientnet_lite2" else real_measure(candidate, config))
    run = tmp_path / "run"
    assert cli(["train", "--auto", "--budget", "10m", "--manifest", str(manifest), "--out", str(run),
                *TINY]) == 0

    record = json.loads((run / "auto.json").read_text())
    rows = {row["name"]: row for row in record["candidates"]}
    assert list(rows) == [c.name for c in auto.candidates(48)]
    lite2 = rows["lite2-56px-blocks2"]
    assert lite2["status"].startswith("skipped: needs") and lite2["val_score"] is None
    trained = [row for row in rows.values() if row["status"] == "trained"]
    assert len(trained) >= 2 and all(0.0 <= row["val_score"] <= 1.0 for row in trained)
    # epochs counted without the probe's epoch 0, which best.pt may keep (training/probe.py)
    assert all(1 <= row["epochs_run"] <= 2 and 0 <= row["best_epoch"] <= 2 for row in trained)
    best = max(row["val_score"] for row in trained)
    winner = rows[record["winner"]]
    assert winner["val_score"] == best
    assert winner == next(row for row in trained if row["val_score"] == best)  # ties: the first

    # The winner's checkpoint is the run's result, with the search recorded in it.
    model, checkpoint = load_checkpoint(run / "best.pt")
    assert checkpoint["auto"]["winner"] == record["winner"]
    assert checkpoint["backbone"] == winner["backbone"]
    assert checkpoint["config"]["input_size"] == winner["input_size"]
    assert str(checkpoint["config"]["unfreeze_blocks"]) == str(winner["unfreeze_blocks"])
    with torch.no_grad():
        model(torch.zeros(1, 3, winner["input_size"], winner["input_size"]))
    assert f"| {record['winner']} **winner** |" in (run / "auto.md").read_text()
    assert "**winner**" in capsys.readouterr().out

    test_photos = {manifest.parent / f"photo{index:02d}.png" for index in range(16, 20)}
    assert read and not test_photos & set(read)


def test_auto_needs_a_val_split(manifest: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    no_val = manifest.parent / "no_val.csv"
    no_val.write_text(manifest.read_text().replace(",val,", ",train,"))
    assert ",val," not in no_val.read_text()
    code = cli(["train", "--auto", "--manifest", str(no_val), "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and "val" in error and str(no_val) in error and "Traceback" not in error


@pytest.mark.parametrize(("text", "seconds"), [("20m", 1200), ("90s", 90), ("1h", 3600),
                                                ("45", 45), ("1.5m", 90)])
def test_budget_units(text: str, seconds: float) -> None:
    assert auto.parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "0m", "twenty", "20 minutes", "-5s"])
def test_bad_budget_names_the_flag(text: str) -> None:
    with pytest.raises(InputError, match="--budget|budget"):
        auto.parse_budget(text)


def test_candidates_scale_with_input_size_and_start_with_the_default() -> None:
    names = [c.name for c in auto.candidates(224)]
    assert names == ["lite0-224px-blocks2", "lite0-224px-blocks4", "lite0-224px-blocksall",
                     "lite0-320px-blocks2", "lite1-240px-blocks2", "lite2-260px-blocks2"]
    assert [c.input_size for c in auto.candidates(112)] == [112, 112, 112, 160, 120, 130]


def test_load_factor_is_per_epoch_run() -> None:
    # 4 of 10 epochs in 40 s against 100 s estimated for 10: on time, not 2.5x fast.
    assert auto.load_factor(40.0, 100.0, 4, 10) == pytest.approx(1.0)
    assert auto.load_factor(80.0, 100.0, 4, 10) == pytest.approx(2.0)  # a busier machine
    assert auto.load_factor(50.0, 100.0, 10, 10) == pytest.approx(0.5)
