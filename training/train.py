"""`returns-inspect train`: fine-tune EfficientNet-Lite on a manifest, torchvision-reference style.

    returns-inspect train --manifest datasets/sample/manifest.csv --recipe datasets/recipes/default.yaml

Phases: a linear probe (`probe_steps`, training/probe.py: the heads fitted on the frozen backbone's
features of the train photos, scored on val as epoch 0), `freeze_epochs` with only the heads
training on photos (the backbone runs without autograd; 0 by default), then the last
`unfreeze_blocks` backbone blocks train too, with their own warmup (`frozen_bn`: their BatchNorm
keeps its running statistics). AdamW, linear
warmup + cosine per step, channels_last (CPU and CUDA), AMP on CUDA. Each epoch writes
`last.pt`, a better val score also `best.pt`, and a line of `history.jsonl`; `--resume last.pt`
continues exactly.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from inspection.card import PreprocessSpec
from inspection.errors import InputError
from inspection.manifest import Manifest, Sample, read_manifest
from inspection.taxonomy import Taxonomy, load_taxonomy
from training import distributed
from training.auto import parse_budget, search
from training.config import TrainConfig, add_config_arguments, config_from_args, finish
from training.data import InspectionDataset, balanced_sampler, class_weights
from training.distributed import World, launched_world
from training.engine import (
    LossSettings,
    WeightAverage,
    evaluate,
    make_optimizer,
    make_scheduler,
    selection_key,
    train_one_epoch,
)
from training.model import InspectionNet, build_model
from training.presets import get_preset
from training.probe import probe_heads
from training.synthetic_damage import SyntheticDamageDataset
from training.versioning import code_version, library_versions

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes on this machine (one per GPU): runs torchrun with DDP")
    parser.add_argument("--auto", action="store_true",
                        help="search backbone, input size, depth and epochs on the val split "
                             "within --budget; keep the best (training/auto.py)")
    parser.add_argument("--budget", default="20m", help="--auto's time budget, e.g. 20m, 90s, 1h")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "auto", False):
        return main_auto(args)
    config = config_from_args(args) if not getattr(args, "resume", "") else resumed_config(args)
    if getattr(args, "nproc", 1) > 1 and not launched_world().launched:
        return launch(config, args.nproc)
    with logging_redirect_tqdm():  # log lines above the progress bars, not through them
        run_dir = train(config)
    if launched_world().is_main:
        print(f"run folder: {run_dir}  (best.pt, last.pt, history.jsonl, config.yaml)")
    return 0


def main_auto(args: argparse.Namespace) -> int:
    if getattr(args, "resume", ""):
        raise InputError("--auto starts its candidates afresh; it cannot --resume", "--resume")
    if getattr(args, "nproc", 1) > 1:
        raise InputError("--auto trains its candidates in one process; drop --nproc", "--nproc")
    budget_s = parse_budget(args.budget)
    config = config_from_args(args)
    with logging_redirect_tqdm():
        run_dir = search(config, budget_s)
    print(f"run folder: {run_dir}  (best.pt and config.yaml of the winner, auto.md, auto.json, "
          f"candidates/)")
    return 0


def resumed_config(args: argparse.Namespace) -> TrainConfig:
    """The resumed run's config, with any flag given now (e.g. more --epochs) on top."""
    path = Path(args.resume)
    if not path.is_file():
        raise InputError("checkpoint to resume not found", "--resume")
    saved = read_checkpoint(path, "--resume")["config"]
    given = {k: v for k, v in vars(args).items() if k in saved}
    return finish(TrainConfig(**{**saved, "out": str(path.parent), **given}))


def train(config: TrainConfig) -> Path:
    world = launched_world()
    device = distributed.device_for(world, config.device)
    torch.set_num_threads(config.threads or distributed.default_threads())
    taxonomy = load_taxonomy(config.taxonomy or None)
    manifest = read_manifest(config.manifest, taxonomy)  # InputError at file:line on bad labels
    check_images(manifest)
    distributed.start(world, device)
    try:
        return train_in_world(config, world, device, taxonomy, manifest)
    finally:
        distributed.stop(world)


