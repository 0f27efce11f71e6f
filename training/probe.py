"""Linear probe, then fine-tune (LP-FT): the heads start converged on the frozen backbone's
features instead of from random weights.

    train rows (no augmentation) -> frozen backbone, once -> pooled N x 1280 features
    -> every head fitted on them, full batch, `probe_steps` AdamW steps at `probe_lr`

Why: fine-tuning from random heads sends the heads' large early gradients into the backbone, and
with few photos the run ends before the heads have converged. Measured on real photos (BENCHMARKS.md,
issue 10): the trainer's own frozen heads reached 0.64 test macro-F1 on magnetic tile where a
converged linear head on the same features reached 0.91, and at 5-20 photos per class the
fine-tuned model stayed below a logistic regression on frozen features. A probe costs one forward
pass over the train photos (which also fills the photo cache the first epoch would fill) plus a few
hundred steps of the heads on cached features: 9 s for bottle's 210 photos at 224 px and 14 s for
magnetic tile's 940 at 160 px on 2 CPU threads, so it replaces the head-only epochs that cost a
forward and a head backward pass each.
Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution",
ICLR 2022, is where the recipe comes from.
"""

from __future__ import annotations

import logging
import time

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from training.engine import Batch, LossSettings, compute_loss, to_device, warmup_cosine
from training.model import InspectionNet

log = logging.getLogger(__name__)


@torch.inference_mode()
def pooled_features(model: InspectionNet, loader: DataLoader, device: torch.device,
                    channels_last: bool, progress: bool = True) -> Batch:
    """The head conv's pooled features of every photo in `loader` with the targets beside
    them, as one batch: `features` N x 1280 plus each target tensor of the loader's items."""
    model.eval()
    collected: dict[str, list[torch.Tensor]] = {}
    for batch in tqdm(loader, desc="probe: features", leave=False, mininterval=1.0,
                      disable=not progress):
        batch = to_device(batch, device, channels_last)
        pooled = model.feature_maps(batch.pop("image"))[0].float().mean(dim=(2, 3))
        for key, value in {"features": pooled, **batch}.items():
            collected.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in collected.items()}


def fit_heads(model: InspectionNet, cached: Batch, settings: LossSettings, steps: int,
              lr: float, weight_decay: float) -> dict[str, float]:
    """Every head (and the embedding) fitted on cached pooled features by full-batch AdamW,
    the trainer's loss, warm-up and cosine; the first and last losses."""
    model.train()  # dropout on the pooled features regularises the probe as it does training
    params = model.head_parameters()
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
         {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}], lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, start=0, warmup=max(1, steps // 10), total=steps))
    feature_map = cached["features"][:, :, None, None]  # a 1 x 1 map: see InspectionNet.head_outputs
    losses = []
    for _ in range(steps):
        loss, _ = compute_loss(model, model.head_outputs(feature_map), cached, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return {"first_loss": losses[0], "last_loss": losses[-1]}


def probe_heads(model: InspectionNet, loader: DataLoader, settings: LossSettings,
                device: torch.device, channels_last: bool, steps: int, lr: float,
                weight_decay: float, progress: bool = True) -> dict[str, float]:
    """LP-FT's first stage on the model in place; returns the loss and the seconds it took."""
    started = time.perf_counter()
    cached = pooled_features(model, loader, device, channels_last, progress)
    cached = {key: value.clone() for key, value in cached.items()}  # out of inference mode
    fitted = fit_heads(model, cached, settings, steps, lr, weight_decay)
    seconds = time.perf_counter() - started
    log.info("probe: heads fitted on %d photos' frozen features in %.1f s (loss %.3f -> %.3f)",
             len(cached["features"]), seconds, fitted["first_loss"], fitted["last_loss"])
    return {**fitted, "seconds": seconds, "photos": float(len(cached["features"]))}
