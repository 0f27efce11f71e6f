"""Per-photo CPU latency of the served path, each figure beside a baseline from the same run.

1. JPEG decode of a 12 MP phone photo: full decode (baseline) vs reduced DCT-scale decode.
2. Model: one photo per ONNX Runtime call (baseline) vs batches of 8, per photo.
3. Whole request: POST /v1/inspections with one station photo through the FastAPI app.

    python bench/bench_inference.py [--bundle models/default] [--repeats 30]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.engine import Engine  # noqa: E402
from inspection.images import decode_photo  # noqa: E402
from inspection.preprocess import batch_inputs  # noqa: E402


def median_ms(function: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def phone_jpeg(width: int = 4000, height: int = 3000, seed: int = 0) -> bytes:
    """A 12 MP JPEG with photo-like content (smooth shading + texture), as phones send."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 120 + 60 * np.sin(x / 300) * np.cos(y / 200)
    texture = rng.normal(0, 12, (height, width)).astype(np.float32)
    rgb = np.stack([base + texture, base * 0.9 + texture, base * 0.8 + texture], axis=2)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def bench_decode(input_size: int, repeats: int) -> None:
    data = phone_jpeg()
    full = median_ms(lambda: decode_photo(data), repeats)
    reduced = median_ms(lambda: decode_photo(data, min_side=input_size), repeats)
    print(f"decode 12 MP JPEG: full {full:.1f} ms, reduced (min side {input_size}) {reduced:.1f} ms, "
          f"speed-up x{full / reduced:.1f}")


def bench_model(engine: Engine, repeats: int) -> None:
    size = engine.input_size
    photos = [np.random.default_rng(i).integers(0, 255, (size, size, 3), dtype=np.uint8) for i in range(8)]
    one = batch_inputs(photos[:1], engine.card.preprocessing)
    eight = batch_inputs(photos, engine.card.preprocessing)
    single = median_ms(lambda: engine.run(one), repeats)
    batched = median_ms(lambda: engine.run(eight), max(5, repeats // 4)) / 8
    print(f"model {engine.card.name} {engine.card.version} at {size}px: batch 1 {single:.1f} ms/photo, "
          f"batch 8 {batched:.1f} ms/photo (x{single / batched:.2f} throughput)")


def bench_request(bundle: Path, repeats: int) -> None:
    try:
        from fastapi.testclient import TestClient

        from inspection.service.app import create_app
        from inspection.service.settings import Settings
    except ImportError as exc:
        print(f"request: skipped ({exc})")
        return
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(bundle_dir=bundle, data_dir=Path(data_dir), dev_mode=True)  # no keys
        buffer = io.BytesIO()
        rgb = np.random.default_rng(1).integers(0, 255, (960, 1280, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
        photo = buffer.getvalue()
        with TestClient(create_app(settings)) as client:
            def post() -> None:
                files = [("photos", ("tray.jpg", photo, "image/jpeg"))]
                response = client.post("/v1/inspections", files=files,
                                       data={"return_id": "bench", "source": "station", "category": "phone"})
                response.raise_for_status()
            total = median_ms(post, repeats)
            health = median_ms(lambda: client.get("/healthz"), repeats)
    print(f"request POST /v1/inspections (1 photo, 1.2 MP JPEG, stored in SQLite): {total:.1f} ms; "
          f"GET /healthz baseline {health:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    engine = Engine.load(args.bundle)
    bench_decode(engine.input_size, args.repeats)
    bench_model(engine, args.repeats)
    bench_request(args.bundle, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