def train_in_world(config: TrainConfig, world: World, device: torch.device, taxonomy: Taxonomy,
                   manifest: Manifest) -> Path:
    config.world_size = world.size
    log.info("world_size: %d (%s)", world.size, "torchrun, " + distributed.backend(device)
             if world.launched else "one process")
    # Same seed everywhere: the model starts identical on every rank (DDP checks it).
    seed_everything(config.seed)
    categories = taxonomy.categories or sorted({s.category for s in manifest.samples if s.category})
    spec = PreprocessSpec(input_size=config.input_size)
    train_loader, val_loader = load_data(manifest, taxonomy, categories, spec, config, world)
    cuda = device.type == "cuda"
    # channels_last on the CPU too: depthwise-convolution backward is much slower in the
    # contiguous format (BENCHMARKS.md, "Training throughput": `returns-inspect bench training`).
    channels_last = config.channels_last
    model = build_model(taxonomy, config.backbone, pretrained=not config.resume,
                        categories=categories, dropout=config.dropout)
    model.frozen_bn = config.frozen_bn
    model = distributed.sync_batch_norm(model, world, device).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps = min(len(train_loader), config.max_train_batches or len(train_loader))
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps)
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    use_amp = cuda and config.amp
    autocast = partial(torch.autocast, "cuda", dtype=amp_dtype) if use_amp else nullcontext
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    settings = LossSettings(weights=class_weights(manifest.split("train"), taxonomy)
                            if config.balance == "weights" else {},
                            label_smoothing=config.label_smoothing,
                            embedding_weight=config.embedding_weight,
                            mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha)
    # best_*: the best val of all (the probe included), which best.pt keeps; tuned_*: the best
    # fine-tuned epoch's, which early stopping watches (see `next_state`)
    state: dict[str, Any] = {"epoch": 0, "best_score": -math.inf, "best_loss": math.inf,
                             "tuned_score": -math.inf, "tuned_loss": math.inf, "stale_epochs": 0}
    run_dir = Path(config.out)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    saved_average: dict[str, torch.Tensor] | None = None  # a resumed run's weight average
    if config.resume:
        state, saved_average = restore(Path(config.resume), model, optimizer, scheduler, scaler)
    if world.is_main:
        config.save(run_dir / "config.yaml")
    base = checkpoint_base(config, taxonomy, categories, spec, manifest)
    if config.probe_steps and not config.resume:
        probed = probe_stage(model, train_loader, val_loader, settings, device, channels_last,
                             config, world, run_dir)
        if probed is not None:  # the probe is epoch 0: best.pt until an epoch beats it on val
            state = {**state, "best_score": probed["score"], "best_loss": probed["loss"]}
            if world.is_main:
                save_atomic({**base, **training_state(model, optimizer, scheduler, scaler),
                             "epoch": 0, "metrics": probed, **state}, run_dir / "best.pt")
    average = WeightAverage(model, config.ema_decay) if config.ema_decay else None
    if average is not None and saved_average is not None:
        average.model.load_state_dict(saved_average)
    scored = average.model if average is not None else model  # what val scores and best.pt keeps
    epochs = tqdm(range(state["epoch"], config.epochs), desc="epochs", initial=state["epoch"],
                  total=config.epochs, disable=not world.is_main)
    gather = partial(distributed.gather_outputs, world=world)
    every_used = settings.embedding_weight > 0 and model.category_classifier is not None
    trained = model  # what the steps run through: the model, or DDP around it
    trainable: int | None = None
    for epoch in epochs:
        frozen = epoch < config.freeze_epochs
        model.freeze_backbone(0 if frozen else config.unfreeze_blocks)
        if model.first_trainable != trainable:  # DDP over what trains in this phase
            trained, trainable = distributed.wrap(model, world, device, every_used), model.first_trainable
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        phase = "heads" if frozen else f"blocks:{config.unfreeze_blocks}"
        fit = train_one_epoch(trained, train_loader, optimizer, scheduler, settings, device,
                              autocast, scaler, channels_last, config.max_train_batches,
                              desc=f"epoch {epoch + 1}/{config.epochs} [{phase}]",
                              progress=world.is_main,
                              after_step=partial(average.update, model) if average else None)
        fit = distributed.mean_over_ranks(fit, world, summed=("images_per_s",))
        metrics = (evaluate(scored, val_loader, settings, device, autocast, channels_last, gather,
                            progress=world.is_main)
                   if val_loader is not None else {"loss": fit["loss"], "score": -fit["loss"]})
        state, improved = next_state(state, metrics, epoch + 1)
        lrs = scheduler.get_last_lr()  # groups: backbone x2, heads x2
        record = {"epoch": epoch + 1, "phase": phase, "lr_backbone": lrs[0], "lr_heads": lrs[-1],
                  **{f"train/{k}": v for k, v in fit.items()}, **{f"val/{k}": v for k, v in metrics.items()}}
        if world.is_main:
            append_history(run_dir, record)
        epochs.set_postfix(loss=f"{fit['loss']:.3f}", val_loss=f"{metrics['loss']:.3f}",
                           score=f"{metrics['score']:.3f}", best=f"{state['best_score']:.3f}")
        log.info("epoch %d/%d %s: train loss %.4f (%.1f img/s), val %s", epoch + 1, config.epochs,
                 phase, fit["loss"], fit["images_per_s"], _brief(metrics))
        checkpoint = {**base, **training_state(model, optimizer, scheduler, scaler),
                      "epoch": epoch + 1, "metrics": metrics, **state}
        if average is not None:  # last.pt resumes the live weights and the average beside them
            checkpoint["ema_model"] = average.model.state_dict()
        if world.is_main:
            save_atomic(checkpoint, run_dir / "last.pt")
            if improved:  # best.pt's model is what val scored
                save_atomic({**checkpoint, "model": scored.state_dict()}, run_dir / "best.pt")
        if config.patience and state["stale_epochs"] >= config.patience:
            log.info("early stop: the fine-tune's val score has not improved for %d epochs",
                     config.patience)
            break
    return run_dir


