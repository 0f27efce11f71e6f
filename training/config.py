"""The training configuration: a typed dataclass filled from defaults, then an optional YAML
recipe (`--recipe`), then command-line flags, each overriding the one before. Saved with the run
as `config.yaml`, and inside every checkpoint, so a run can be reproduced and resumed.
Relative paths in a recipe are read from the current directory, like those on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from inspection.errors import InputError
from inspection.taxonomy import taxonomy_beside
from inspection.yamlfile import read_yaml
from training.backbone import BACKBONES
from training.presets import PRESETS

BALANCE_MODES = ("none", "weights", "sampler")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    manifest: str = ""
    taxonomy: str = ""  # empty: taxonomy.yaml beside the manifest if present, else the default
    out: str = ""  # run folder; empty: runs/<UTC timestamp>
    backbone: str = "efficientnet_lite0"
    input_size: int = 224
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3  # heads; the backbone gets lr * backbone_lr_scale
    backbone_lr_scale: float = 0.3
    full_rate_steps: int = 60  # shorter runs train at lr x steps / this (engine.short_run_scale)
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5  # every measured recipe and the default bundle (BENCHMARKS.md, issue 10)
    # LP-FT (training/probe.py): the heads are fitted on frozen features first, then the last
    # blocks train with every BatchNorm's statistics kept. Measured against random heads, a
    # frozen epoch and batch statistics (BENCHMARKS.md, issue 10).
    freeze_epochs: int = 0  # head-only epochs (on photos, augmented) before the blocks train
    probe_steps: int = 300  # full-batch steps fitting the heads on frozen features; 0: no probe
    probe_lr: float = 0.01  # a linear head on frozen features converges at 1e-2 (bench/head_probe.py)
    frozen_bn: bool = True  # BatchNorm keeps its running statistics while blocks train
    unfreeze_blocks: int | str = 2  # last N of the 7 blocks (+ head conv); 'all' adds the stem
    augment: str = "none"  # every preset cost accuracy on real photos (training/presets.py)
    balance: str = "weights"
    label_smoothing: float = 0.05
    mixup_alpha: float = 0.0  # > 0: photos blended pairwise in training (engine.mixup_loss)
    cutmix_alpha: float = 0.0  # > 0: a box of another photo pasted in (engine.cutmix_loss)
    ema_decay: float = 0.0  # > 0: val and best.pt use the weights' moving average (engine.WeightAverage)
    embedding_weight: float = 0.5  # weight of the category loss that shapes the embedding
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CPU and CUDA: faster on both (bench training, BENCHMARKS.md)
    num_workers: int = 0
    patience: int = 0  # epochs without a better val score before stopping; 0 = never
    resume: str = ""  # a last.pt to continue from
    max_train_batches: int = 0  # 0 = all; tests use a few
    threads: int = 0  # torch CPU threads; 0 = os.cpu_count()
    synthetic_damage: str = ""  # e.g. "cutpaste,texture,scratch@0.3": damage drawn on good photos
    dropout: float = 0.2  # on the features before the heads
    world_size: int = 1  # processes that trained the run (torchrun); recorded, not a flag

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


RECORDED = {"world_size"}  # facts about a run, saved with it; never set by hand
CHOICES = {"backbone": sorted(BACKBONES), "augment": list(PRESETS), "balance": list(BALANCE_MODES),
           "device": list(DEVICES)}
HELP = {
    "manifest": "CSV or JSONL manifest with train/val splits",
    "taxonomy": "taxonomy YAML; empty: taxonomy.yaml beside the manifest, else the packaged one",
    "out": "run folder; empty: runs/<UTC timestamp>",
    "unfreeze_blocks": "after the frozen epochs, train the last N backbone blocks, or 'all'",
    "balance": "weights: class-weighted loss; sampler: balanced batches",
    "resume": "continue from a last.pt (same epoch, optimizer and schedule)",
    "synthetic_damage": "damage drawn on good training photos, e.g. 'cutpaste,texture,scratch@0.3'",
    "probe_steps": "fit the heads on the frozen backbone's features first, in this many steps "
                   "(training/probe.py); 0: start from random heads",
    "frozen_bn": "keep every BatchNorm's running statistics while the blocks train",
    "mixup_alpha": "blend training photos pairwise at Beta(alpha, alpha) and their losses alike "
                   "(e.g. 0.4); 0: off",
    "cutmix_alpha": "paste a box of another training photo into each, its area ~ Beta(alpha, "
                    "alpha), and blend the two losses by area (e.g. 1.0); 0: off",
    "ema_decay": "average the weights over the fine-tune's steps with this decay (e.g. 0.9); val "
                 "scores and best.pt keep the average; 0: off",
    "full_rate_steps": "a run of fewer optimizer steps trains at lr x steps / this; 0: always "
                       "the full rate",
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field; unset flags stay absent so a recipe's values are not overwritten."""
    parser.add_argument("--recipe", help="YAML file of config fields; flags override it")
    for field in fields(TrainConfig):
        if field.name in RECORDED:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        kind = _parse_unfreeze if field.name == "unfreeze_blocks" else type(default)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=f"(default {default})")
        else:
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS,
                                choices=CHOICES.get(field.name), metavar=field.name.upper(),
                                help=_help(field.name, default))


