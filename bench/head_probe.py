"""Issue 10's probe of the trainer's linear heads on frozen features, without the backbone.

The trainer's own frozen-backbone baseline scored 0.454 test macro-F1 on magnetic tile where a
logistic regression on the same ImageNet features scored 0.89 (bench/learning_curves.py). This
trains one linear head on the cached pooled features of bench/learning_curves.py the way the
trainer trains its heads (AdamW on the weights with decay and the bias without, warm-up and cosine
per step as training/engine.py schedules them, class-weighted cross-entropy with label smoothing,
dropout, batch 32, drop_last) and changes one setting at a time, so each setting's share of the gap
is measured in seconds instead of a training run each. No augmentation: the features are of the
plain photos.

    python bench/head_probe.py [--dataset magnetic_tile] [--input-size 160] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.learning_curves import Features, extract  # noqa: E402
from bench.supervised_real import PREPARE, WORK, prepared  # noqa: E402

# The trainer's head settings (training/config.py defaults, the protocol's 8 epochs and warm-up).
TRAINER: dict[str, Any] = {"lr": 1e-3, "weight_decay": 0.05, "epochs": 8, "label_smoothing": 0.05,
                           "dropout": 0.2, "class_weights": True, "warmup_epochs": 0.5}
CHANGES: dict[str, dict[str, Any]] = {  # name -> settings changed from TRAINER
    "the trainer's heads": {},
    "lr 1e-2": {"lr": 1e-2},
    "lr 3e-3": {"lr": 3e-3},
    "50 epochs": {"epochs": 50},
    "lr 1e-2, 20 epochs": {"lr": 1e-2, "epochs": 20},
    "no weight decay, lr 1e-2": {"lr": 1e-2, "weight_decay": 0.0},
    "no label smoothing, lr 1e-2": {"lr": 1e-2, "label_smoothing": 0.0},
    "no dropout, lr 1e-2": {"lr": 1e-2, "dropout": 0.0},
    "no class weights, lr 1e-2": {"lr": 1e-2, "class_weights": False},
}
BATCH = 32


def fit_head(features: Features, settings: dict[str, Any], seed: int) -> float:
    """Test macro-F1 of one linear head trained on the train rows' features."""
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import f1_score

    from training.data import MAX_CLASS_WEIGHT
    from training.engine import warmup_cosine

    torch.manual_seed(seed)
    names = sorted(set(features.labels))
    y = torch.tensor([names.index(label) for label in features.labels])
    x = torch.from_numpy(features.x.astype(np.float32))
    train = np.flatnonzero(features.splits == "train")
    counts = torch.bincount(y[train], minlength=len(names)).float()
    weight = (counts.sum() / (len(names) * counts)).clamp(1 / MAX_CLASS_WEIGHT, MAX_CLASS_WEIGHT) \
        if settings["class_weights"] else None
    head = torch.nn.Linear(x.shape[1], len(names))
    optimizer = torch.optim.AdamW([
        {"params": [head.weight], "weight_decay": settings["weight_decay"]},
        {"params": [head.bias], "weight_decay": 0.0}], lr=settings["lr"])
    steps = len(train) // BATCH
    schedule = partial(warmup_cosine, start=0, warmup=max(1, round(settings["warmup_epochs"] * steps)),
                       total=settings["epochs"] * steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(settings["epochs"]):
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for step in range(steps):
            rows = order[step * BATCH:(step + 1) * BATCH]
            inputs = F.dropout(x[rows], settings["dropout"], training=True)
            loss = F.cross_entropy(head(inputs), y[rows], weight=weight,
                                   label_smoothing=settings["label_smoothing"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    test = features.splits == "test"
    with torch.no_grad():
        predicted = head(x[test]).argmax(dim=1).numpy()
    return float(f1_score(y[test].numpy(), predicted, average="macro", zero_division=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="magnetic_tile", choices=list(PREPARE))
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if not prepared([args.dataset]):
        return 0
    import torch

    torch.set_num_threads(1)
    features = extract(WORK / args.dataset / "manifest.csv", "efficientnet_lite0", args.input_size)
    print(f"{args.dataset}, {args.input_size} px: one linear head on frozen pooled Lite0 features, "
          f"test macro-F1, mean ± std over {args.seeds} seeds")
    print("| head training | macro-F1 |\n|---|---|")
    for name, change in CHANGES.items():
        scores = [fit_head(features, {**TRAINER, **change}, seed) for seed in range(args.seeds)]
        print(f"| {name} | {statistics.fmean(scores):.3f} ± {statistics.pstdev(scores):.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
