"""`returns-inspect train` end to end on 16 tiny generated photos: checkpoints, resume, recipes,
and the one-line errors for a CUDA request without CUDA and an unknown label."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from inspection.cli import main as cli
from inspection.manifest import Sample, write_manifest
from training.model import load_checkpoint

CATEGORIES = ("phone", "headphones", "shoe", "boxed_kit")
GRADES = ("A", "B", "C", "D")
FAST = ["--input-size", "64", "--batch-size", "4", "--max-train-batches", "2", "--threads", "1",
        "--freeze-epochs", "0", "--unfreeze-blocks", "1"]


def draw_photo(rng: np.random.Generator, category: int, damaged: bool) -> np.ndarray:
    """A grey tray with a coloured block per category; damage is a dark diagonal line."""
    photo = np.full((64, 64, 3), 200, np.uint8)
    colour = np.array([(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)][category])
    top, left = rng.integers(4, 20, 2)
    photo[top:top + 36, left:left + 36] = colour
    if damaged:
        for step in range(30):
            photo[top + step, left + step] = 0
    return photo


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    samples = []
    for index in range(16):
        category, damaged = index % 4, index % 3 == 0
        name = f"photo{index:02d}.png"
        Image.fromarray(draw_photo(rng, category, damaged)).save(root / name)
        labels = {"condition": (GRADES[3 if damaged else index % 3],),
                  "damage": ("scratch",) if damaged else (),
                  "accessories": ("box",) if index % 2 else ()}
        samples.append(Sample(image=name, item_id=f"item{index}", category=CATEGORIES[category],
                              split="val" if index >= 12 else "train", labels=labels))
    return write_manifest(root / "manifest.csv", samples, ["condition", "damage", "accessories"])


def test_tiny_run_writes_checkpoints_that_load(manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli(["train", "--manifest", str(manifest), "--out", str(run), "--epochs", "1", *FAST]) == 0
    for name in ("best.pt", "last.pt", "config.yaml", "history.jsonl"):
        assert (run / name).is_file(), name
    model, checkpoint = load_checkpoint(run / "best.pt")
    expected = {"model", "taxonomy", "preprocessing", "backbone", "embedding_dim", "config",
                "epoch", "metrics", "manifest", "manifest_sha256", "optimizer", "scheduler",
                "code_version", "libraries"}
    assert expected <= set(checkpoint)
    assert checkpoint["libraries"]["torch"] == torch.__version__.split("+")[0]
    # epoch 0 is the probe (training/probe.py), kept when the one epoch did not beat it on val
    assert checkpoint["epoch"] in (0, 1) and checkpoint["preprocessing"]["input_size"] == 64
    assert "score" in checkpoint["metrics"] and "condition/accuracy" in checkpoint["metrics"]
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 64, 64))
    assert list(outputs) == model.output_names


def test_resume_continues_from_the_saved_epoch(manifest: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--manifest", str(manifest), "--out", str(run), *FAST]
    assert cli([*args, "--epochs", "1"]) == 0
    first = torch.load(run / "last.pt", weights_only=True)
    assert cli(["train", "--resume", str(run / "last.pt"), "--epochs", "2"]) == 0
    second = torch.load(run / "last.pt", weights_only=True)
    assert second["epoch"] == 2
    # The schedule went on counting steps rather than restarting at warmup.
    assert second["scheduler"]["last_epoch"] == 2 * first["scheduler"]["last_epoch"]
    epochs = [json.loads(line)["epoch"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2]  # the probe once, then an epoch per run; none repeated


def test_recipe_fills_config_and_flags_override(manifest: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"epochs": 1, "lr": 0.01, "augment": "strong",
                                      "batch-size": 8}))
    run = tmp_path / "run"
    assert cli(["train", "--recipe", str(recipe), "--manifest", str(manifest), "--out", str(run),
                *FAST]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["lr"] == 0.01 and saved["augment"] == "strong"  # from the recipe
    assert saved["batch_size"] == 4 and saved["input_size"] == 64  # flags win


def test_unknown_recipe_field_is_named(manifest: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochz: 3\n")
    assert cli(["train", "--recipe", str(recipe), "--manifest", str(manifest)]) == 2
    assert "epochz" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_names_the_flag(manifest: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(["train", "--manifest", str(manifest), "--out", str(tmp_path / "run"),
                "--device", "cuda"])
    error = capsys.readouterr().err
    assert code == 2 and "--device" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()  # nothing written half


def test_unknown_label_names_file_and_line(manifest: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[2]["condition"] = "Z"  # the third data row: line 4, after the header
    bad = manifest.parent / "bad.csv"
    with open(bad, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code = cli(["train", "--manifest", str(bad), "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2 and f"{bad}:4" in error and "Z" in error
    assert not (tmp_path / "run").exists()


def test_same_seed_same_run(manifest: Path, tmp_path: Path) -> None:
    args = ["train", "--manifest", str(manifest), "--epochs", "1", "--balance", "sampler", *FAST]
    assert cli([*args, "--out", str(tmp_path / "a")]) == 0
    assert cli([*args, "--out", str(tmp_path / "b")]) == 0
    first, second = (torch.load(tmp_path / run / "last.pt", weights_only=True) for run in "ab")
    assert first["metrics"] == second["metrics"]
    torch.testing.assert_close(first["model"], second["model"])


def train_with_scripted_val(manifest: Path, run: Path, monkeypatch: pytest.MonkeyPatch,
                            scores: list[tuple[float, float]], *args: str) -> tuple[dict, dict]:
    """A tiny run whose val passes answer (loss, score) in the order given; its best.pt and
    last.pt."""
    scripted = iter([{"loss": loss, "score": score} for loss, score in scores])
    monkeypatch.setattr("training.train.evaluate", lambda *a, **kw: dict(next(scripted)))
    assert cli(["train", "--manifest", str(manifest), "--out", str(run), *args, *FAST]) == 0
    best, last = (torch.load(run / name, weights_only=True) for name in ("best.pt", "last.pt"))
    return best, last


def test_equal_val_scores_keep_the_epoch_with_the_lower_val_loss(
        manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A small val split gives the same macro-F1 for several epochs while the model still
    # improves; the first of equals was the least trained checkpoint.
    best, last = train_with_scripted_val(manifest, tmp_path / "run", monkeypatch,
                                         [(3.0, 0.5), (2.0, 0.8), (1.0, 0.8), (0.5, 0.7)],
                                         "--epochs", "4", "--probe-steps", "0")
    assert best["epoch"] == 3
    assert (last["best_score"], last["best_loss"], last["stale_epochs"]) == (0.8, 1.0, 1)


def test_short_run_scale_lowers_the_rate_in_proportion_to_the_missing_steps() -> None:
    from training.engine import short_run_scale

    assert short_run_scale(10, 60) == pytest.approx(10 / 60)
    assert short_run_scale(60, 60) == short_run_scale(600, 60) == 1.0
    assert short_run_scale(0, 60) == pytest.approx(1 / 60)  # never a zero rate
    assert short_run_scale(5, 0) == 1.0  # 0 turns it off


def test_a_short_run_follows_the_same_schedule_at_the_scaled_rate(manifest: Path,
                                                                   tmp_path: Path) -> None:
    rates = {}
    for full_rate_steps in (8, 0):  # 1 epoch of 2 batches: 2 optimizer steps, x 2/8 and x 1
        run = tmp_path / f"run{full_rate_steps}"
        assert cli(["train", "--manifest", str(manifest), "--out", str(run), "--epochs", "1",
                    "--full-rate-steps", str(full_rate_steps), *FAST]) == 0
        history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        rates[full_rate_steps] = (history[-1]["lr_backbone"], history[-1]["lr_heads"])
        groups = torch.load(run / "last.pt", weights_only=True)["optimizer"]["param_groups"]
        assert [group["lr"] for group in groups] == pytest.approx(
            [rates[full_rate_steps][0]] * 2 + [rates[full_rate_steps][1]] * 2)
    assert rates[0][1] > 0 and rates[0][0] == pytest.approx(0.3 * rates[0][1])  # backbone x 0.3
    assert rates[8] == pytest.approx((rates[0][0] * 2 / 8, rates[0][1] * 2 / 8))


def test_weight_average_moves_towards_the_live_weights_and_copies_counters() -> None:
    from training.engine import WeightAverage

    live = torch.nn.BatchNorm1d(2)
    average = WeightAverage(live, decay=0.75)  # type: ignore[arg-type]
    with torch.no_grad():
        live.weight.fill_(5.0)  # from 1.0
        live.num_batches_tracked.fill_(7)
    average.update(live)  # type: ignore[arg-type]
    torch.testing.assert_close(average.model.weight, torch.full((2,), 0.75 * 1.0 + 0.25 * 5.0))
    assert int(average.model.num_batches_tracked) == 7
    assert not average.model.weight.requires_grad


def test_with_ema_val_scores_the_average_and_best_pt_keeps_it(
        manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    # the probe, then two epochs, each better on val: best.pt is epoch 2
    best, last = train_with_scripted_val(manifest, run, monkeypatch,
                                         [(3.0, 0.5), (2.0, 0.6), (1.0, 0.7)],
                                         "--epochs", "2", "--ema-decay", "0.5")
    assert best["epoch"] == 2
    for name, weights in best["model"].items():  # the average, not the live weights
        torch.testing.assert_close(weights, last["ema_model"][name])
    trained = [name for name in last["model"] if "blocks.6" in name and "weight" in name]
    assert any(not torch.equal(last["model"][name], last["ema_model"][name]) for name in trained)
    # resumed, last.pt still carries the average beside the live weights
    monkeypatch.undo()
    assert cli(["train", "--resume", str(run / "last.pt"), "--epochs", "3"]) == 0
    resumed = torch.load(run / "last.pt", weights_only=True)
    assert resumed["epoch"] == 3 and "ema_model" in resumed


def test_patience_counts_from_the_fine_tune_not_from_the_probe(
        manifest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # LP-FT's first fine-tuned epochs score below the probe and then climb: patience 2 must
    # not stop them at epoch 2 because they had not passed the probe yet
    best, last = train_with_scripted_val(manifest, tmp_path / "climbs", monkeypatch,
                                         [(1.0, 0.9), (3.0, 0.3), (2.0, 0.5), (1.5, 0.6)],
                                         "--epochs", "3", "--patience", "2")
    assert (last["epoch"], last["stale_epochs"]) == (3, 0)
    assert best["epoch"] == 0  # the probe is still best.pt: no epoch beat it on val
    # a fine-tune that stops improving on itself still stops
    monkeypatch.undo()
    best, last = train_with_scripted_val(manifest, tmp_path / "stalls", monkeypatch,
                                         [(1.0, 0.9), (2.0, 0.5), (2.5, 0.4), (2.6, 0.3),
                                          (0.5, 0.95)], "--epochs", "4", "--patience", "2")
    assert (last["epoch"], last["stale_epochs"]) == (3, 2)


def _random_model_and_batch() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """An untrained model of the default taxonomy and a labelled batch of three noise photos."""
    from inspection.taxonomy import load_taxonomy
    from training.model import build_model

    torch.manual_seed(0)
    model = build_model(load_taxonomy(), pretrained=False).eval()
    batch = {"image": torch.randn(3, 3, 64, 64), "category": torch.tensor([0, 1, -1])}
    for head in model.taxonomy.heads:
        batch[f"{head.name}_mask"] = torch.ones(3)
        batch[head.name] = (torch.tensor([0, 1, 2]) if head.type == "single"
                            else torch.randint(0, 2, (3, len(head.labels))).float())
    return model, batch


def test_mixup_at_a_share_of_one_is_the_plain_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    from training.engine import LossSettings, compute_loss, mixup_loss

    model, batch = _random_model_and_batch()
    settings = LossSettings(mixup_alpha=0.4)
    with torch.no_grad():
        plain, _ = compute_loss(model, model(batch["image"]), batch, settings)
        monkeypatch.setattr("training.engine.np.random.beta", lambda *_: 1.0)
        torch.testing.assert_close(mixup_loss(model, batch, settings), plain)
        monkeypatch.setattr("training.engine.np.random.beta", lambda *_: 0.5)
        assert not torch.allclose(mixup_loss(model, batch, settings), plain)


def test_cutmix_with_no_box_or_a_whole_photo_box_is_the_plain_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    """Share 1: nothing pasted. Share 0: each photo wholly its partner's, with its partner's
    labels, which the batch-mean loss cannot tell from the batch itself. In between it differs."""
    from training.engine import LossSettings, compute_loss, cutmix_loss

    model, batch = _random_model_and_batch()
    settings = LossSettings(cutmix_alpha=1.0)
    monkeypatch.setattr("training.engine.np.random.randint", lambda side: side // 2)  # centred box
    with torch.no_grad():
        plain, _ = compute_loss(model, model(batch["image"]), batch, settings)
        for share in (1.0, 0.0):
            monkeypatch.setattr("training.engine.np.random.beta", lambda *_, s=share: s)
            torch.testing.assert_close(cutmix_loss(model, batch, settings), plain)
        monkeypatch.setattr("training.engine.np.random.beta", lambda *_: 0.5)
        monkeypatch.setattr("training.engine.torch.randperm", lambda n, device=None: torch.tensor([1, 2, 0]))
        assert not torch.allclose(cutmix_loss(model, batch, settings), plain)


def test_mixup_and_cutmix_are_one_at_a_time(manifest: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["train", "--manifest", str(manifest), "--out", str(tmp_path / "run"),
                "--mixup-alpha", "0.4", "--cutmix-alpha", "1", *FAST]) == 2
    assert "--cutmix-alpha" in capsys.readouterr().err


def test_a_mixup_run_trains(manifest: Path, tmp_path: Path) -> None:
    losses = {}
    for name, flags in (("plain", []), ("mixup", ["--mixup-alpha", "0.4"]),
                        ("cutmix", ["--cutmix-alpha", "1.0"])):
        run = tmp_path / name
        assert cli(["train", "--manifest", str(manifest), "--out", str(run), "--epochs", "1",
                    *flags, *FAST]) == 0
        losses[name] = json.loads((run / "history.jsonl").read_text().splitlines()[-1])["train/loss"]
    # the same seed, mixed photos
    assert losses["mixup"] != pytest.approx(losses["plain"])
    assert losses["cutmix"] != pytest.approx(losses["plain"])