def next_state(state: dict[str, Any], metrics: dict[str, float],
               epoch: int) -> tuple[dict[str, Any], bool]:
    """The run's state after an epoch scored `metrics` on val, and whether it beat the best
    of all, the probe included (then it is best.pt). Early stopping counts the epochs since the
    fine-tune last improved on itself, not on the probe: the first fine-tuned epochs score below
    the probe before they pass it (bottle: 0.76 -> 0.25 -> 0.47 -> 0.47 -> 0.71 -> 0.91), and
    counting from the probe stopped `--patience 2` runs (every `train --auto` candidate) at it."""
    best = {"score": state["best_score"], "loss": state["best_loss"]}
    tuned = {"score": state["tuned_score"], "loss": state["tuned_loss"]}
    improved = selection_key(metrics) > selection_key(best)
    still_improving = selection_key(metrics) > selection_key(tuned)
    best = metrics if improved else best
    tuned = metrics if still_improving else tuned
    return {"epoch": epoch, "best_score": best["score"], "best_loss": best["loss"],
            "tuned_score": tuned["score"], "tuned_loss": tuned["loss"],
            "stale_epochs": 0 if still_improving else state["stale_epochs"] + 1}, improved


def probe_stage(model: InspectionNet, train_loader: DataLoader, val_loader: DataLoader | None,
                settings: LossSettings, device: torch.device, channels_last: bool,
                config: TrainConfig, world: World, run_dir: Path) -> dict[str, float] | None:
    """LP-FT's linear probe (training/probe.py) on the model in place; its val metrics, written
    to the history as epoch 0 (None without a val split)."""
    fitted = probe_heads(model, unaugmented(train_loader), settings, device, channels_last,
                         config.probe_steps, config.probe_lr, config.weight_decay,
                         progress=world.is_main)
    if val_loader is None:
        return None
    gather = partial(distributed.gather_outputs, world=world)
    metrics = evaluate(model, val_loader, settings, device, channels_last=channels_last,
                       gather=gather, progress=world.is_main)
    log.info("epoch 0 (probe): val %s", _brief(metrics))
    if world.is_main:
        append_history(run_dir, {"epoch": 0, "phase": "probe",
                                 **{f"probe/{k}": v for k, v in fitted.items()},
                                 **{f"val/{k}": v for k, v in metrics.items()}})
    return metrics


def append_history(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / "history.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def training_state(model: InspectionNet, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler,
                   scaler: torch.amp.GradScaler | None) -> dict[str, Any]:
    """What a checkpoint needs to continue training exactly: weights, optimizer, schedule."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else {}}


def unaugmented(loader: DataLoader) -> DataLoader:
    """The train photos in order, without augmentation or synthetic damage, sharing the train
    set's cache of resized photos (each photo is decoded once)."""
    dataset = loader.dataset
    plain = cast(InspectionDataset, getattr(dataset, "dataset", dataset))  # unwrap synthetic damage
    copy = InspectionDataset(plain.manifest, plain.samples, plain.taxonomy, plain.categories,
                             plain.spec, None)
    copy.cache = plain.cache
    return DataLoader(copy, batch_size=loader.batch_size, shuffle=False,
                      num_workers=loader.num_workers)


