"""`returns-inspect score … --engine ray`: the same per-item scoring, spread over a Ray cluster.

Ray Data streams the items (JSON rows naming the photos, never their bytes) through
`map_batches` over a pool of actors; each actor loads the bundle once (one ONNX Runtime session)
and scores its batch with `score_item`, i.e. `inspection.pipeline.inspect_item`, the service's
own code path. The actors read the photos themselves (a shared folder or an object store), so
decoding and inference scale with the actors while the driver only collects the small JSON
results and writes the parts (inspection/score_output.py).

Ray is an optional extra (`pip install -e '.[ray]'`); the in-process engine needs none of it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspection.errors import InputError
from inspection.score_sources import Item

MAX_BLOCKS = 2000  # enough blocks to keep every actor busy; each block is a few items' JSON


@dataclass(frozen=True)
class RayOptions:
    address: str | None  # None: start a local Ray; "auto" or ray://host:10001 joins a cluster
    actors: int  # actors in the pool, each with one ONNX Runtime session
    batch_size: int  # items per map_batches call
    threads: int  # ONNX Runtime threads per actor (Ray reserves as many CPUs)


class ItemScorer:
    """A Ray Data actor: one loaded model, many batches of items."""

    def __init__(self, bundle: str, policy: str | None, threads: int, catalog: str | None):
        # Before the session is made: one actor per reserved CPU, not four threads fighting.
        os.environ["RETURNS_ORT_THREADS"] = str(threads)
        from inspection.decide import load_policy
        from inspection.loaded_model import LoadedModel
        from inspection.score import catalog_lookup

        self.model = LoadedModel.load(bundle)
        self.policy = load_policy(Path(policy) if policy else None)
        self.catalog = catalog_lookup(Path(catalog), self.model) if catalog else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        from inspection.score import score_item

        records = [score_item(self.model, self.policy, Item.from_json(str(row)), self.catalog)
                   for row in batch["item"]]
        return {"item_id": [r["item_id"] for r in records],
                "record": [json.dumps(r) for r in records]}


def score_on_ray(items: list[Item], bundle: Path, policy: Path | None, options: RayOptions,
                 catalog: Path | None = None) -> Iterator[dict[str, Any]]:
    """Results as they arrive (in no particular order), one per item."""
    ray = connect(options.address)
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False  # the CLI shows one bar per item
    blocks = min(MAX_BLOCKS, max(1, math.ceil(len(items) / options.batch_size)))
    dataset = ray.data.from_items([{"item": item.to_json()} for item in items],
                                  override_num_blocks=blocks)
    scored = dataset.map_batches(
        ItemScorer, batch_size=options.batch_size, batch_format="numpy",
        fn_constructor_kwargs={"bundle": str(bundle.resolve()),
                               "policy": str(policy.resolve()) if policy else None,
                               "threads": options.threads,
                               "catalog": str(catalog.resolve()) if catalog else None},
        compute=ActorPoolStrategy(size=options.actors), num_cpus=options.threads)
    for row in scored.iter_rows():
        yield json.loads(row["record"])


def connect(address: str | None) -> Any:
    # Ray Data logs each plan at INFO; the CLI shows its own progress bar (override: set it).
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    try:
        import ray
    except ModuleNotFoundError:
        raise InputError("--engine ray needs Ray: pip install -e '.[ray]'", "--engine") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    return ray
