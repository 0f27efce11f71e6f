"""`dataset synth`: the embedded SYNTHETIC sample set — procedurally drawn photos of returned
products on an inspection tray, with exact labels and damage masks.

Every photo is a pure function of (seed, photo index) and its item's (seed, item index), so the
output is byte-identical whatever the number of workers. Not real photos: it exists so that the
pipeline, the default bundle, the demo and the tests run anywhere (datasets/README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from inspection.dataset.split import assign_splits, split_summary
from inspection.dataset.synth.plan import ItemSpec, plan_items
from inspection.dataset.synth.scene import render_photo
from inspection.errors import InputError
from inspection.manifest import Sample, write_manifest
from inspection.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)
JPEG_QUALITY = 92


def _encode(rgb: np.ndarray, suffix: str, params: list[int]) -> bytes:
    ok, data = cv2.imencode(suffix, np.ascontiguousarray(rgb[..., ::-1]) if rgb.ndim == 3 else rgb, params)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 array
        raise RuntimeError(f"could not encode {suffix}")
    return data.tobytes()


def _one_thread() -> None:
    # Two drawing processes on two cores: OpenCV's own thread pool would only oversubscribe them.
    cv2.setNumThreads(1)


def render_to_files(job: tuple[ItemSpec, int, int, Path, tuple[str, ...]]) -> Sample:
    """Draw one photo, write its JPEG (and mask PNG when damaged), return its manifest row."""
    spec, photo_index, size, out, grades = job
    rgb, mask = render_photo(spec, photo_index, size, spec.seed)
    name = f"{photo_index:05d}"
    data = _encode(rgb, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    (out / "images" / f"{name}.jpg").write_bytes(data)
    mask_name = ""
    if spec.damage:
        mask_name = f"masks/{name}.png"
        (out / mask_name).write_bytes(_encode(mask.astype(np.uint8) * 255, ".png", []))
    return Sample(
        image=f"images/{name}.jpg", item_id=spec.item_id, category=spec.category, sku=spec.style.sku,
        labels={"condition": (grades[spec.grade],), "damage": spec.damage, "accessories": spec.accessories},
        mask=mask_name, sha256=hashlib.sha256(data).hexdigest(),
    )


def generate(out: Path, photos: int, size: int, seed: int, taxonomy: Taxonomy, workers: int = 1,
             progress: bool = True) -> list[Sample]:
    """Write images/, masks/, manifest.csv and taxonomy.yaml under `out`; return the rows."""
    items = plan_items(taxonomy, photos, seed)
    grades = taxonomy.head("condition").labels
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [(item, item.first_photo + k, size, out, grades) for item in items for k in range(item.photos)]
    bar = {"total": len(jobs), "desc": "drawing photos", "unit": "photo", "disable": not progress}
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:
            samples = list(tqdm(pool.imap(render_to_files, jobs, chunksize=16), **bar))
    else:
        samples = list(tqdm(map(render_to_files, jobs), **bar))
    samples = assign_splits(samples, seed=seed, stratify="condition")
    write_manifest(out / "manifest.csv", samples, taxonomy.head_names)
    (out / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy.to_dict(), sort_keys=False), encoding="utf-8")
    return samples


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (e.g. datasets/sample)")
    parser.add_argument("--photos", type=int, default=2400, help="number of photos")
    parser.add_argument("--size", type=int, default=256, help="photo side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--taxonomy", help="taxonomy YAML (default: the packaged one)")
    parser.add_argument("--workers", type=int, default=2, help="drawing processes")


def main(args: argparse.Namespace) -> int:
    if args.photos < 1:
        raise InputError(f"must be at least 1, got {args.photos}", "--photos")
    if not 64 <= args.size <= 2048:
        raise InputError(f"must be between 64 and 2048 pixels, got {args.size}", "--size")
    if args.workers < 1:
        raise InputError(f"must be at least 1, got {args.workers}", "--workers")
    taxonomy = load_taxonomy(args.taxonomy)
    started = time.perf_counter()
    samples = generate(Path(args.out), args.photos, args.size, args.seed, taxonomy, args.workers)
    seconds = time.perf_counter() - started
    items = len({s.item_id for s in samples})
    print(f"{Path(args.out) / 'manifest.csv'}: {len(samples)} synthetic photos of {items} items "
          f"in {seconds:.1f} s; {split_summary(samples, 'condition')}")
    return 0
