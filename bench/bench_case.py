"""Customer <-> dock comparison, measured on a bundle (default models/default) at the card's
fitted thresholds (`returns-inspect case fit`):

    python bench/bench_case.py [--bundle models/default] [--photos 400] [--real ../shared/datasets]
        [--json runs/case.json] [--examples DIR] [--latency 20]

Synthetic pairs (dataset synth, seed 11: items the bundle never saw, each drawn in new poses):
same item twice; another item of the same category (and of the same SKU); another category;
the same item before and after its damage (`before_damage`). Real pairs (MVTec AD bottle,
magnetic tile; skipped when the folder is absent): good vs good of the same kind, good vs
defective, and bottle vs tile. Reports, per pair kind, how often each flag is raised, and
AUROCs of the same-item score for several embedding weights (the patch match alone is 0.0).
`--examples DIR` writes the README's demo photos (one return photographed before and after its
damage, and another product). `--latency N` times N dock POSTs (2 photos) in-process against
returns with 2 customer photos vs one-sided returns, interleaved, and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from inspection.case import case_thresholds
from inspection.case_compare import (
    CHANGED,
    EMBEDDING_WEIGHT,
    NEW_DAMAGE,
    WEIGHT_KEY,
    CasePhoto,
    case_photo,
    new_damage_check,
    pair_similarity,
)
from inspection.dataset.synth.plan import ItemSpec, before_damage, plan_items
from inspection.dataset.synth.scene import render_photo
from inspection.decide import load_policy
from inspection.engine import Engine
from inspection.images import load_photo
from inspection.taxonomy import load_taxonomy

SEED = 11  # the default bundle was trained and calibrated on seed 0
SIZE = 256
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
Pair = tuple[CasePhoto, CasePhoto]  # (customer, station)


def scored(engine: Engine, rgbs: Sequence[np.ndarray]) -> list[CasePhoto]:
    photos = []
    for start in range(0, len(rgbs), 16):
        for offset, prediction in enumerate(engine.predict(list(rgbs[start:start + 16]))):
            photo = case_photo("bench", start + offset, "", prediction)
            assert photo is not None, "the bundle has no embedding / patch_features output"
            photos.append(photo)
    return photos


def draw(specs: Sequence[tuple[ItemSpec, int]]) -> list[np.ndarray]:
    return [render_photo(spec, index, SIZE, spec.seed)[0] for spec, index in specs]


def synthetic_pairs(engine: Engine, photos: int) -> dict[str, list[Pair]]:
    items = plan_items(load_taxonomy(), photos, SEED)
    first = scored(engine, draw([(s, 100_000 + 2 * s.index) for s in items]))
    second = scored(engine, draw([(s, 100_001 + 2 * s.index) for s in items]))
    damaged = [i for i, s in enumerate(items) if s.damage]
    before = scored(engine, draw([(before_damage(items[i]), 200_000 + i) for i in damaged]))
    pairs: dict[str, list[Pair]] = {"same item": list(zip(first, second, strict=True))}
    after = list(zip(before, damaged, strict=True))
    pairs["same item, before -> after damage"] = [(b, second[i]) for b, i in after]
    pairs["  of which heavy damage (grade D)"] = [(b, second[i]) for b, i in after if items[i].grade >= 3]
    pairs["  of which light wear (grade C)"] = [(b, second[i]) for b, i in after if items[i].grade == 2]
    for name, alike in (("another item, same category", lambda a, b: a.category == b.category),
                        ("another item, same SKU", lambda a, b: a.style.sku == b.style.sku),
                        ("another category", lambda a, b: a.category != b.category)):
        pairs[name] = other_pairs(items, first, second, alike)
    return pairs


def other_pairs(items: Sequence[ItemSpec], first: Sequence[CasePhoto], second: Sequence[CasePhoto],
                alike: Callable[[ItemSpec, ItemSpec], bool]) -> list[Pair]:
    """Each item's customer photo against the next different item that is `alike` at the dock."""
    pairs = []
    for i, spec in enumerate(items):
        for step in range(1, len(items)):
            j = (i + step) % len(items)
            if items[j].index != spec.index and alike(spec, items[j]):
                pairs.append((first[i], second[j]))
                break
    return pairs


