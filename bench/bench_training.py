"""`returns-inspect bench training`: where a CPU training step's time goes, same run, same batch.

1. The model step alone (forward, loss, backward, AdamW) on a fixed batch of tensors, in the
   default (contiguous) memory format and in channels_last, interleaved rounds.
2. The real data pipeline alone (decode, resize, augment, normalise, collate) in photos/s: the
   first pass decodes every photo, later passes read the dataset's cache of resized uint8 arrays.
3. Data and step together (what `train` does) against the step alone: the pipeline's cost.
4. Peak RSS of this process, which has just run the training steps.

    returns-inspect bench training --manifest datasets/sample/manifest.csv [--quick]

CUDA (AMP bf16, channels_last, torch.compile) is not measured here: no GPU was available when
this was written; `train --device cuda` is untested code until someone runs it on one.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import load_average  # noqa: E402
from bench.machine import describe  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, default=Path("datasets/sample/manifest.csv"))
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement")
    parser.add_argument("--quick", action="store_true", help="160 px, batch 8, 1 round (< 1 min)")
    parser.add_argument("--json", type=Path, help="write every figure here")


def setup(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from inspection.card import PreprocessSpec
    from inspection.manifest import read_manifest
    from inspection.taxonomy import load_taxonomy
    from training.config import TrainConfig
    from training.data import InspectionDataset
    from training.engine import LossSettings
    from training.model import build_model
    from training.presets import get_preset
    from training.train import make_optimizer

    torch.manual_seed(0)
    taxonomy = load_taxonomy(None)
    manifest = read_manifest(args.manifest, taxonomy)
    rows = (manifest.split("train") or manifest.samples)[:args.batch_size * 4]
    categories = taxonomy.categories
    spec = PreprocessSpec(input_size=args.input_size)
    dataset = InspectionDataset(manifest, rows, taxonomy, categories, spec, get_preset("medium"))
    model = build_model(taxonomy, pretrained=True, categories=categories)
    model.freeze_backbone("all")  # all blocks trainable: the costliest step
    config = TrainConfig(manifest=str(args.manifest), batch_size=args.batch_size,
                         input_size=args.input_size)
    return {"dataset": dataset, "model": model, "optimizer": make_optimizer(model, config),
            "settings": LossSettings(), "torch": torch}


def collate(dataset: Any, indices: list[int]) -> dict[str, Any]:
    from torch.utils.data import default_collate

    return default_collate([dataset[i] for i in indices])


def step(parts: dict[str, Any], batch: dict[str, Any], channels_last: bool) -> float:
    """One optimiser step; returns its seconds."""
    from training.engine import compute_loss, to_device

    torch, model = parts["torch"], parts["model"]
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    started = time.perf_counter()
    moved = to_device(batch, torch.device("cpu"), channels_last)
    loss, _ = compute_loss(model, model(moved["image"]), moved, parts["settings"])
    parts["optimizer"].zero_grad(set_to_none=True)
    loss.backward()
    parts["optimizer"].step()
    return time.perf_counter() - started


def data_pass(dataset: Any, batch_size: int, batches: int) -> float:
    """Photos/s of decode + augment + collate for `batches` batches."""
    started = time.perf_counter()
    for index in range(batches):
        collate(dataset, list(range(index * batch_size, (index + 1) * batch_size)))
    return batches * batch_size / (time.perf_counter() - started)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    parts = setup(args)
    dataset, size = parts["dataset"], args.batch_size
    batches = max(1, min(4, len(dataset) // size))
    cold = data_pass(dataset, size, batches)  # every photo decoded for the first time
    warm = data_pass(dataset, size, batches)  # the resized uint8 cache, augmentation still runs
    batch = collate(dataset, list(range(size)))
    step(parts, batch, False)  # warm-up: allocations, first-call dispatch
    step(parts, batch, True)
    seconds: dict[str, list[float]] = {"contiguous": [], "channels_last": []}
    with_data: list[float] = []
    for _ in range(args.rounds):
        seconds["contiguous"].append(step(parts, batch, False))
        seconds["channels_last"].append(step(parts, batch, True))
        started = time.perf_counter()
        step(parts, collate(dataset, list(range(size))), True)
        with_data.append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    fastest = min(median, key=median.__getitem__)
    return {
        "input_size": args.input_size, "batch_size": size, "rounds": args.rounds,
        "photos": len(dataset), "step_s": median,
        "channels_last_speedup": median["contiguous"] / median["channels_last"],
        "model_only_photos_per_s": size / median[fastest],
        "pipeline_photos_per_s": {"cold_decode": cold, "cached": warm},
        "step_with_data_photos_per_s": size / statistics.median(with_data),
        "real_over_model_only": median[fastest] / statistics.median(with_data),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(args: argparse.Namespace) -> int:
    if args.quick:
        args.input_size, args.batch_size, args.rounds = 160, 8, 1
    print(f"machine: {describe()}\nload average at start: {load_average()}", flush=True)
    report = bench(args)
    step_s = report["step_s"]
    print(f"Lite0 {report['input_size']} px, batch {report['batch_size']}, all blocks trainable, "
          f"median of {report['rounds']} interleaved rounds:")
    print(f"  step: contiguous {step_s['contiguous']:.2f} s, channels_last {step_s['channels_last']:.2f} s"
          f" -> channels_last x{report['channels_last_speedup']:.2f}")
    pipeline = report["pipeline_photos_per_s"]
    print(f"  data pipeline alone: {pipeline['cold_decode']:.1f} photos/s decoding, "
          f"{pipeline['cached']:.1f} photos/s from the resized-photo cache "
          f"(x{pipeline['cached'] / pipeline['cold_decode']:.1f})")
    print(f"  model step alone {report['model_only_photos_per_s']:.1f} photos/s; with the data "
          f"pipeline {report['step_with_data_photos_per_s']:.1f} photos/s "
          f"(real / model-only = {report['real_over_model_only']:.2f})")
    print(f"  peak RSS of this training process: {report['peak_rss_mib']:.0f} MiB")
    report["machine"], report["load_average_end"] = describe(), load_average()
    print(f"load average at end: {report['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
