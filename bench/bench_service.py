"""`returns-inspect bench service`: the service under concurrent load, beside the model's own speed.

For each scenario (photo size x photos per item x concurrency), in one run on one machine:
  onnx-only   ONNX Runtime alone on pre-decoded, preprocessed tensors (the least work possible)
  in-process  inspection.pipeline.inspect_item on the same JPEG bytes (no HTTP, no storage)
  service     POST /v1/inspections against the real server (uvicorn subprocess; SQLite, or
              PostgreSQL with --database-url), from a closed-loop load generator on loopback
and prints throughput, latency percentiles, errors, server RSS, the ratios service/in-process and
in-process/onnx-only, and where the service's time goes (the answer's `timings`).

    returns-inspect bench service [--quick] [--json out.json] [--database-url URL]
    returns-inspect bench service --soak --duration 300 --concurrency 16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import UNIQUE_MARK, Request, RunResult, load_average, merge, run_load  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.photos import photo_set  # noqa: E402
from bench.server import ServerProcess  # noqa: E402


@dataclass(frozen=True)
class Scenario:
    size: str  # bench.photos.SIZES key
    photos: int
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.size} x{self.photos} c{self.concurrency}"


FULL = [Scenario(size, photos, c) for size in ("1MP", "12MP") for photos in (1, 4) for c in (1, 4, 16)]
QUICK = [Scenario("1MP", 1, 1), Scenario("1MP", 1, 4), Scenario("1MP", 1, 16),
         Scenario("12MP", 1, 1), Scenario("1MP", 4, 4)]


@dataclass
class Budget:
    requests: int
    seconds: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--quick", action="store_true", help="5 scenarios, ~2 s each (< 1 min)")
    parser.add_argument("--seconds", type=float, default=12.0, help="time limit per measurement")
    parser.add_argument("--requests", type=int, default=200, help="request limit per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds per scenario (onnx-only, in-process, service, "
                             "baseline, again): a load burst from elsewhere hits all alike")
    parser.add_argument("--soak", action="store_true", help="one long run: errors, latency, RSS over time")
    parser.add_argument("--duration", type=float, default=300.0, help="soak length in seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="soak concurrency")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--baseline-root", type=Path,
                        help="another checkout (e.g. `git archive` of an older commit): its server "
                             "is measured in the same run, scenario by scenario, as the baseline")


def request_for(size: str, photos: int) -> Request:
    return Request.build(photo_set(size, photos, mark=UNIQUE_MARK))


def measure_threads(work: Any, items: list[Any], concurrency: int, budget: Budget) -> tuple[int, float]:
    """Run `work(item)` from `concurrency` threads until the budget runs out: (done, seconds)."""
    deadline = time.perf_counter() + budget.seconds
    counter = iter(range(budget.requests))

    def loop(offset: int) -> int:
        done = 0
        for turn in counter:
            if time.perf_counter() >= deadline:
                break
            work(items[(turn + offset) % len(items)])
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(loop, range(concurrency)))
    return total, time.perf_counter() - started


def in_process(bundle: Path) -> tuple[Any, Any]:
    from inspection.decide import load_policy
    from inspection.loaded_model import LoadedModel

    return LoadedModel.load(bundle), load_policy(None)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_in_process(model: Any, policy: Any, items: list[list[bytes]], scenario: Scenario,
                   budget: Budget) -> tuple[float, float]:
    """Photos per second through inspect_item (decode -> model -> anomaly -> decide), and the
    CPU milliseconds each photo took (all threads, ONNX Runtime's included)."""
    from inspection.pipeline import Upload, inspect_item

    uploads = [[Upload(data) for data in item] for item in items]
    cpu_before = time.process_time()
    done, seconds = measure_threads(lambda u: inspect_item(model, policy, u, "phone"), uploads,
                                    scenario.concurrency, budget)
    photos = done * scenario.photos
    return photos / seconds, 1000.0 * (time.process_time() - cpu_before) / max(1, photos)


def run_onnx_only(model: Any, items: list[list[bytes]], scenario: Scenario, budget: Budget) -> float:
    """Photos per second of one session.run per item on tensors decoded beforehand."""
    from inspection.images import decode_photo
    from inspection.preprocess import batch_inputs

    engine = model.engine
    spec = engine.card.preprocessing
    tensors = [batch_inputs([decode_photo(d, min_side=spec.input_size).rgb for d in item], spec)
               for item in items]
    done, seconds = measure_threads(lambda batch: engine.run(batch), tensors, scenario.concurrency,
                                    budget)
    return done * scenario.photos / seconds


@dataclass(frozen=True)
class ServiceRun:
    result: RunResult
    server_cpu_ms: float  # per photo answered, all the server's threads
    client_cpu_ms: float  # per photo, the load generator's own share of the same cores


def run_service(server: ServerProcess, requests: list[Request], scenario: Scenario,
                budget: Budget) -> ServiceRun:
    run_load(server.port, requests[:1], 1, 2, 30.0)  # warm-up: first-request costs aside
    server_before, client_before = process_cpu_seconds(server.pid), time.process_time()
    result = run_load(server.port, requests, scenario.concurrency, budget.requests,
                      budget.seconds, server_pid=server.pid)
    photos = max(1, sum(sample.photos for sample in result.ok))
    return ServiceRun(result, 1000.0 * (process_cpu_seconds(server.pid) - server_before) / photos,
                      1000.0 * (time.process_time() - client_before) / photos)


def cpu_figures(service: list[ServiceRun], in_process_cpu: list[float]) -> dict[str, float]:
    """CPU ms per photo, medians over rounds: the server, the load generator beside it, the
    in-process pipeline; and the service / in-process throughput the cores allow when both are
    CPU-bound (in-process CPU over server + client CPU)."""
    server = statistics.median(run.server_cpu_ms for run in service)
    client = statistics.median(run.client_cpu_ms for run in service)
    pipeline = statistics.median(in_process_cpu)
    return {"server_cpu_ms_per_photo": server, "client_cpu_ms_per_photo": client,
            "in_process_cpu_ms_per_photo": pipeline,
            "cpu_bound_ceiling": pipeline / (server + client) if server + client else 0.0}


def row(scenario: Scenario, service: RunResult, pipeline: float, onnx: float,
        baseline: RunResult | None, cpu: dict[str, float]) -> dict[str, Any]:
    before = ({"baseline_photos_per_s": baseline.photos_per_s, "baseline_p50_ms": baseline.percentile_ms(50),
               "baseline_p99_ms": baseline.percentile_ms(99), "baseline_errors": len(baseline.errors),
               "baseline_answer_bytes": baseline.ok[0].answer_bytes if baseline.ok else None,
               "after_over_baseline": service.photos_per_s / baseline.photos_per_s
               if baseline.photos_per_s else None} if baseline else {})
    return {"scenario": scenario.name, **asdict(scenario), **before,
            "service_items_per_s": service.items_per_s, "service_photos_per_s": service.photos_per_s,
            "in_process_photos_per_s": pipeline, "onnx_only_photos_per_s": onnx,
            "service_over_in_process": service.photos_per_s / pipeline if pipeline else None,
            "in_process_over_onnx_only": pipeline / onnx if onnx else None,
            "p50_ms": service.percentile_ms(50), "p95_ms": service.percentile_ms(95),
            "p99_ms": service.percentile_ms(99), "requests": len(service.samples),
            "errors": len(service.errors), "first_errors": service.errors[:3],
            "answer_bytes": service.ok[0].answer_bytes if service.ok else None,
            "server_rss_mib": service.rss_at(), "stages_ms": service.stage_means_ms(), **cpu}


def print_row(result: dict[str, Any]) -> None:
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in result["stages_ms"].items())
    rss = result["server_rss_mib"]
    print(f"{result['scenario']:<14} service {result['service_photos_per_s']:6.1f} photos/s "
          f"p50 {result['p50_ms']:7.1f} p95 {result['p95_ms']:7.1f} p99 {result['p99_ms']:7.1f} ms "
          f"errors {result['errors']}/{result['requests']} | in-process "
          f"{result['in_process_photos_per_s']:6.1f} | onnx-only {result['onnx_only_photos_per_s']:6.1f}"
          f" | service/in-process {result['service_over_in_process']:.2f} in-process/onnx-only "
          f"{result['in_process_over_onnx_only']:.2f} | RSS peak {rss.get('peak', 0):.0f} MiB"
          f"\n{'':<14} server stages (mean ms): {stages}; answer {result['answer_bytes']} bytes"
          f"\n{'':<14} CPU ms per photo: server {result['server_cpu_ms_per_photo']:.1f}, load "
          f"generator {result['client_cpu_ms_per_photo']:.1f}, in-process "
          f"{result['in_process_cpu_ms_per_photo']:.1f} -> service/in-process at most "
          f"{result['cpu_bound_ceiling']:.2f} once the cores are saturated", flush=True)
    if "baseline_photos_per_s" in result:
        print(f"{'':<14} baseline server {result['baseline_photos_per_s']:6.1f} photos/s p50 "
              f"{result['baseline_p50_ms']:7.1f} p99 {result['baseline_p99_ms']:7.1f} ms, answer "
              f"{result['baseline_answer_bytes']} bytes: after/baseline "
              f"{result['after_over_baseline']:.2f}", flush=True)


