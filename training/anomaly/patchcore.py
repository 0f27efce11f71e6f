"""PatchCore-style memory bank: nearest-neighbour distance of each patch to normal patches.

A photo's patch features (N x C x h x w) are compared with a bank of patch features taken from
good photos (M x C). Each patch's distance to its nearest bank patch is the anomaly map; the
worst patch is the photo's score. The ONNX export (export.py) computes the same arithmetic,
||a||^2 - 2ab + ||b||^2, so the torch and ONNX scores agree to float precision.

The search runs in two passes when the bank is larger than SEARCHED_ROWS. The bank's rows are in
greedy-coreset order, so its first rows are themselves a coreset of the good patches: every
patch is compared with those first (that is the map), and each photo's RERANKED_PATCHES worst
patches, the ones that can decide its score, are then compared with the rest of the bank too.
A bigger bank then costs little more than the searched rows, because only the few patches that
decide the score see all of it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from inspection.errors import InputError
from training.anomaly.coreset import greedy_coreset

# Rows every patch is compared with: 400 patches (160 px) x 1536 x 152 ch ~ 0.09 GFLOP, the
# served branch ~1.3x the classifier (BENCHMARKS). Up to 1,536 rows the search is one pass.
SEARCHED_ROWS = 1536
# Rows at most. 4,096, not 1,536: with 200 good photos at 256 px a 1,536-row bank (0.75 % of the
# patches) fell 0.018 behind the reference recipe on phone, and 3,072-4,096 rows passed it on
# every set (BENCHMARKS, issue 7); the two-pass search keeps the cost near SEARCHED_ROWS'.
MAX_BANK = 4096
# Each photo's worst patches after the first pass that are compared with the whole bank. 32:
# with 200 fit photos, 16 lost up to 0.025 against the whole 4,096-row search (shoe, phone);
# 32 is within 0.005 of it on every set, two draws (BENCHMARKS, "Two-pass search").
RERANKED_PATCHES = 32
# Share of the good photos' patches the bank keeps (up to MAX_BANK). 2 %, not 1 %: with 40 good
# photos at 256 px, 1 % left phone below anomalib's PatchCore (0.792 against 0.833) and 2 % passes
# it on all six sets, on two draws of photos; the cap binds from ~75 photos at 256 px (150 at 1 %)
# (BENCHMARKS, issue 7).
CORESET_RATIO = 0.02
UPRIGHT_VIEWS = 2  # a bank on upright items holds both half turns (training.anomaly.placement)


def views_per_photo(crop: str) -> int:
    """Views of each good photo in the bank: an upright bank holds both half turns of each item,
    so its rows scale with them to cover each view as densely as a whole-photo bank covers its
    one (measured on placed magnetic tiles: 0.890 at 1,536 rows, 0.919 at 3,072)."""
    return UPRIGHT_VIEWS if crop == "upright" else 1


def default_max_bank(crop: str) -> int:
    """The bank's row cap: MAX_BANK per view of a good photo."""
    return MAX_BANK * views_per_photo(crop)


def default_searched_rows(crop: str) -> int:
    """Rows every patch is compared with: SEARCHED_ROWS per view of a good photo."""
    return SEARCHED_ROWS * views_per_photo(crop)


def bank_bounds(crop: str, max_bank: int | None, searched_rows: int | None) -> tuple[int, int]:
    """(rows at most, rows every patch searches) from the command line's values: None takes the
    crop's default, 0 is no bound, a negative count is refused."""
    if min(max_bank or 0, searched_rows or 0) < 0:
        raise InputError("must be 0 (no bound) or a row count", "--max-bank/--searched-rows")
    return (default_max_bank(crop) if max_bank is None else max_bank,
            default_searched_rows(crop) if searched_rows is None else searched_rows)


