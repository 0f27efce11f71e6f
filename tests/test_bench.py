"""The benchmarks run in quick mode and report what BENCHMARKS.md quotes. No timing is asserted:
only that each figure is there, positive, and that no request failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.loadgen import UNIQUE_MARK, Request
from bench.photos import photo_set

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "inspection.cli", "bench", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_every_request_is_unique_and_well_formed() -> None:
    request = Request.build(photo_set("1MP", 2, mark=UNIQUE_MARK))
    first, second = request.render(1), request.render(2)
    assert len(request.marks) == 3 and first != second and len(first) == len(request.body)  # 2 photos + id
    assert UNIQUE_MARK not in first and first.count(b'name="photos"') == 2
    assert b"RMA-BENCH-000000000001" in first and b"RMA-BENCH-000000000002" in second


@pytest.mark.slow
def test_bench_service_quick_reports_every_figure(tmp_path: Path, cracked_bundle: Path) -> None:
    out = tmp_path / "service.json"
    result = run_bench("service", "--quick", "--bundle", str(cracked_bundle), "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "machine:" in result.stdout and "load average at end" in result.stdout
    report = json.loads(out.read_text())
    assert len(report["rows"]) == 5 and set(report["targets"]) == {
        "service_over_in_process_c4 (target >= 0.85)", "p50_12MP_over_1MP (target <= 2)",
        "p99_over_p50_c16 (target <= 3)"}
    for row in report["rows"]:
        assert row["errors"] == 0 and row["requests"] > 0
        assert row["service_photos_per_s"] > 0 and row["in_process_photos_per_s"] > 0
        assert row["onnx_only_photos_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
        assert {"decode_ms", "inference_ms", "storage_ms", "database_ms"} <= set(row["stages_ms"])
        assert row["server_rss_mib"]["peak"] > 0
    assert any('stage="decode"' in line for line in report["prometheus_stage_sums"])


@pytest.mark.slow
def test_bench_service_soak_reports_memory_over_time(tmp_path: Path, cracked_bundle: Path) -> None:
    out = tmp_path / "soak.json"
    result = run_bench("service", "--soak", "--duration", "4", "--concurrency", "2",
                       "--bundle", str(cracked_bundle), "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["errors"] == 0 and report["ok"] > 0
    assert set(report["server_rss_mib"]) == {"start", "middle", "end", "peak"}


@pytest.mark.slow
def test_bench_training_quick(tmp_path: Path) -> None:
    from tiny_checkpoint import write_photo_set

    manifest = write_photo_set(tmp_path / "photos")
    out = tmp_path / "training.json"
    result = run_bench("training", "--quick", "--manifest", str(manifest), "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["step_s"]["contiguous"] > 0 and report["step_s"]["channels_last"] > 0
    assert report["pipeline_photos_per_s"]["cached"] > 0 and report["peak_rss_mib"] > 0


@pytest.mark.slow
def test_bench_inference_quick(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    result = run_bench("inference", "--quick", "--bundle", str(ROOT / "models" / "default"),
                       "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["matmul_peak_gflops"] > 0 and report["frameworks"]["flops_per_photo"] > 0
    rates = report["frameworks"]["photos_per_s"]
    assert {f"{engine} batch={n}" for engine in ("pytorch eager", "onnxruntime fp32")
            for n in (1, 8, 32)} == set(rates)
    assert all(rate > 0 for rate in [*rates.values(), *report["session_options"].values(),
                                     *report["batching"].values()])
    assert "skipped" in report["int8"]
