"""Decompression amplification (issue 9, item 4): wall time and peak RSS of POST /v1/inspections
with tiny, huge-canvas photos, for this checkout and, with --baseline, another checkout of the
project (e.g. `git archive main`). Each request runs in a fresh interpreter so its peak RSS is
its own; figures are medians of --repeats runs. Loopback only (the ASGI app in-process).

    python bench/bench_decode_bounds.py --baseline /tmp/main-checkout --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CASES = {  # name -> (photos in the request: width, height, mode, format)
    "one 8000x7999 1-bit PNG": [(8000, 7999, "1", "PNG")] * 1,
    "eight 8000x7999 1-bit PNGs": [(8000, 7999, "1", "PNG")] * 8,
    "two 4800x4800 1-bit PNGs": [(4800, 4800, "1", "PNG")] * 2,
}
CHILD = r"""
import io, json, resource, sys, tempfile, time
from pathlib import Path
from PIL import Image
sys.path.insert(0, sys.argv[1] + "/tests")
from bundle_factory import CRACKED_ITEM, build_bundle
from fastapi.testclient import TestClient
from inspection.service.app import create_app
from inspection.service.settings import Settings
photos = json.loads(sys.argv[2])
root = Path(tempfile.mkdtemp())
bundle = build_bundle(root / "bundle", biases=CRACKED_ITEM)
files = []
for i, (w, h, mode, fmt) in enumerate(photos):
    buffer = io.BytesIO(); Image.new(mode, (w, h)).save(buffer, format=fmt)
    files.append(("photos", (f"{i}.{fmt.lower()}", buffer.getvalue(), "application/octet-stream")))
with TestClient(create_app(Settings(data_dir=root / "data", bundle_dir=bundle,
                                    api_keys="bench-key-123:station"))) as client:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    answer = client.post("/v1/inspections", headers={"X-API-Key": "bench-key-123"}, files=files,
                         data={"return_id": "B-1"})
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"status": answer.status_code, "seconds": seconds, "bytes": sum(len(f[1][1]) for f in files),
                  "rss_growth_mb": (peak - before) / 1024, "peak_rss_mb": peak / 1024}))
"""


def run(repo: Path, photos: list[tuple[int, int, str, str]]) -> dict[str, float]:
    command = [sys.executable, "-c", CHILD, str(repo), json.dumps(photos)]
    out = subprocess.run(command, cwd=repo, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from bench.machine import describe

    print(f"# machine: {describe()}")
    repos = {"this checkout": HERE, **({"baseline": args.baseline} if args.baseline else {})}
    print("| request | checkout | status | upload | median s | median RSS growth MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name, photos in CASES.items():
        for label, repo in repos.items():
            runs = [run(repo, photos) for _ in range(args.repeats)]
            print(f"| {name} | {label} | {runs[0]['status']} | {runs[0]['bytes'] / 1024:.0f} KB | "
                  f"{statistics.median(r['seconds'] for r in runs):.2f} | "
                  f"{statistics.median(r['rss_growth_mb'] for r in runs):.0f} | "
                  f"{statistics.median(r['peak_rss_mb'] for r in runs):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