def _help(name: str, default: Any) -> str:
    choices = f"one of {', '.join(CHOICES[name])}; " if name in CHOICES else ""
    return f"{HELP.get(name, '')} ({choices}default {default!r})".strip()


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {}
    recipe = getattr(args, "recipe", None)
    if recipe:
        values.update(read_recipe(Path(recipe)))
    names = {field.name for field in fields(TrainConfig)}
    values.update({key: value for key, value in vars(args).items() if key in names})
    return finish(TrainConfig(**values))


def read_recipe(path: Path) -> dict[str, Any]:
    data = read_yaml(path, "recipe") or {}
    if not isinstance(data, dict):
        raise InputError("a recipe is a mapping of config fields", path)
    types = {field.name: type(field.default) for field in fields(TrainConfig)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in types:
            raise InputError(f"unknown field {key!r}; known: {sorted(types)}", path)
        try:
            values[name] = _parse_unfreeze(value) if name == "unfreeze_blocks" else \
                _coerce(value, types[name])
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise InputError(f"{key}: {exc}", path) from None
    return values


def _coerce(value: Any, kind: type) -> Any:
    if kind is bool and not isinstance(value, bool):
        msg = f"expected true or false, got {value!r}"
        raise ValueError(msg)
    return "" if value is None and kind is str else kind(value)


def _parse_unfreeze(value: Any) -> int | str:
    if str(value) == "all":
        return "all"
    try:
        return int(value)
    except (TypeError, ValueError):
        msg = f"expected a number of blocks or 'all', got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None


def finish(config: TrainConfig) -> TrainConfig:
    """Fill derived defaults and reject values no run could use, naming the flag."""
    if not config.manifest:
        raise InputError("a manifest is required", "--manifest")
    if not config.taxonomy:
        beside = taxonomy_beside(config.manifest)
        config.taxonomy = str(beside) if beside.is_file() else ""
    if not config.out:
        config.out = str(Path("runs") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
    checks = [
        ("--backbone", config.backbone in BACKBONES, f"one of {sorted(BACKBONES)}"),
        ("--augment", config.augment in PRESETS, f"one of {list(PRESETS)}"),
        ("--balance", config.balance in BALANCE_MODES, f"one of {BALANCE_MODES}"),
        ("--device", config.device in DEVICES, f"one of {DEVICES}"),
        ("--epochs", config.epochs >= 1, "at least 1"),
        ("--batch-size", config.batch_size >= 1, "at least 1"),
        ("--input-size", 32 <= config.input_size <= 1024, "between 32 and 1024"),
        ("--freeze-epochs", config.freeze_epochs >= 0, "0 or more"),
        ("--probe-steps", config.probe_steps >= 0, "0 or more"),
        ("--full-rate-steps", config.full_rate_steps >= 0, "0 or more"),
        ("--ema-decay", 0.0 <= config.ema_decay < 1.0, "in [0, 1)"),
        ("--mixup-alpha", config.mixup_alpha >= 0.0, "0 or more"),
        ("--cutmix-alpha", config.cutmix_alpha >= 0.0 and not (config.cutmix_alpha and config.mixup_alpha),
         "0 or more, and 0 when --mixup-alpha is set (one way of mixing photos at a time)"),
        ("--probe-lr", config.probe_lr > 0, "above 0"),
        ("--dropout", 0.0 <= config.dropout < 1.0, "in [0, 1)"),
        ("--unfreeze-blocks", config.unfreeze_blocks == "all" or 0 <= int(config.unfreeze_blocks) <= 7,
         "0..7 or 'all'"),
    ]
    for flag, ok, expected in checks:
        if not ok:
            raise InputError(f"must be {expected}, got {getattr(config, flag[2:].replace('-', '_'))!r}",
                             flag)
    return config