def targets(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The issue's three targets, from the rows that measure them."""
    by_name = {r["scenario"]: r for r in rows}
    one, twelve = by_name.get("1MP x1 c1"), by_name.get("12MP x1 c1")
    c4, c16 = by_name.get("1MP x1 c4"), by_name.get("1MP x1 c16")
    return {
        "service_over_in_process_c4 (target >= 0.85)": c4["service_over_in_process"] if c4 else None,
        "p50_12MP_over_1MP (target <= 2)": twelve["p50_ms"] / one["p50_ms"] if one and twelve else None,
        "p99_over_p50_c16 (target <= 3)": c16["p99_ms"] / c16["p50_ms"] if c16 else None,
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    scenarios = QUICK if args.quick else FULL
    rounds = 1 if args.quick else max(1, args.rounds)
    budget = (Budget(40, 2.0) if args.quick
              else Budget(max(1, args.requests // rounds), args.seconds / rounds))
    model, policy = in_process(args.bundle)
    rows = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerProcess(args.bundle, args.database_url))
        old = (stack.enter_context(ServerProcess(args.bundle, args.database_url, root=args.baseline_root))
               if args.baseline_root else None)
        for scenario in scenarios:
            items = [photo_set(scenario.size, scenario.photos)]
            requests = [request_for(scenario.size, scenario.photos)]
            onnx, pipeline, pipeline_cpu, service, baseline = [], [], [], [], []
            for turn in range(rounds):
                onnx.append(run_onnx_only(model, items, scenario, budget))
                photos_per_s, cpu_ms = run_in_process(model, policy, items, scenario, budget)
                pipeline.append(photos_per_s)
                pipeline_cpu.append(cpu_ms)
                # with a baseline server, take turns going first: load from elsewhere drifts
                if old and turn % 2:
                    baseline.append(run_service(old, requests, scenario, budget).result)
                service.append(run_service(server, requests, scenario, budget))
                if old and not turn % 2:
                    baseline.append(run_service(old, requests, scenario, budget).result)
            rows.append(row(scenario, merge([run.result for run in service]),
                            statistics.median(pipeline), statistics.median(onnx),
                            merge(baseline) if baseline else None,
                            cpu_figures(service, pipeline_cpu)))
            print_row(rows[-1])
        prometheus = [line for line in server.metrics_text().splitlines()
                      if line.startswith("returns_stage_seconds_sum")]
    return {"rows": rows, "targets": targets(rows), "prometheus_stage_sums": prometheus}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """One long run of mixed traffic: station crops, 4-photo items and phone photos."""
    requests = [request_for("1MP", 1), request_for("1MP", 4), request_for("12MP", 1)]
    with ServerProcess(args.bundle, args.database_url) as server:
        run_load(server.port, requests[:1], 1, 2, 30.0)
        result = run_load(server.port, requests, args.concurrency, 10**9, args.duration,
                          server_pid=server.pid)
    items = len(result.ok)
    summary = {"duration_s": result.wall_s, "concurrency": args.concurrency,
               "requests": len(result.samples), "ok": items, "errors": len(result.errors),
               "first_errors": result.errors[:5], "items_per_s": items / result.wall_s,
               "p50_ms": result.percentile_ms(50), "p95_ms": result.percentile_ms(95),
               "p99_ms": result.percentile_ms(99), "server_rss_mib": result.rss_at(),
               "stages_ms": result.stage_means_ms()}
    print(json.dumps(summary, indent=2))
    return summary


def main(args: argparse.Namespace) -> int:
    print(f"machine: {describe()}\nload average at start: {load_average()}", flush=True)
    report = soak(args) if args.soak else bench(args)
    report["load_average_end"] = load_average()
    if not args.soak:
        for name, value in report["targets"].items():
            print(f"target {name}: {'n/a' if value is None else f'{value:.2f}'}")
    print(f"load average at end: {report['load_average_end']}")
    if args.json:
        report["machine"] = describe()
        args.json.write_text(json.dumps(report, indent=2, default=str))
    errors = report.get("errors", sum(r["errors"] for r in report.get("rows", [])))
    return 1 if errors else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
