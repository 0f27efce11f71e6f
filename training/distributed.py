"""Multi-process training under torchrun: one process per GPU (or several CPU processes), gradients
averaged by DistributedDataParallel.

    torchrun --nproc_per_node 4 -m training.train --recipe training/recipes/default.yaml
    returns-inspect train --nproc 4 ...     # the same, torchrun started for you

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is a world of one and nothing
here changes a plain run. The backend is NCCL on CUDA and gloo on CPU. `--batch-size` stays the
*global* batch: each of N processes takes batch_size / N rows of every step, the rows a single
process would have taken (a DistributedSampler over one shared shuffle), so N processes and one
walk the same schedule. Only rank 0 writes checkpoints, history, config and progress bars;
metrics are reduced over all ranks before anyone logs them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist

from inspection.errors import InputError

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=torch.nn.Module)


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1
    launched: bool = False  # under torchrun (even with one process): shard with a DistributedSampler

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world() -> World:
    """The world torchrun describes in the environment (a world of one without torchrun)."""
    if "WORLD_SIZE" not in os.environ:
        return World()
    return World(rank=int(os.environ["RANK"]), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                 size=int(os.environ["WORLD_SIZE"]), launched=True)


def start(world: World, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU); quiet the other ranks' logs."""
    if not world.launched:
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend(device), rank=world.rank,
                            world_size=world.size, device_id=device if device.type == "cuda" else None)
    if not world.is_main:
        logging.getLogger().setLevel(logging.WARNING)  # one log, from rank 0


def backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def stop(world: World) -> None:
    if world.launched and dist.is_initialized():
        dist.destroy_process_group()


def device_for(world: World, name: str) -> torch.device:
    """Each rank on its own GPU (LOCAL_RANK); CPU ranks share the CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was asked for but this machine has no usable CUDA device; "
                         "use --device cpu or auto", "--device")
    cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    if not cuda:
        return torch.device("cpu")
    if world.launched and world.local_rank >= torch.cuda.device_count():
        raise InputError(f"rank {world.rank} wants GPU {world.local_rank} but this node has "
                         f"{torch.cuda.device_count()}: --nproc_per_node at most the GPU count",
                         "--nproc")
    return torch.device("cuda", world.local_rank if world.launched else 0)


def rank_batch_size(world: World, batch_size: int) -> int:
    if batch_size % world.size:
        raise InputError(f"the global batch {batch_size} must divide evenly over {world.size} "
                         "processes", "--batch-size")
    return batch_size // world.size


def default_threads() -> int:
    """CPU threads per process: the cores shared out among this node's processes."""
    return max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def sync_batch_norm(model: ModelT, world: World, device: torch.device) -> ModelT:
    """BatchNorm statistics over the global batch on GPUs (PyTorch syncs them only there; CPU
    ranks normalise over their own share of the batch, as DDP does by default)."""
    if world.size > 1 and device.type == "cuda":
        # Converted in place below the root, which stays the same InspectionNet.
        return cast(ModelT, torch.nn.SyncBatchNorm.convert_sync_batchnorm(model))
    return model


class DistributedModel(torch.nn.parallel.DistributedDataParallel):
    """DDP that still answers the wrapped model's attributes (taxonomy, category_logits), so the
    shared loss and evaluation code takes either."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: ModelT, world: World, device: torch.device, every_parameter_used: bool) -> ModelT:
    """DDP over the parameters that train now. Called again when the frozen part changes, since
    DDP's gradient buckets are fixed when it is built."""
    if not world.launched:
        return model
    # The category classifier is applied outside forward (in the loss): with every trainable
    # parameter getting a gradient each step, DDP need not search the graph for unused ones.
    ddp = DistributedModel(model, device_ids=[device.index] if device.type == "cuda" else None,
                           find_unused_parameters=not every_parameter_used)
    return cast(ModelT, ddp)  # it answers every attribute of the model it wraps


def mean_over_ranks(values: dict[str, float], world: World, summed: tuple[str, ...] = ()
                    ) -> dict[str, float]:
    """Each value averaged over the ranks (those named in `summed` added up, e.g. images/s)."""
    if not world.launched or world.size == 1:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) if k in summed else float(v) / world.size for k, v in zip(keys, tensor, strict=True)}


def gather_outputs(total_loss: float, seen: int, collected: dict[str, list[np.ndarray]],
                   world: World) -> tuple[float, int, dict[str, list[np.ndarray]]]:
    """Every rank's validation outputs on every rank, so metrics such as macro-F1 and mAP are
    computed on the whole validation set, exactly as one process would."""
    if not world.launched or world.size == 1:
        return total_loss, seen, collected
    parts: list[Any] = [None] * world.size
    dist.all_gather_object(parts, (total_loss, seen, collected))
    merged: dict[str, list[np.ndarray]] = {}
    for _, _, part in parts:
        for key, arrays in part.items():
            merged.setdefault(key, []).extend(arrays)
    return sum(p[0] for p in parts), sum(p[1] for p in parts), merged
