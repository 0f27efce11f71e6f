"""Throughput of a callable from one or more threads for a bounded time (benchmarks only)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def per_second(work: Callable[[], object], units_per_call: int, seconds: float,
               callers: int = 1, warmup: int = 2) -> float:
    """Units (photos) per second of `work` called back to back from `callers` threads."""
    for _ in range(warmup):
        work()
    deadline = time.perf_counter() + seconds

    def loop(_: int) -> int:
        calls = 0
        while time.perf_counter() < deadline or calls == 0:
            work()
            calls += 1
        return calls

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        calls = sum(pool.map(loop, range(callers)))
    return calls * units_per_call / (time.perf_counter() - started)
