"""ONNX Runtime session options and batching, measured: what the service's Engine uses.

Every configuration runs in interleaved rounds (A B C D, A B C D, ...) and reports its median,
so a burst of load from elsewhere on the machine hits all of them alike.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.timing import per_second

LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(path: Path, threads: int, spinning: bool, level: str = "all") -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = LEVELS[level]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def interleaved(configs: dict[str, Any], rounds: int) -> dict[str, float]:
    """name -> work() returning photos per second; the median over `rounds` interleaved runs."""
    results: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, work in configs.items():
            results[name].append(work())
    return {name: statistics.median(values) for name, values in results.items()}


def bench_session_options(path: Path, size: int, seconds: float, rounds: int) -> dict[str, float]:
    """Photos/s at batch 1 for one caller and for two concurrent callers (the service's slots)."""
    batch = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    configs = {}
    grid = [(threads, spinning, "all") for threads in (1, 2) for spinning in (True, False)]
    for threads, spinning, level in [*grid, (1, False, "basic")]:
        run = session(path, threads, spinning, level)
        for callers in (1, 2):
            name = f"threads={threads} spinning={spinning} opt={level} callers={callers}"
            configs[name] = (lambda r=run, c=callers: per_second(
                lambda: r.run(None, {"image": batch}), 1, seconds, callers=c))
    return interleaved(configs, rounds)


def bench_batching(path: Path, size: int, seconds: float, rounds: int) -> dict[str, float]:
    """Per-photo throughput of one call per photo vs one call for 4 or 8 photos: does
    micro-batching concurrent requests into one call win on this CPU?"""
    rng = np.random.default_rng(1)
    configs = {}
    for threads in (1, 2):
        run = session(path, threads, spinning=False)
        for batch_size in (1, 4, 8):
            batch = rng.normal(size=(batch_size, 3, size, size)).astype(np.float32)
            configs[f"threads={threads} batch={batch_size}"] = (
                lambda r=run, b=batch, n=batch_size: per_second(
                    lambda: r.run(None, {"image": b}), n, seconds))
    return interleaved(configs, rounds)
