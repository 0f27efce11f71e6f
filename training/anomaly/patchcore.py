"""PatchCore-style memory bank: nearest-neighbour distance of each patch to normal patches.

A photo's patch features (N x C x h x w) are compared with a bank of patch features taken from
good photos (M x C). Each patch's distance to its nearest bank patch is the anomaly map; the
worst patch is the photo's score. The ONNX export (export.py) computes the same arithmetic,
||a||^2 - 2ab + ||b||^2, so the torch and ONNX scores agree to float precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.anomaly.coreset import greedy_coreset

# bank rows at most: 784 patches x 1536 x 152 ch ~ 0.18 GFLOP, ~1.3x the classifier (BENCHMARKS)
MAX_BANK = 1536
QUERY_CHUNK = 4096  # patches per distance matrix: 4096 x 16k bank x 4 bytes = 256 MiB at most


def flatten_patches(features: np.ndarray) -> np.ndarray:
    """N x C x h x w -> (N*h*w) x C, one row per patch."""
    count, channels, height, width = features.shape
    return np.ascontiguousarray(features.transpose(0, 2, 3, 1).reshape(-1, channels))


def build_bank(features: np.ndarray, coreset_ratio: float, seed: int = 0,
               progress: bool = True) -> np.ndarray:
    """Memory bank (M x C float32) from good photos' patch features, coreset-subsampled."""
    if not 0.0 < coreset_ratio <= 1.0:
        msg = f"coreset ratio must be in (0, 1], got {coreset_ratio}"
        raise ValueError(msg)
    patches = flatten_patches(features).astype(np.float32)
    count = min(max(1, int(round(len(patches) * coreset_ratio))), MAX_BANK)
    if count >= len(patches):
        return patches
    return patches[greedy_coreset(patches, count, seed=seed, progress=progress)]


def nearest_distances(features: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Per-patch Euclidean distance to the nearest bank row: N x C x h x w -> N x h x w."""
    count, _, height, width = features.shape
    queries = torch.from_numpy(flatten_patches(features).astype(np.float32))
    memory = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
    memory_sq = (memory * memory).sum(dim=1)
    out = []
    for chunk in torch.split(queries, QUERY_CHUNK):
        squared = (chunk * chunk).sum(dim=1, keepdim=True) - 2 * chunk @ memory.T + memory_sq
        out.append(squared.min(dim=1).values.clamp_min(0).sqrt())
    return torch.cat(out).reshape(count, height, width).numpy()


@dataclass(frozen=True)
class PatchCore:
    """A fitted detector for one product category."""

    bank: np.ndarray  # M x C

    @classmethod
    def fit(cls, features: np.ndarray, coreset_ratio: float = 0.01, seed: int = 0,
            progress: bool = True) -> PatchCore:
        return cls(build_bank(features, coreset_ratio, seed=seed, progress=progress))

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores N, maps N x h x w): the worst patch's distance, and every patch's."""
        maps = nearest_distances(features, self.bank)
        return maps.reshape(len(maps), -1).max(axis=1), maps
