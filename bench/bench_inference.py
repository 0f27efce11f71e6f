"""`returns-inspect bench inference`: the model's own speed on this CPU, every figure beside a
baseline from the same run.

1. The CPU's measured float32 matrix-multiply peak (numpy/BLAS, all cores): efficiency figures
   below are achieved model FLOP/s against it.
2. ONNX Runtime FP32 vs PyTorch eager, the same network and weights (the default bundle's
   architecture with ImageNet weights, exported like `returns-inspect export`), batch 1/8/32.
3. ONNX Runtime session options (threads, spin-waiting, graph optimisation) and batching
   (is micro-batching concurrent requests a win?), interleaved rounds.
4. INT8 vs FP32: speed and the change on real photos (bench/bench_inference_int8.py).
5. JPEG decode of a 12 MP phone photo: full vs reduced DCT-scale decode.

    returns-inspect bench inference [--quick] [--json out.json]     # --quick: < 1 min, no INT8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_inference_ort import bench_batching, bench_session_options, interleaved, session  # noqa: E402
from bench.loadgen import load_average  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.photos import photo_set  # noqa: E402
from bench.timing import per_second  # noqa: E402
from inspection.engine import Engine  # noqa: E402
from inspection.images import decode_photo  # noqa: E402
from inspection.precision import cpu_int8_features  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--quick", action="store_true",
                        help="short runs, no INT8 (quantising takes ~40 s alone): < 1 min")
    parser.add_argument("--skip-int8", action="store_true", help="leave out the INT8 comparison")
    parser.add_argument("--json", type=Path, help="write every figure here")


def matmul_peak_gflops(seconds: float, size: int = 1024) -> float:
    """Best float32 GEMM rate over a few runs: the CPU's practical peak for dense math."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def torch_model(engine: Engine, path: Path) -> tuple[Any, float]:
    """The bundle's architecture with ImageNet weights, exported to `path`; its FLOPs per photo."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from training.export import write_onnx
    from training.model import build_model

    card = engine.card
    model = build_model(engine.taxonomy, backbone=card.backbone, pretrained=True,
                        embedding_dim=int(card.training.get("embedding_dim", 128))).eval()
    write_onnx(model, path, card.preprocessing, opset=18, model_id="bench")
    size = card.preprocessing.input_size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size))
    return model, float(counter.get_total_flops())


def bench_frameworks(engine: Engine, seconds: float, rounds: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    size = engine.input_size
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "model.onnx"
        model, flops = torch_model(engine, path)
        ort_session = session(path, threads=0, spinning=False)  # 0: ORT's default, all cores
        configs = {}
        for batch_size in (1, 8, 32):
            batch = np.random.default_rng(3).normal(size=(batch_size, 3, size, size)).astype(np.float32)
            tensor = torch.from_numpy(batch)

            def eager(t: Any = tensor) -> None:
                with torch.inference_mode():
                    model(t)

            configs[f"pytorch eager batch={batch_size}"] = (
                lambda f=eager, n=batch_size: per_second(f, n, seconds))
            configs[f"onnxruntime fp32 batch={batch_size}"] = (
                lambda b=batch, n=batch_size: per_second(lambda: ort_session.run(None, {"image": b}),
                                                         n, seconds))
        rates = interleaved(configs, rounds)
    return {"flops_per_photo": flops, "photos_per_s": rates, "torch_threads": torch.get_num_threads()}


def bench_decode(input_size: int, seconds: float) -> dict[str, float]:
    data = photo_set("12MP", 1)[0]
    rates = interleaved({"full": lambda: per_second(lambda: decode_photo(data), 1, seconds),
                         "reduced": lambda: per_second(lambda: decode_photo(data, min_side=input_size),
                                                       1, seconds)}, 2)
    return {"full_ms": 1000 / rates["full"], "reduced_ms": 1000 / rates["reduced"]}


def efficiency(rate: float, flops: float, peak_gflops: float) -> str:
    achieved = rate * flops / 1e9
    return f"{achieved:6.1f} GFLOP/s = {achieved / peak_gflops:5.1%} of the matmul peak"


def report_text(report: dict[str, Any]) -> None:
    peak = report["matmul_peak_gflops"]
    frameworks = report["frameworks"]
    flops = frameworks["flops_per_photo"]
    print(f"\nmatmul peak (float32 GEMM 1024, all cores): {peak:.1f} GFLOP/s; model "
          f"{flops / 1e9:.3f} GFLOP per photo")
    for name, rate in frameworks["photos_per_s"].items():
        print(f"  {name:<32} {rate:8.1f} photos/s  {efficiency(rate, flops, peak)}")
    for batch_size in (1, 8, 32):
        ratio = (frameworks["photos_per_s"][f"onnxruntime fp32 batch={batch_size}"]
                 / frameworks["photos_per_s"][f"pytorch eager batch={batch_size}"])
        print(f"  batch {batch_size:2d}: onnxruntime / pytorch eager = {ratio:.2f}")
    print("\nsession options (photos/s at batch 1, median of interleaved rounds):")
    for name, rate in sorted(report["session_options"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<55} {rate:8.1f}")
    print("\nbatching (photos/s per photo, spinning off):")
    for name, rate in report["batching"].items():
        print(f"  {name:<24} {rate:8.1f}")
    int8 = report.get("int8")
    print(f"\nCPU int8 dot-product instructions: {report['cpu_int8_features'] or 'none'}")
    if int8 and "skipped" not in int8:
        rates = int8["photos_per_s"]
        for batch_size in (1, 8):
            quick, base = rates[f"int8 batch={batch_size}"], rates[f"fp32 batch={batch_size}"]
            print(f"  int8 / fp32 at batch {batch_size}: {quick / base:.2f} ({quick:.1f} vs "
                  f"{base:.1f} photos/s)")
        for name, figures in int8["datasets"].items():
            print(f"  {name} ({figures['photos']} real photos, classes {figures['classes']}): 1-NN "
                  f"accuracy fp32 {figures['knn_accuracy_fp32']:.3f} -> int8 "
                  f"{figures['knn_accuracy_int8']:.3f}; top-1 agreement {figures['top1_agreement']}")
    elif int8:
        print(f"  int8: {int8['skipped']}")
    decode = report["decode"]
    print(f"\ndecode 12 MP JPEG: full {decode['full_ms']:.1f} ms, reduced {decode['reduced_ms']:.1f} ms "
          f"(x{decode['full_ms'] / decode['reduced_ms']:.1f})")


def main(args: argparse.Namespace) -> int:
    print(f"machine: {describe()}\nload average at start: {load_average()}", flush=True)
    seconds, rounds = (0.4, 1) if args.quick else (1.5, 3)
    engine = Engine.load(args.bundle)
    onnx_path = engine.bundle_dir / engine.card.onnx_file
    report: dict[str, Any] = {"machine": describe(), "cpu_int8_features": cpu_int8_features()}
    report["matmul_peak_gflops"] = matmul_peak_gflops(1.0 if args.quick else 3.0)
    report["frameworks"] = bench_frameworks(engine, seconds, rounds)
    report["session_options"] = bench_session_options(onnx_path, engine.input_size, seconds / 2, rounds)
    report["batching"] = bench_batching(onnx_path, engine.input_size, seconds, rounds)
    if args.skip_int8 or args.quick:
        report["int8"] = {"skipped": "--quick or --skip-int8; run without them for INT8"}
    else:
        from bench.bench_inference_int8 import bench_int8

        report["int8"] = bench_int8(engine, per_class=20, calibration_count=32, seconds=seconds,
                                    rounds=rounds)
    report["decode"] = bench_decode(engine.input_size, seconds)
    report_text(report)
    report["load_average_end"] = load_average()
    print(f"load average at end: {report['load_average_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
