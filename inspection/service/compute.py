"""A bounded pool of compute slots: at most `workers` requests decode and run the model at once.

Routes that score photos are plain `def`s, so FastAPI runs them in its threadpool (up to 40
threads) and the event loop never blocks on decoding or inference. Without a bound, 16
concurrent requests would run 16 decodes and 16 ONNX Runtime calls on 2 cores: each is slowed by
all the others and the latency tail grows (measured in BENCHMARKS.md, "Service under load").
With one slot per core, the rest wait in line, in arrival order, and each runs at full speed.
Each ONNX Runtime call then gets cores / workers threads, without spin-waiting.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def default_workers() -> int:
    return os.cpu_count() or 1


def ort_threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class ComputeSlots:
    def __init__(self, workers: int = 0):
        self.workers = workers or default_workers()
        self._slots = threading.BoundedSemaphore(self.workers)
        self._fifo = threading.Lock()  # one waiter at a time takes the next free slot: arrival order

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold a slot for the block; yields the seconds spent waiting for it."""
        started = time.perf_counter()
        with self._fifo:
            self._slots.acquire()
        try:
            yield time.perf_counter() - started
        finally:
            self._slots.release()
