"""LP-FT's linear probe (training/probe.py): the heads fitted on cached pooled features give the
model exactly what the same heads give on the full feature map, the probe lowers the training
loss, and a run with `--probe-steps` scores the probe on val as epoch 0 and keeps it in best.pt
when no fine-tuned epoch beats it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_training_train import FAST, manifest, train_with_scripted_val  # noqa: F401 - tiny photos

from inspection.cli import main as cli
from inspection.taxonomy import load_taxonomy
from training.engine import LossSettings
from training.model import build_model
from training.probe import fit_heads


def test_a_one_by_one_map_of_pooled_features_gives_the_same_heads() -> None:
    torch.manual_seed(0)
    model = build_model(load_taxonomy(), pretrained=False).eval()
    features = torch.randn(3, 1280, 4, 4)
    whole = model.head_outputs(features)
    pooled = model.head_outputs(features.mean(dim=(2, 3))[:, :, None, None])
    for name in ("condition_logits", "damage_logits", "accessories_logits", "embedding"):
        torch.testing.assert_close(pooled[name], whole[name], atol=1e-5, rtol=1e-5)


def test_fitting_the_heads_lowers_their_loss_and_leaves_the_backbone_alone() -> None:
    torch.manual_seed(0)
    taxonomy = load_taxonomy()
    model = build_model(taxonomy, pretrained=False, categories=["phone", "shoe"])
    backbone = {k: v.clone() for k, v in model.body.state_dict().items()}
    rows = 24
    grade = torch.arange(rows) % 4
    features = torch.randn(rows, 1280) + torch.nn.functional.one_hot(grade, 1280).float() * 4
    cached = {"features": features, "category": torch.arange(rows) % 2,
              "condition": grade, "condition_mask": torch.ones(rows),
              "damage": torch.zeros(rows, 6), "damage_mask": torch.zeros(rows),
              "accessories": torch.zeros(rows, 8), "accessories_mask": torch.zeros(rows)}
    fitted = fit_heads(model, cached, LossSettings(embedding_weight=0.5), steps=100, lr=0.01,
                       weight_decay=0.05)
    assert fitted["last_loss"] < 0.5 * fitted["first_loss"]
    model.eval()
    with torch.no_grad():
        logits = model.head_outputs(features[:, :, None, None])["condition_logits"]
    assert (logits.argmax(dim=1) == grade).all()
    for key, value in model.body.state_dict().items():
        torch.testing.assert_close(value, backbone[key])


def test_a_probed_run_scores_the_probe_as_epoch_zero(manifest: Path,  # noqa: F811
                                                     tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli(["train", "--manifest", str(manifest), "--out", str(run), "--epochs", "1",
                "--probe-steps", "20", *FAST]) == 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [0, 1]
    assert history[0]["phase"] == "probe" and history[0]["probe/photos"] == 12
    assert "val/score" in history[0]


def test_best_pt_keeps_the_probe_when_no_epoch_beats_it(
        manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    best, last = train_with_scripted_val(manifest, tmp_path / "run", monkeypatch,
                                         [(1.0, 0.9), (0.5, 0.8)],
                                         "--epochs", "1", "--probe-steps", "5")
    assert best["epoch"] == 0
    assert (last["epoch"], last["best_score"]) == (1, 0.9)
    # early stopping watches the fine-tune's own best, which its first epoch is
    assert (last["tuned_score"], last["stale_epochs"]) == (0.8, 0)
