"""The comparison on real photos with the shipped bundle (BENCHMARKS.md, customer <-> dock
comparison): a good bottle then a defective one at the dock raises new damage, a good one does
not; a magnetic tile arriving for a bottle is another item. Skips without ../shared/datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from inspection.case import case_thresholds
from inspection.case_compare import CHANGED, NEW_DAMAGE, CasePhoto, case_photo, compare
from inspection.decide import load_policy
from inspection.engine import Engine
from inspection.images import load_photo

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
BOTTLE = DATASETS / "mvtec_ad" / "bottle"
TILE = DATASETS / "magnetic_tile" / "MT_Free" / "Imgs"
PER_KIND = 12

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # ~20 s: 48 real photos through the bundle


def photos(engine: Engine, paths: list[Path], source: str) -> list[CasePhoto]:
    predictions = engine.predict([load_photo(path) for path in paths])
    return [p for i, prediction in enumerate(predictions)
            if (p := case_photo(source, i, source, prediction)) is not None]


def test_real_bottles_and_tiles_at_the_shipped_thresholds() -> None:
    if not BOTTLE.is_dir() or not TILE.is_dir():
        pytest.skip("../shared/datasets (MVTec AD bottle, magnetic tile) is absent")
    engine = Engine.load(ROOT / "models" / "default", threads=2)
    thresholds = case_thresholds(engine.card.thresholds, load_policy())
    assert thresholds[CHANGED] is not None and thresholds[NEW_DAMAGE] is not None
    home = photos(engine, sorted((BOTTLE / "train" / "good").glob("*.png"))[:PER_KIND], "customer")
    good = photos(engine, sorted((BOTTLE / "test" / "good").glob("*.png"))[:PER_KIND], "station")
    broken = photos(engine, sorted((BOTTLE / "test" / "broken_large").glob("*.png"))[:PER_KIND], "station")
    tiles = photos(engine, sorted(TILE.glob("*.jpg"))[:PER_KIND], "station")

    def checks(dock: CasePhoto, customer: CasePhoto) -> dict[str, object]:
        return {c.kind: c for c in compare([dock], [customer], thresholds).checks}
    good_rise = [checks(d, c)[NEW_DAMAGE].score for d, c in zip(good, home, strict=True)]
    broken_rise = [checks(d, c)[NEW_DAMAGE].score for d, c in zip(broken, home, strict=True)]
    auroc = roc_auc_score([0] * PER_KIND + [1] * PER_KIND, good_rise + broken_rise)
    assert auroc >= 0.9, f"new-damage AUROC on bottles {auroc:.3f}"
    assert not any(checks(d, c)[NEW_DAMAGE].flagged for d, c in zip(good, home, strict=True))
    assert np.mean([checks(d, c)[NEW_DAMAGE].flagged for d, c in zip(broken, home, strict=True)]) >= 0.5
    assert not any(checks(d, c)[CHANGED].flagged for d, c in zip(good, home, strict=True))
    assert all(checks(d, c)[CHANGED].flagged for d, c in zip(tiles, home, strict=True))
