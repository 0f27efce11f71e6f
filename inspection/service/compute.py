"""A bounded pool of compute slots: at most `workers` requests decode and run the model at once.

Routes that score photos are plain `def`s, so FastAPI runs them in its threadpool (up to 40
threads) and the event loop never blocks on decoding or inference. Without a bound, 16
concurrent requests would run 16 decodes and 16 ONNX Runtime calls on 2 cores: each is slowed by
all the others and the latency tail grows (measured in BENCHMARKS.md, "Service under load").
With one slot per core, the rest wait in line, in arrival order, and each runs at full speed.
Each ONNX Runtime call keeps the engine's default threads (all cores up to 4) but without
spin-waiting (inspection.engine): measured, 2 threads per call beat 1 even with two calls at once
on 2 cores (156 vs 83 photos/s; `returns-inspect bench inference`, session options).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def default_workers() -> int:
    return os.cpu_count() or 1


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