def real_pairs(engine: Engine, root: Path, per_kind: int) -> dict[str, list[Pair]]:
    rng = random.Random(0)
    bottle, tile = root / "mvtec_ad" / "bottle", root / "magnetic_tile"
    def pick(paths: list[Path]) -> list[CasePhoto]:
        chosen = sorted(rng.sample(sorted(paths), min(per_kind, len(paths))))
        return scored(engine, [load_photo(p) for p in chosen])
    good_bottle = pick(list((bottle / "train" / "good").glob("*.png")))
    good_bottle_2 = pick(list((bottle / "test" / "good").glob("*.png")))
    bad_bottle = pick([p for d in (bottle / "test").iterdir() if d.name != "good" for p in d.glob("*.png")])
    good_tile = pick(list((tile / "MT_Free" / "Imgs").glob("*.jpg")))
    good_tile_2 = pick(list((tile / "MT_Free" / "Imgs").glob("*.jpg")))
    bad_tile = pick([p for d in tile.iterdir() if d.name != "MT_Free" for p in (d / "Imgs").glob("*.jpg")])
    return {"bottle: good vs good": list(zip(good_bottle, good_bottle_2, strict=False)),
            "bottle: good vs defective": list(zip(good_bottle, bad_bottle, strict=False)),
            "magnetic tile: good vs good": list(zip(good_tile, good_tile_2, strict=False)),
            "magnetic tile: good vs defective": list(zip(good_tile, bad_tile, strict=False)),
            "bottle vs magnetic tile": list(zip(good_bottle, good_tile, strict=False))}


def rates(pairs: list[Pair], thresholds: dict[str, float | None]) -> dict[str, float]:
    fitted = thresholds[WEIGHT_KEY]
    weight = fitted if fitted is not None else EMBEDDING_WEIGHT
    same = np.array([pair_similarity(station, customer, weight).score for customer, station in pairs])
    rise = np.array([check.score for customer, station in pairs
                     if (check := new_damage_check([station], [customer], None)) is not None])
    return {"pairs": len(pairs), "changed_raised": float(np.mean(same < (thresholds[CHANGED] or -9))),
            "new_damage_raised": float(np.mean(rise >= (thresholds[NEW_DAMAGE] or 9))),
            "same_item_score_median": float(np.median(same)), "damage_rise_median": float(np.median(rise))}


def auroc(negatives: list[Pair], positives: list[Pair], score: Callable[[Pair], float]) -> float:
    values = [score(pair) for pair in negatives + positives]
    return float(roc_auc_score([0] * len(negatives) + [1] * len(positives), values))


def separations(pairs: dict[str, list[Pair]], same: str, others: Sequence[str],
                damaged: str | None) -> dict[str, float]:
    """AUROC of 'another item' by 1 - same-item score, per embedding weight; of new damage by
    the damage rise."""
    def unlike(weight: float) -> Callable[[Pair], float]:
        return lambda pair: -pair_similarity(pair[1], pair[0], weight).score

    def rise(pair: Pair) -> float:
        check = new_damage_check([pair[1]], [pair[0]], None)
        return check.score if check is not None else 0.0

    out = {}
    for other in others:
        for weight in WEIGHTS:
            out[f"changed AUROC, {other}, weight {weight}"] = auroc(pairs[same], pairs[other],
                                                                     unlike(weight))
    if damaged:
        out[f"new damage AUROC, {damaged}"] = auroc(pairs[same], pairs[damaged], rise)
    return out