def add_bank_arguments(parser: argparse.ArgumentParser) -> None:
    """The bank's options, the same for `anomaly fit` and `anomaly evaluate`."""
    parser.add_argument("--coreset-ratio", type=float, default=CORESET_RATIO,
                        help="share of patches kept, up to --max-bank rows")
    parser.add_argument("--max-bank", type=int, default=None,
                        help="bank rows at most (0: no cap; default 4096 per view of a photo: "
                             "8192 with --crop upright); bounds memory")
    parser.add_argument("--searched-rows", type=int, default=None,
                        help="bank rows every patch is compared with; each photo's worst "
                             "patches then see the rest (0: every row; default 1536 per view "
                             "of a photo); bounds latency")
    parser.add_argument("--neighbours", type=int, default=NEIGHBOURS,
                        help="support rows of the density-weighted image score (1: plain max)")
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
               progress: bool = True, max_bank: int | None = MAX_BANK,
               searched_rows: int | None = None) -> np.ndarray:
    """Memory bank (M x C float32) from good photos' patch features, coreset-subsampled to
    `coreset_ratio` of the patches and at most `max_bank` rows (None: no cap), in coreset order.
    Where every patch is kept, the first `searched_rows` are still a coreset of them all, so
    that a two-pass search's first pass covers the bank."""
    if not 0.0 < coreset_ratio <= 1.0:
        msg = f"coreset ratio must be in (0, 1], got {coreset_ratio}"
        raise ValueError(msg)
    patches = flatten_patches(features).astype(np.float32)
    count = max(1, int(round(len(patches) * coreset_ratio)))
    count = min(count, max_bank) if max_bank else count
    if count < len(patches):
        return patches[greedy_coreset(patches, count, seed=seed, progress=progress)]
    if not searched_rows or searched_rows >= len(patches):
        return patches
    first = greedy_coreset(patches, searched_rows, seed=seed, progress=progress)
    return patches[np.r_[first, np.setdiff1d(np.arange(len(patches)), first)]]


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


def worst_patch_rows(distances: np.ndarray, per_photo: int, count: int) -> np.ndarray:
    """Rows (in the flattened patches) of each photo's `count` largest distances, largest
    first, the lower index first on a tie (ONNX TopK's order)."""
    by_photo = distances.reshape(-1, per_photo)
    worst = np.argsort(-by_photo, axis=1, kind="stable")[:, :count]
    return (worst + np.arange(len(by_photo))[:, None] * per_photo).ravel()


def two_pass_neighbours(queries: np.ndarray, bank: np.ndarray, searched_rows: int,
                        per_photo: int) -> tuple[np.ndarray, np.ndarray]:
    """(mapped, scored): each query row's distance to the bank's first `searched_rows` rows,
    and the same with each photo's RERANKED_PATCHES worst rows by it compared with the whole
    bank. The map keeps the first: one scale for every patch (re-ranking only the worst mixed
    two and lost pixel AUROC on four of five sets, BENCHMARKS "Two-pass search")."""
    mapped, _ = nearest_neighbours(queries, bank[:searched_rows])
    if searched_rows >= len(bank):
        return mapped, mapped
    rows = worst_patch_rows(mapped, per_photo, min(RERANKED_PATCHES, per_photo))
    rest, _ = nearest_neighbours(queries[rows], bank[searched_rows:])
    scored = mapped.copy()
    scored[rows] = np.minimum(mapped[rows], rest)
    return mapped, scored


@dataclass(frozen=True)
class PatchCore:
    """A fitted detector for one product category."""

    bank: np.ndarray  # M x C, in coreset order (its first rows cover the good patches)
    support: np.ndarray | None = None  # M x k: each row's nearest rows, for the weighted score
    searched_rows: int | None = None  # rows every patch is compared with; None: the whole bank

    @classmethod
    def fit(cls, features: np.ndarray, coreset_ratio: float = CORESET_RATIO, seed: int = 0,
            progress: bool = True, max_bank: int | None = MAX_BANK,
            neighbours: int = NEIGHBOURS, searched_rows: int | None = SEARCHED_ROWS
            ) -> PatchCore:
        bank = build_bank(features, coreset_ratio, seed=seed, progress=progress, max_bank=max_bank,
                          searched_rows=searched_rows)
        return cls(bank, support_neighbours(bank, neighbours) if neighbours > 1 else None,
                   searched_rows if searched_rows and searched_rows < len(bank) else None)

    @property
    def rows_searched(self) -> int:
        """Rows every patch is compared with (the whole bank when it is searched in one pass)."""
        return self.searched_rows or len(self.bank)

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores N, maps N x h x w): each patch's distance to the bank (its searched rows) is
        the map; the worst patch's distance to the whole bank, density-weighted when the
        detector has support rows, is the score."""
        count, _, height, width = features.shape
        queries = flatten_patches(features)
        mapped, scored = two_pass_neighbours(queries, self.bank, self.rows_searched,
                                             height * width)
        per_photo = scored.reshape(count, height * width)
        scores = per_photo.max(axis=1)
        if self.support is not None:
            rows = per_photo.argmax(axis=1) + np.arange(count) * height * width
            nearest = nearest_neighbours(queries[rows], self.bank)[1]  # over the whole bank
            scores = scores * density_weights(queries[rows], nearest, self.bank, self.support)
        return scores, mapped.reshape(count, height, width)
