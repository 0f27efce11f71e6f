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
# Share of the good photos' patches the bank keeps (up to MAX_BANK). 2 %, not 1 %: with 40 good
# photos at 256 px, 1 % left phone below anomalib's PatchCore (0.792 against 0.833) and 2 % passes
# it on all six sets, on two draws of photos; the cap binds from ~75 photos at 256 px (150 at 1 %)
# (BENCHMARKS, issue 7).
CORESET_RATIO = 0.02
UPRIGHT_VIEWS = 2  # a bank on upright items holds both half turns (training.anomaly.placement)


def default_max_bank(crop: str) -> int:
    """The bank's row cap: MAX_BANK per view of a good photo, so an upright bank, which holds
    two half turns of each item, covers each as densely as a whole-photo bank covers its one
    (measured on placed magnetic tiles: 0.890 at 1,536 rows, 0.919 at 3,072)."""
    return MAX_BANK * (UPRIGHT_VIEWS if crop == "upright" else 1)
# Support rows of PatchCore's density-weighted image score. Off (1) by default: on magnetic tile
# and the synthetic phones it changed no AUROC (the softmax over distances of ~20-60 saturates,
# every weight is ~1); `--neighbours 9` is PatchCore's and anomalib's setting.
NEIGHBOURS = 1
QUERY_CHUNK = 4096  # patches per distance matrix: 4096 x 16k bank x 4 bytes = 256 MiB at most


def flatten_patches(features: np.ndarray) -> np.ndarray:
    """N x C x h x w -> (N*h*w) x C, one row per patch."""
    count, channels, height, width = features.shape
    return np.ascontiguousarray(features.transpose(0, 2, 3, 1).reshape(-1, channels))


def build_bank(features: np.ndarray, coreset_ratio: float, seed: int = 0,
               progress: bool = True, max_bank: int | None = MAX_BANK) -> np.ndarray:
    """Memory bank (M x C float32) from good photos' patch features, coreset-subsampled to
    `coreset_ratio` of the patches and at most `max_bank` rows (None: no cap)."""
    if not 0.0 < coreset_ratio <= 1.0:
        msg = f"coreset ratio must be in (0, 1], got {coreset_ratio}"
        raise ValueError(msg)
    patches = flatten_patches(features).astype(np.float32)
    count = max(1, int(round(len(patches) * coreset_ratio)))
    count = min(count, max_bank) if max_bank else count
    if count >= len(patches):
        return patches
    return patches[greedy_coreset(patches, count, seed=seed, progress=progress)]


def nearest_neighbours(queries: np.ndarray, bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query row's Euclidean distance to its nearest bank row, and that row's index."""
    rows = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    memory = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
    memory_sq = (memory * memory).sum(dim=1)
    distances, indices = [], []
    for chunk in torch.split(rows, QUERY_CHUNK):
        squared = (chunk * chunk).sum(dim=1, keepdim=True) - 2 * chunk @ memory.T + memory_sq
        nearest = squared.min(dim=1)
        distances.append(nearest.values.clamp_min(0).sqrt())
        indices.append(nearest.indices)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


def nearest_distances(features: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Per-patch Euclidean distance to the nearest bank row: N x C x h x w -> N x h x w."""
    count, _, height, width = features.shape
    return nearest_neighbours(flatten_patches(features), bank)[0].reshape(count, height, width)


def support_neighbours(bank: np.ndarray, neighbours: int) -> np.ndarray:
    """M x k: each bank row's k nearest bank rows (itself first), fixed once the bank is."""
    memory = torch.from_numpy(np.ascontiguousarray(bank, dtype=np.float32))
    memory_sq = (memory * memory).sum(dim=1)
    count = min(neighbours, len(memory))
    out = []
    for chunk in torch.split(memory, QUERY_CHUNK):
        squared = (chunk * chunk).sum(dim=1, keepdim=True) - 2 * chunk @ memory.T + memory_sq
        out.append(squared.topk(count, dim=1, largest=False).indices)
    return torch.cat(out).numpy()


def density_weights(worst: np.ndarray, nearest: np.ndarray, bank: np.ndarray,
                    support: np.ndarray) -> np.ndarray:
    """PatchCore's image-score weight for each photo's worst patch (N x C), whose nearest bank
    row is `nearest` (N): 1 - softmax(distances to that row's k support rows)[0]. A match in a
    sparse part of the bank (its neighbours far from the patch) weighs ~1; a match in a dense
    part, where many good patches look alike, weighs ~1 - 1/k."""
    rows = bank[support[nearest]]  # N x k x C
    distances = np.sqrt(np.maximum(((rows - worst[:, None, :]) ** 2).sum(axis=2), 0.0))
    shifted = np.exp(distances - distances.max(axis=1, keepdims=True))
    return 1.0 - shifted[:, 0] / shifted.sum(axis=1)


@dataclass(frozen=True)
class PatchCore:
    """A fitted detector for one product category."""

    bank: np.ndarray  # M x C
    support: np.ndarray | None = None  # M x k: each row's nearest rows, for the weighted score

    @classmethod
    def fit(cls, features: np.ndarray, coreset_ratio: float = CORESET_RATIO, seed: int = 0,
            progress: bool = True, max_bank: int | None = MAX_BANK,
            neighbours: int = NEIGHBOURS) -> PatchCore:
        bank = build_bank(features, coreset_ratio, seed=seed, progress=progress, max_bank=max_bank)
        return cls(bank, support_neighbours(bank, neighbours) if neighbours > 1 else None)

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores N, maps N x h x w): each patch's distance to the bank is the map; the worst
        patch's distance, density-weighted when the detector has support rows, is the score."""
        count, _, height, width = features.shape
        queries = flatten_patches(features)
        distances, indices = nearest_neighbours(queries, self.bank)
        per_photo = distances.reshape(count, height * width)
        scores = per_photo.max(axis=1)
        if self.support is not None:
            rows = per_photo.argmax(axis=1) + np.arange(count) * height * width
            scores = scores * density_weights(queries[rows], indices[rows], self.bank,
                                              self.support)
        return scores, distances.reshape(count, height, width)