def write_examples(folder: Path) -> None:
    """Return RMA-2001 before (customer) and after (dock) a crack; RMA-2002's dock photo is
    another product. Items of dataset synth seed 21 (the bundle never saw them)."""
    items = {spec.index: spec for spec in plan_items(load_taxonomy(), 200, 21)}
    phone, other = items[13], items[3]
    shots = {"return_customer_1.jpg": (before_damage(phone), 900),
             "return_customer_2.jpg": (before_damage(phone), 901),
             "return_dock_1.jpg": (phone, 950), "return_dock_2.jpg": (phone, 951),
             "return_dock_other_item.jpg": (other, 950)}
    folder.mkdir(parents=True, exist_ok=True)
    for name, (spec, index) in shots.items():
        rgb = render_photo(spec, index, 384, spec.seed)[0]
        cv2.imwrite(str(folder / name), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(f"{folder / name}: {spec.category} {spec.item_id}, damage {list(spec.damage) or 'none'}")


def latency(bundle: Path, rounds: int, folder: Path) -> dict[str, float]:
    """Median POST /v1/inspections time of the dock's 2 photos with and without 2 customer
    photos to re-score and compare (TestClient, SQLite in a temporary folder)."""
    import tempfile
    import time

    from fastapi.testclient import TestClient

    from inspection.service.app import create_app
    from inspection.service.settings import Settings

    def files(names: list[str]) -> list[tuple[str, tuple[str, bytes, str]]]:
        return [("photos", (n, (folder / n).read_bytes(), "image/jpeg")) for n in names]
    dock = ["return_dock_1.jpg", "return_dock_2.jpg"]
    times: dict[str, list[float]] = {"one-sided": [], "compared": []}
    with tempfile.TemporaryDirectory() as data, TestClient(create_app(
            Settings(data_dir=Path(data), bundle_dir=bundle, dev_mode=True))) as client:
        for round_ in range(rounds + 1):  # round 0 warms up
            client.post("/v1/inspections", files=files(["return_customer_1.jpg", "return_customer_2.jpg"]),
                        data={"return_id": f"C-{round_}", "category": "phone", "source": "customer"})
            for kind, return_id in (("one-sided", f"S-{round_}"), ("compared", f"C-{round_}")):
                started = time.perf_counter()
                answer = client.post("/v1/inspections", files=files(dock),
                                     data={"return_id": return_id, "category": "phone"})
                assert answer.status_code == 201, answer.text
                if round_:
                    times[kind].append(time.perf_counter() - started)
    medians = {kind: 1000 * float(np.median(values)) for kind, values in times.items()}
    return {**{f"{kind}_ms": value for kind, value in medians.items()},
            "ratio": medians["compared"] / medians["one-sided"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--photos", type=int, default=400, help="synthetic items are planned for this many")
    parser.add_argument("--real", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--per-kind", type=int, default=60, help="real photos per kind")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--examples", type=Path, help="write the README's demo photos here and stop")
    parser.add_argument("--latency", type=int, default=0, help="time this many dock POSTs and stop")
    args = parser.parse_args()
    if args.examples:
        write_examples(args.examples)
        return
    if args.latency:
        print(f"machine: {platform.machine()}; load average {os.getloadavg()}")
        print(latency(args.bundle, args.latency, Path(__file__).parents[1] / "datasets" / "examples"))
        return
    engine = Engine.load(args.bundle, threads=2)
    thresholds = case_thresholds(engine.card.thresholds, load_policy())
    print(f"machine: {platform.machine()} {platform.processor() or ''}; bundle {engine.card.name} "
          f"{engine.card.version}; thresholds {thresholds}")
    report: dict[str, Any] = {"thresholds": thresholds}
    synthetic = synthetic_pairs(engine, args.photos)
    report["synthetic"] = {name: rates(pairs, thresholds) for name, pairs in synthetic.items()}
    report["synthetic_auroc"] = separations(
        synthetic, "same item", ["another item, same category", "another item, same SKU", "another category"],
        "same item, before -> after damage")
    if (args.real / "mvtec_ad" / "bottle").is_dir() and (args.real / "magnetic_tile").is_dir():
        real = real_pairs(engine, args.real, args.per_kind)
        report["real"] = {name: rates(pairs, thresholds) for name, pairs in real.items()}
        report["real_auroc"] = {
            **separations(real, "bottle: good vs good", ["bottle vs magnetic tile"],
                          "bottle: good vs defective"),
            **separations(real, "magnetic tile: good vs good", [], "magnetic tile: good vs defective")}
    for section in ("synthetic", "real"):
        for name, figures in report.get(section, {}).items():
            print(f"{section:9} {name:36} n={figures['pairs']:4}  changed raised "
                  f"{figures['changed_raised']:6.1%}  new damage raised {figures['new_damage_raised']:6.1%}  "
                  f"(median same-item {figures['same_item_score_median']:.3f}, "
                  f"damage rise {figures['damage_rise_median']:+.3f})")
    for section in ("synthetic_auroc", "real_auroc"):
        for name, value in report.get(section, {}).items():
            print(f"{section:15} {name:70} {value:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
