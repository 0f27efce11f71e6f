"""Bring a bundle exported before issue 7 to the current `patch_features` pooling without
retraining: its two 3x3 AveragePool nodes that feed `patch_features` are switched to count the
zero padding, as training.anomaly.features now does (the classifier's outputs do not depend on
them). The result is checked against torch: the stride-8/16 blocks of a bundle trained with the
default recipe are ImageNet's (only blocks 5-6 and the head are fine-tuned), so the torch
ImageNet backbone with the current pooling must give the same features.

    python -m training.anomaly.repool --bundle models/default --photos datasets/sample/images

Then refit the detectors (`returns-inspect anomaly fit`), which were fitted on the old features.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import torch

from inspection.atomic import replacing
from inspection.card import PreprocessSpec, read_card
from inspection.errors import InspectionError
from inspection.images import load_photo
from inspection.manifest import file_sha256
from inspection.preprocess import batch_inputs
from training.anomaly.extractor import imagenet_backbone, pooled_patches, timm_feature_maps

TOLERANCE = 1e-3  # relative to the features' scale, as the detector parity check


def patch_pools(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The AveragePool nodes whose outputs reach `patch_features` (the model has no others)."""
    return [node for node in model.graph.node if node.op_type == "AveragePool"]


def repool(bundle: Path, photos: list[Path]) -> float:
    """Rewrite the bundle's model in place; return the parity error against torch."""
    card = read_card(bundle)
    path = bundle / card.onnx_file
    model = onnx.load(str(path))
    pools = patch_pools(model)
    if len(pools) != 2:
        raise InspectionError(f"{path}: expected the 2 patch-feature AveragePool nodes, "
                              f"found {len(pools)}")
    for node in pools:
        for attribute in node.attribute:
            if attribute.name == "count_include_pad":
                attribute.i = 1
    with replacing(path) as temporary:  # the model is replaced only if it passes parity
        onnx.save(model, str(temporary))
        error = parity(temporary, photos, card.preprocessing)
        if error > TOLERANCE:
            raise InspectionError(f"{path}: patch features differ from torch by {error:.2e} "
                                  f"(relative); the stride-8/16 blocks are not ImageNet's")
    card.onnx_sha256 = file_sha256(path)
    card.export["patch_features_pooling"] = {"count_include_pad": True,
                                             "parity_max_rel_error": error,
                                             "rewritten_by": "training.anomaly.repool"}
    card.save(bundle)
    return error


def parity(path: Path, photos: list[Path], spec: PreprocessSpec) -> float:
    import onnxruntime as ort

    inputs = batch_inputs([load_photo(p, min_side=spec.input_size) for p in photos], spec)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(["patch_features"], {spec.input_name: inputs})[0]
    with torch.inference_mode():
        expected = pooled_patches(timm_feature_maps(imagenet_backbone(),
                                                    torch.from_numpy(inputs))).numpy()
    return float(np.abs(exported - expected).max() / max(np.abs(expected).max(), 1e-6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--photos", type=Path, required=True, help="a folder of photos")
    parser.add_argument("--count", type=int, default=8, help="photos for the parity check")
    args = parser.parse_args()
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    try:
        error = repool(args.bundle, photos[:args.count])
    except InspectionError as exc:
        sys.exit(f"repool: {exc}")
    print(f"{args.bundle}: patch_features now count the padding; parity vs torch {error:.2e}")


if __name__ == "__main__":
    main()