def check_images(manifest: Manifest) -> None:
    """Fail before training, not an hour in, on a photo that is not there."""
    for sample in manifest.samples:
        if sample.split in ("train", "val") and not manifest.image_path(sample).is_file():
            raise InputError(f"image not found: {sample.image}", manifest.path, sample.line)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_data(manifest: Manifest, taxonomy: Taxonomy, categories: list[str], spec: PreprocessSpec,
              config: TrainConfig, world: World | None = None
              ) -> tuple[DataLoader, DataLoader | None]:
    world = world or World()
    train_rows, val_rows = manifest.split("train"), manifest.split("val")
    if not train_rows:
        raise InputError("no rows with split=train; run `returns-inspect dataset split`",
                         manifest.path)
    generator = torch.Generator().manual_seed(config.seed)
    train_set = InspectionDataset(manifest, train_rows, taxonomy, categories, spec,
                                  get_preset(config.augment))
    if config.synthetic_damage:  # CutPaste-style damage on good photos (training/synthetic_damage.py)
        train_set = SyntheticDamageDataset(train_set, config.synthetic_damage)
    sampler = train_sampler(train_set, train_rows, taxonomy, generator, config, world)
    common: dict[str, Any] = {"batch_size": distributed.rank_batch_size(world, config.batch_size),
                              "num_workers": config.num_workers,
                              "persistent_workers": config.num_workers > 0}
    train_loader = DataLoader(train_set, shuffle=sampler is None, sampler=sampler,
                              generator=generator, drop_last=len(train_rows) > config.batch_size,
                              **common)
    if not val_rows:
        log.warning("no rows with split=val: the best checkpoint is chosen by train loss")
        return train_loader, None
    # Each rank scores every world.size-th val row; evaluate() gathers them all for the metrics.
    val_set = InspectionDataset(manifest, val_rows[world.rank::world.size], taxonomy, categories,
                                spec, None)
    return train_loader, DataLoader(val_set, shuffle=False, **common)


def train_sampler(train_set: Dataset, train_rows: list[Sample], taxonomy: Taxonomy,
                  generator: torch.Generator, config: TrainConfig, world: World) -> Sampler | None:
    """Shuffled by the DataLoader in one process; under torchrun one shuffle (seed + epoch)
    shared out by rank, so every step's global batch is the same whatever the world size."""
    if config.balance == "sampler":
        if world.launched:
            raise InputError("balanced batches (--balance sampler) are single-process; with "
                             "torchrun use --balance weights", "--balance")
        return balanced_sampler(train_rows, taxonomy, generator)
    if world.launched:
        return DistributedSampler(train_set, num_replicas=world.size, rank=world.rank,
                                  shuffle=True, seed=config.seed)
    return None


def checkpoint_base(config: TrainConfig, taxonomy: Taxonomy, categories: list[str],
                    spec: PreprocessSpec, manifest: Manifest) -> dict[str, Any]:
    return {"taxonomy": taxonomy.to_dict(), "preprocessing": spec.__dict__ | {
                "mean": list(spec.mean), "std": list(spec.std)},
            "backbone": config.backbone, "embedding_dim": 128, "categories": categories,
            "config": config.to_dict(), "manifest": str(manifest.path),
            "manifest_sha256": manifest.sha256(), "code_version": code_version(),
            "libraries": library_versions()}


def restore(path: Path, model: InspectionNet, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler,
            scaler: torch.amp.GradScaler | None) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """The run's state from a last.pt, with the weights loaded into `model` and the training
    state into the rest; the weight average saved beside them (`--ema-decay`), if any."""
    checkpoint = read_checkpoint(path, "--resume")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None and checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    log.info("resumed from %s at epoch %d", path, checkpoint["epoch"])
    # best_loss: absent from checkpoints written before ties were broken by the val loss;
    # tuned_*: before the probe, the best epoch was always a fine-tuned one
    best_loss = checkpoint.get("best_loss", math.inf)
    state = {"best_loss": best_loss,
             "tuned_score": checkpoint.get("tuned_score", checkpoint["best_score"]),
             "tuned_loss": checkpoint.get("tuned_loss", best_loss),
             **{key: checkpoint[key] for key in ("epoch", "best_score", "stale_epochs")}}
    return state, checkpoint.get("ema_model")


def read_checkpoint(path: Path, option: str) -> dict[str, Any]:
    keys = ("config", "model", "optimizer", "scheduler", "epoch")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file fails in many ways
        raise InputError(f"{path} is not a training checkpoint ({exc})", option) from None
    if not isinstance(checkpoint, dict) or not all(key in checkpoint for key in keys):
        raise InputError(f"{path} is not a last.pt from `returns-inspect train`", option)
    return checkpoint


def save_atomic(checkpoint: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(path.name + ".partial")
    torch.save(checkpoint, temporary)
    temporary.replace(path)


def launch(config: TrainConfig, nproc: int) -> int:
    """`train --nproc N`: the resolved config, handed to N processes started by torchrun."""
    with tempfile.TemporaryDirectory() as folder:
        recipe = Path(folder) / "recipe.yaml"
        config.save(recipe)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={nproc}", "-m", "training.train", "--recipe", str(recipe)]
        log.info("starting %d processes: %s", nproc, " ".join(command))
        return subprocess.run(command, check=False).returncode


def _brief(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in metrics.items())


if __name__ == "__main__":  # torchrun --nproc_per_node N -m training.train ...
    from inspection.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
