"""Greedy coreset subsampling (k-center greedy), as PatchCore uses to shrink a memory bank.

Each step adds the point farthest from everything chosen so far, so the chosen set covers the
bank: the largest distance from any bank point to its nearest chosen point shrinks as fast as a
greedy method allows. Distances are measured after a random projection to a few dozen
dimensions (Johnson-Lindenstrauss), which keeps the ranking while making each step cheap.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

PROJECTION_DIM = 64  # PatchCore uses 128; 64 keeps the greedy order close at half the cost


def project(points: torch.Tensor, dim: int = PROJECTION_DIM, seed: int = 0) -> torch.Tensor:
    """Gaussian random projection to `dim` dimensions (identity when already that small)."""
    if points.shape[1] <= dim:
        return points
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(points.shape[1], dim, generator=generator) / dim**0.5
    return points @ matrix


def greedy_coreset(points: np.ndarray | torch.Tensor, count: int, seed: int = 0,
                   progress: bool = True) -> np.ndarray:
    """Indices of `count` distinct rows of `points` (P x C) chosen by k-center greedy."""
    data = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    total = data.shape[0]
    if count >= total:
        return np.arange(total)
    if count < 1:
        msg = f"coreset size must be at least 1, got {count}"
        raise ValueError(msg)
    reduced = project(data, seed=seed)
    squared_norms = (reduced * reduced).sum(dim=1)
    start = int(torch.randint(total, (1,), generator=torch.Generator().manual_seed(seed)))
    chosen = [start]
    # squared distance from every point to its nearest chosen point so far; one mat-vec per
    # step (|x|^2 - 2 x.c + |c|^2) instead of materialising every difference vector
    nearest = squared_norms - 2 * (reduced @ reduced[start]) + squared_norms[start]
    for _ in tqdm(range(count - 1), desc="coreset", disable=not progress, mininterval=1.0):
        farthest = int(torch.argmax(nearest))
        chosen.append(farthest)
        distance = squared_norms - 2 * (reduced @ reduced[farthest]) + squared_norms[farthest]
        torch.minimum(nearest, distance, out=nearest)
    return np.asarray(chosen, dtype=np.int64)


def coverage_radius(points: np.ndarray, chosen: np.ndarray) -> float:
    """Largest distance from any point to its nearest chosen point (lower = better cover)."""
    data = torch.as_tensor(points, dtype=torch.float32)
    distances = torch.cdist(data, data[torch.as_tensor(chosen)])
    return float(distances.min(dim=1).values.max())
