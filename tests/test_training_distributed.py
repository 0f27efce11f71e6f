"""Training under torchrun with DDP on CPU (gloo): two processes on the same global batch end
where one process ends, only rank 0 writes and logs, the run records its world size, and a
resumed two-process run continues the same schedule. 64 px photos, two steps per epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_training_train import manifest  # noqa: F401 - the tiny labelled set, as a fixture

pytestmark = pytest.mark.slow

# Heads only (the backbone's BatchNorm frozen), no dropout, no augmentation: the arithmetic of
# one process and of two is then the same up to the order of floating-point sums. No probe: the
# epochs' arithmetic is what is compared (every rank fits the probe on all train photos alike).
SAME_MATH = ["--input-size", "64", "--batch-size", "4", "--max-train-batches", "2", "--threads", "1",
             "--freeze-epochs", "1", "--unfreeze-blocks", "1", "--dropout", "0", "--augment", "none",
             "--probe-steps", "0", "--full-rate-steps", "0",  # a 1-epoch leg would plan a lower rate
             "--warmup-epochs", "1"]  # a 1-epoch leg all in warm-up: its rates do not depend on its length


def torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "training.train", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def returns_inspect_train(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "inspection.cli", "train", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def load(run: Path) -> dict:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=True)


def test_two_gloo_processes_match_one_process(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    one, two = tmp_path / "one", tmp_path / "two"
    torchrun(1, "--manifest", str(manifest), "--out", str(one), "--epochs", "1", *SAME_MATH)
    done = returns_inspect_train("--nproc", "2", "--manifest", str(manifest), "--out", str(two),
                                 "--epochs", "1", *SAME_MATH)
    assert done.stderr.count("world_size: 2") == 1  # rank 0 logs, rank 1 does not
    first, second = load(one), load(two)
    assert first["config"]["world_size"] == 1 and second["config"]["world_size"] == 2
    assert yaml.safe_load((two / "config.yaml").read_text())["world_size"] == 2
    torch.testing.assert_close(second["model"], first["model"], rtol=1e-4, atol=1e-5)
    # Adam's first moments are running means of the gradients: DDP's averaged gradients over
    # two half batches equal one process's gradients over the whole batch.
    moments = [c["optimizer"]["state"] for c in (first, second)]
    assert moments[0] and all(int(s["step"]) == 2 for s in moments[0].values())
    for index, state in moments[0].items():
        assert state["exp_avg"].abs().sum() > 0
        torch.testing.assert_close(moments[1][index]["exp_avg"], state["exp_avg"],
                                   rtol=1e-3, atol=1e-7)
    # Metrics are over the whole val set: two shards gathered equal one process's pass.
    for key in ("loss", "score", "condition/accuracy", "damage/mean_ap"):
        assert second["metrics"][key] == pytest.approx(first["metrics"][key], rel=1e-4, abs=1e-5)
    assert len((two / "history.jsonl").read_text().splitlines()) == 1  # written once, by rank 0
    assert sorted(p.name for p in two.iterdir()) == ["best.pt", "config.yaml", "history.jsonl",
                                                     "last.pt"]


def test_resumed_two_process_run_continues_the_schedule(manifest: Path,  # noqa: F811
                                                        tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    args = ["--manifest", str(manifest), *SAME_MATH]
    torchrun(2, *args, "--out", str(whole), "--epochs", "2")
    torchrun(2, *args, "--out", str(resumed), "--epochs", "1")
    torchrun(2, "--resume", str(resumed / "last.pt"), "--epochs", "2")
    history = [[json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
               for run in (whole, resumed)]
    assert [r["epoch"] for r in history[1]] == [1, 2] and [r["phase"] for r in history[1]] == [
        "heads", "blocks:1"]
    for key in ("lr_backbone", "lr_heads"):  # the same learning rates at the same steps
        assert [r[key] for r in history[1]] == pytest.approx([r[key] for r in history[0]])
    a, b = load(whole), load(resumed)
    assert b["scheduler"]["last_epoch"] == a["scheduler"]["last_epoch"] == 4
    assert b["config"]["world_size"] == 2
    torch.testing.assert_close(b["model"], a["model"], rtol=1e-4, atol=1e-5)
