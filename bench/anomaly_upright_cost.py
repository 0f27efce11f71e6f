"""What a detector fitted on upright items (`anomaly fit --crop upright`) costs the served
anomaly branch, against the classifier alone and the whole-photo detector, on one machine in
one run (interleaved medians).

    python bench/anomaly_upright_cost.py --manifest datasets/sample/manifest.csv --category phone

Three ways through the bundle's model and the category's detector, one photo at a time, photos
decoded as the service decodes them: the classifier alone; + the detector on the whole photo's
patch features (`crop: none`, the default); + finding the item, a second model run on its upright
cut-out and the map drawn back (`crop: upright`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import describe  # noqa: E402
from inspection.anomaly import AnomalyDetectors  # noqa: E402
from inspection.engine import Engine  # noqa: E402
from inspection.images import load_photo  # noqa: E402
from inspection.locate import find_upright  # noqa: E402
from inspection.manifest import read_manifest  # noqa: E402


def median_ms(ways: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms of each way, timed in turn so load from elsewhere hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for round_index in range(repeats + 3):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            if round_index >= 3:  # warm-up rounds
                samples[name].append((time.perf_counter() - started) * 1000.0)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--category", default="phone")
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    engine = Engine.load(args.bundle, threads=args.threads)
    card = engine.card
    whole = AnomalyDetectors.load(args.bundle, card)
    upright_card = replace(card, anomaly={**card.anomaly, args.category: {
        **card.anomaly[args.category], "crop": "upright"}})
    upright = AnomalyDetectors.load(args.bundle, upright_card)
    manifest = read_manifest(args.manifest)
    rows = [s for s in manifest.samples if s.category == args.category][:args.photos]
    photos = [load_photo(manifest.image_path(s), min_side=engine.input_size) for s in rows]
    located = sum(find_upright(photo) is not None for photo in photos)

    def classify() -> None:
        for photo in photos:
            engine.predict([photo])

    def run(detectors: AnomalyDetectors) -> Callable[[], None]:
        def classify_and_score() -> None:
            for photo in photos:
                prediction = engine.predict([photo])[0]
                detectors.score_photos(args.category, [photo], prediction.patch_features[None],
                                       engine.patch_features)
        return classify_and_score

    ms = median_ms({"classifier": classify, "whole photo": run(whole),
                    "upright item": run(upright)}, args.repeats)
    per_photo = {name: value / len(photos) for name, value in ms.items()}
    print(f"{args.category}: {len(photos)} photos, an item located on {located}; "
          f"{args.threads} thread(s), median of {args.repeats} rounds")
    for name, value in per_photo.items():
        print(f"| {name} | {value:.2f} ms | {value / per_photo['classifier']:.2f}x |")


if __name__ == "__main__":
    main()
