"""One epoch of training and one pass of evaluation, the loss and metrics they share, and the
optimizer and learning-rate schedule.

Loss = sum over heads of the masked head loss (cross-entropy with label smoothing for single
heads, BCE for multi heads, each with class weights from train counts) + `embedding_weight` x
the cosine-softmax category loss that shapes the embedding. Rows that do not label a head add
nothing to that head's loss.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, f1_score
from torch.utils.data import DataLoader
from tqdm import tqdm

from inspection.taxonomy import Taxonomy
from training.config import TrainConfig
from training.model import InspectionNet

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]
# (loss sum, rows, collected outputs) of this process -> the same over all processes
Gather = Callable[[float, int, dict[str, list[np.ndarray]]], tuple[float, int, dict[str, list[np.ndarray]]]]
MIN_LR_FACTOR = 0.01  # cosine ends at 1% of the peak rate, not zero


@dataclass
class LossSettings:
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # per head, from data.py
    label_smoothing: float = 0.0
    embedding_weight: float = 0.0
    mixup_alpha: float = 0.0  # > 0: training batches go through `mixup_loss`
    cutmix_alpha: float = 0.0  # > 0: through `cutmix_loss`


def compute_loss(model: InspectionNet, outputs: dict[str, torch.Tensor], batch: Batch,
                 settings: LossSettings) -> tuple[torch.Tensor, dict[str, float]]:
    parts: dict[str, torch.Tensor] = {}
    for head in model.taxonomy.heads:
        logits = outputs[f"{head.name}_logits"].float()
        target, mask = batch[head.name], batch[f"{head.name}_mask"]
        weight = settings.weights.get(head.name)
        weight = weight.to(logits.device) if weight is not None else None
        if head.type == "single":
            per_row = F.cross_entropy(logits, target, weight=weight, reduction="none",
                                      label_smoothing=settings.label_smoothing)
        else:
            per_row = F.binary_cross_entropy_with_logits(
                logits, target, pos_weight=weight, reduction="none").mean(dim=1)
        # Masked mean: rows that do not label this head count for nothing.
        parts[head.name] = (per_row * mask).sum() / mask.sum().clamp(min=1.0)
    category = batch["category"]
    if settings.embedding_weight and model.category_classifier is not None:
        known = (category >= 0).float()
        per_row = F.cross_entropy(model.category_logits(outputs["embedding"].float()),
                                  category.clamp(min=0), reduction="none")
        parts["category"] = settings.embedding_weight * (per_row * known).sum() / \
            known.sum().clamp(min=1.0)
    total = torch.stack(list(parts.values())).sum()
    return total, {name: float(value.detach()) for name, value in parts.items()}


def mixup_loss(model: InspectionNet, batch: Batch, settings: LossSettings) -> torch.Tensor:
    """mixup (Zhang et al., ICLR 2018): each photo blended with another of the batch at
    lambda ~ Beta(alpha, alpha), and the loss the same blend of the two photos' losses, so every
    head, label mask and the category loss mix alike without soft targets."""
    share = float(np.random.beta(settings.mixup_alpha, settings.mixup_alpha))
    partner = torch.randperm(len(batch["image"]), device=batch["image"].device)
    outputs = model(share * batch["image"] + (1.0 - share) * batch["image"][partner])
    return _blended_loss(model, outputs, batch, partner, share, settings)


def _blended_loss(model: InspectionNet, outputs: dict[str, torch.Tensor], batch: Batch,
                  partner: torch.Tensor, share: float, settings: LossSettings) -> torch.Tensor:
    """`share` of the loss against each photo's own labels, the rest against its partner's."""
    own, _ = compute_loss(model, outputs, batch, settings)
    other, _ = compute_loss(model, outputs, {key: value[partner] for key, value in batch.items()},
                            settings)
    return share * own + (1.0 - share) * other


def cutmix_loss(model: InspectionNet, batch: Batch, settings: LossSettings) -> torch.Tensor:
    """CutMix (Yun et al., ICCV 2019): a box of another photo of the batch pasted into each,
    its share of the area drawn from Beta(alpha, alpha) (clipped at the border), and the loss the
    same share of the two photos' losses, as in `mixup_loss`. Unlike mixup every pixel stays a real
    photo's, so a crack or a stain is never faded, only sometimes covered."""
    images = batch["image"]
    side_y, side_x = images.shape[-2:]
    share = float(np.random.beta(settings.cutmix_alpha, settings.cutmix_alpha))
    height, width = round(side_y * math.sqrt(1.0 - share)), round(side_x * math.sqrt(1.0 - share))
    centre_y, centre_x = np.random.randint(side_y), np.random.randint(side_x)
    top, bottom = max(centre_y - height // 2, 0), min(centre_y + height - height // 2, side_y)
    left, right = max(centre_x - width // 2, 0), min(centre_x + width - width // 2, side_x)
    partner = torch.randperm(len(images), device=images.device)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = images[partner][..., top:bottom, left:right]
    own_share = 1.0 - (bottom - top) * (right - left) / (side_y * side_x)
    return _blended_loss(model, model(mixed), batch, partner, own_share, settings)


def to_device(batch: Batch, device: torch.device, channels_last: bool) -> Batch:
    moved = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    if channels_last:
        moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
    return moved


def train_one_epoch(model: InspectionNet, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, settings: LossSettings,
                    device: torch.device, autocast: Callable[[], AbstractContextManager] = nullcontext,
                    scaler: torch.amp.GradScaler | None = None, channels_last: bool = False,
                    max_batches: int = 0, desc: str = "train", progress: bool = True,
                    after_step: Callable[[], None] | None = None) -> dict[str, float]:
    """One pass over `loader`; `after_step` runs after every optimizer step (`WeightAverage`)."""
    model.train()
    total_loss, seen, started = 0.0, 0, time.perf_counter()
    steps = min(len(loader), max_batches) if max_batches else len(loader)
    bar = tqdm(loader, total=steps, desc=desc, leave=False, mininterval=1.0, disable=not progress)
    for step, batch in enumerate(bar):
        if step >= steps:
            break
        batch = to_device(batch, device, channels_last)
        with autocast():
            if settings.mixup_alpha:
                loss = mixup_loss(model, batch, settings)
            elif settings.cutmix_alpha:
                loss = cutmix_loss(model, batch, settings)
            else:
                loss, _ = compute_loss(model, model(batch["image"]), batch, settings)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()  # per step: warmup and cosine are measured in optimizer steps
        if after_step is not None:
            after_step()
        rows = len(batch["image"])
        total_loss, seen = total_loss + float(loss.detach()) * rows, seen + rows
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", lr=f"{scheduler.get_last_lr()[-1]:.2e}")
    seconds = time.perf_counter() - started
    return {"loss": total_loss / max(seen, 1), "images_per_s": seen / max(seconds, 1e-9),
            "seconds": seconds}


class WeightAverage:
    """An exponential moving average of a model's weights (`--ema-decay`), starting from the
    weights it is given: after LP-FT's probe, so the fine-tune's first steps reach the average
    damped. Val scores it and best.pt keeps it; the live weights go on training."""

    def __init__(self, model: InspectionNet, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: InspectionNet) -> None:
        live = model.state_dict()
        for name, average in self.model.state_dict().items():
            if average.dtype.is_floating_point:
                average.lerp_(live[name], 1.0 - self.decay)
            else:  # counters (BatchNorm's batches tracked) are copied, not averaged
                average.copy_(live[name])


@torch.inference_mode()
def evaluate(model: InspectionNet, loader: DataLoader, settings: LossSettings,
             device: torch.device, autocast: Callable[[], AbstractContextManager] = nullcontext,
             channels_last: bool = False, gather: Gather | None = None,
             progress: bool = True) -> dict[str, float]:
    """Val loss, per-head metrics and `score`, the mean of the heads' main metric (macro-F1 for
    single heads, mean average precision for multi heads), which picks the best checkpoint.
    `gather` merges the outputs of every process's share of the val set (training/distributed.py)
    before the metrics are computed."""
    model.eval()
    total_loss, seen = 0.0, 0
    collected: dict[str, list[np.ndarray]] = {}
    for batch in tqdm(loader, desc="val", leave=False, mininterval=1.0, disable=not progress):
        batch = to_device(batch, device, channels_last)
        with autocast():
            outputs = model(batch["image"])
            loss, _ = compute_loss(model, outputs, batch, settings)
        total_loss, seen = total_loss + float(loss) * len(batch["image"]), seen + len(batch["image"])
        for head in model.taxonomy.heads:
            _collect(collected, head.name, outputs[f"{head.name}_logits"], batch[head.name],
                     batch[f"{head.name}_mask"])
        if model.category_classifier is not None:
            category_logits = model.category_logits(outputs["embedding"].float())
            _collect(collected, "category", category_logits, batch["category"],
                     (batch["category"] >= 0).float())
    if gather is not None:
        total_loss, seen, collected = gather(total_loss, seen, collected)
    metrics = {"loss": total_loss / max(seen, 1)}
    metrics.update(head_metrics(model.taxonomy, collected))
    return metrics


def _collect(collected: dict[str, list[np.ndarray]], name: str, logits: torch.Tensor,
             target: torch.Tensor, mask: torch.Tensor) -> None:
    keep = mask.bool().cpu()
    collected.setdefault(f"{name}/logits", []).append(logits.float().cpu()[keep].numpy())
    collected.setdefault(f"{name}/target", []).append(target.cpu()[keep].numpy())


def head_metrics(taxonomy: Taxonomy, collected: dict[str, list[np.ndarray]]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    main: list[float] = []
    single = [(h.name, len(h.labels)) for h in taxonomy.heads if h.type == "single"]
    if "category/logits" in collected:
        single.append(("category", 0))
    for name, count in single:
        logits, target = (np.concatenate(collected.get(f"{name}/{k}", [np.zeros(0)]))
                          for k in ("logits", "target"))
        if not len(target):
            continue
        predicted = logits.argmax(axis=1)
        metrics[f"{name}/accuracy"] = float((predicted == target).mean())
        metrics[f"{name}/macro_f1"] = float(f1_score(target, predicted, average="macro",
                                                     zero_division=0))
        if count:  # the category accuracy shapes the embedding but is not a head's score
            main.append(metrics[f"{name}/macro_f1"])
    for head in (h for h in taxonomy.heads if h.type == "multi"):
        if f"{head.name}/target" not in collected:
            continue
        logits = np.concatenate(collected[f"{head.name}/logits"])
        target = np.concatenate(collected[f"{head.name}/target"])
        if not len(target):
            continue
        present = target.sum(axis=0) > 0  # AP is undefined for a label with no positives
        if present.any():
            metrics[f"{head.name}/mean_ap"] = float(average_precision_score(
                target[:, present], logits[:, present], average="macro"))
            main.append(metrics[f"{head.name}/mean_ap"])
        metrics[f"{head.name}/micro_f1"] = float(f1_score(target, logits > 0, average="micro",
                                                          zero_division=0))
    metrics["score"] = float(np.mean(main)) if main else 0.0
    return metrics


def selection_key(metrics: dict[str, float]) -> tuple[float, float]:
    """What makes one epoch's checkpoint better than another's: the higher val score, and on
    equal scores the lower val loss. Small val splits tie often (bottle's 30 val photos gave
    the same macro-F1 from epoch 4 to 8), and keeping the first of equals kept the least
    trained epoch: 0.11 test macro-F1 lost on bottle (BENCHMARKS.md, issue 10)."""
    return metrics["score"], -metrics["loss"]


def short_run_scale(total_steps: int, full_rate_steps: int) -> float:
    """The learning rates' factor for a run of `total_steps` optimizer steps.

    Adam moves every weight by about the learning rate on each of its first steps, whatever the
    gradient's size. With a few labelled photos an epoch is one step, and measured on real photos
    (BENCHMARKS.md, issue 10) the first full-rate steps of the blocks wreck the probe's val score
    (0.51 -> 0.10 on magnetic tile, 10 photos a class) and 8-20 steps do not recover it. So a run
    shorter than `full_rate_steps` trains at a proportionally lower rate (0: always full rate)."""
    if not full_rate_steps or total_steps >= full_rate_steps:
        return 1.0
    return max(1, total_steps) / full_rate_steps


def make_optimizer(model: InspectionNet, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, four groups: backbone / heads x decayed weights / undecayed biases and norms."""
    groups = []
    for params, scale in ((model.backbone_parameters(), config.backbone_lr_scale),
                          (model.head_parameters(), 1.0)):
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim > 1) == decay]
            groups.append({"params": chosen, "lr": config.lr * scale,
                           "weight_decay": config.weight_decay if decay else 0.0})
    return torch.optim.AdamW(groups, lr=config.lr)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per step: the heads warm up from step 0, the backbone from the end of the frozen
    epochs; both then follow a cosine to MIN_LR_FACTOR at the last step, the whole curve
    scaled down for a short run (`short_run_scale`). Like the cosine's length, the scale is
    the run's planned length's, so a run resumed with more epochs follows the longer plan."""
    total = config.epochs * steps_per_epoch
    warmup = max(1, round(config.warmup_epochs * steps_per_epoch))
    backbone_start = config.freeze_epochs * steps_per_epoch
    scale = short_run_scale(total, config.full_rate_steps)
    if scale < 1.0:
        log.info("a short run (%d optimizer steps): learning rates x %.2f, full rate from %d steps",
                 total, scale, config.full_rate_steps)
    heads = partial(scaled_warmup_cosine, scale, start=0, warmup=warmup, total=total)
    backbone = partial(scaled_warmup_cosine, scale, start=backbone_start, warmup=warmup, total=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [backbone, backbone, heads, heads])


def scaled_warmup_cosine(scale: float, step: int, start: int, warmup: int, total: int) -> float:
    return scale * warmup_cosine(step, start=start, warmup=warmup, total=total)


def warmup_cosine(step: int, start: int, warmup: int, total: int) -> float:
    if step < start:
        return 0.0
    if step < start + warmup:
        return (step - start + 1) / warmup
    progress = (step - start - warmup) / max(1, total - start - warmup)
    return MIN_LR_FACTOR + (1 - MIN_LR_FACTOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
