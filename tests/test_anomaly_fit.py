"""`anomaly fit` on a tiny generated bundle and manifest, then the torch-free runtime reading
what it wrote, as the service does."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import build_bundle
from PIL import Image

from inspection.anomaly import AnomalyDetectors, ReferenceEmbeddings, upsample_map
from inspection.card import read_card, verify_bundle
from inspection.cli import main as cli_main
from inspection.manifest import Sample, write_manifest

HEADS = ["condition", "damage", "accessories"]


def _photo(rng: np.random.Generator, colour: int, blob: bool) -> np.ndarray:
    rgb = np.clip(rng.normal(colour, 6, (64, 64, 3)), 0, 255).astype(np.uint8)
    if blob:
        rgb[20:40, 20:40] = 255 - colour  # a defect: a patch unlike any good photo's
    return rgb


def _manifest(root: Path) -> Path:
    """Two categories (dark phones, bright shoes): 8 good train, 3 good val, 1 damaged val."""
    rng = np.random.default_rng(0)
    samples = []
    for category, colour in (("phone", 60), ("shoe", 190)):
        for index in range(12):
            split = "train" if index < 8 else "val"
            damaged = index == 11
            name = f"{category}_{index}.png"
            Image.fromarray(_photo(rng, colour, damaged)).save(root / name)
            labels = {"condition": ("D" if damaged else "A",),
                      "damage": ("crack",) if damaged else (), "accessories": ()}
            samples.append(Sample(image=name, item_id=f"{category}{index}", category=category,
                                  split=split, labels=labels))
    return write_manifest(root / "manifest.csv", samples, HEADS)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fit")
    bundle = build_bundle(root / "bundle", size=32)
    manifest = _manifest(root)
    assert cli_main(["anomaly", "fit", "--bundle", str(bundle), "--manifest", str(manifest),
                     "--coreset-ratio", "0.5", "--neighbours", "9"]) == 0
    return bundle


def test_fit_writes_detectors_and_keeps_the_bundle_binding(fitted: Path) -> None:
    card = verify_bundle(fitted)  # model.onnx still matches the card
    assert sorted(card.anomaly) == ["phone", "shoe"]
    entry = card.anomaly["phone"]
    assert (fitted / entry["file"]).is_file() and entry["bank_size"] > 0
    assert entry["parity_max_rel_error"] < 1e-3 and entry["normaliser"] > 0
    assert set(card.thresholds["item_mismatch"]) == {"phone", "shoe"}


def test_runtime_scores_and_flags_with_card_threshold(fitted: Path) -> None:
    card = read_card(fitted)
    detectors = AnomalyDetectors.load(fitted, card)
    assert detectors.has("phone") and not detectors.has("bike")
    assert detectors.score("bike", np.zeros((1, 8, 4, 4), np.float32)) is None
    features = np.random.default_rng(0).random((2, 8, 4, 4)).astype(np.float32)
    result = detectors.score("phone", features)
    assert result is not None and result.maps.shape == (2, 4, 4)
    # the score is the worst patch's distance, density-weighted by a factor in [1 - 1/k, 1)
    worst = result.maps.reshape(2, -1).max(axis=1)
    assert np.all(result.scores <= worst * (1 + 1e-5))
    assert np.all(result.scores >= worst * (1 - 1 / card.anomaly["phone"]["neighbours"]) - 1e-5)
    assert list(result.is_anomalous) == list(result.scores >= card.anomaly["phone"]["threshold"])
    assert upsample_map(result.maps[0], 50, 30).shape == (30, 50)


def test_reference_embeddings_prefer_the_declared_category(fitted: Path) -> None:
    references = ReferenceEmbeddings.load(fitted, read_card(fitted))
    assert references.has("phone") and references.has("shoe")
    row = references.references["phone"][0]
    assert references.similarity("phone", row) == pytest.approx(1.0, abs=1e-5)
    assert not references.is_mismatch("phone", row)


def test_tampered_detector_refuses_to_load(fitted: Path, tmp_path: Path) -> None:
    card = read_card(fitted)
    card.anomaly = {"phone": {**card.anomaly["phone"], "sha256": "0" * 64}}
    from inspection.errors import BundleError
    with pytest.raises(BundleError, match="sha256"):
        AnomalyDetectors.load(fitted, card)


def test_runtime_works_without_torch(fitted: Path) -> None:
    """The service never imports torch: block it and score with the fitted detector."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from inspection.anomaly import AnomalyDetectors, ReferenceEmbeddings\n"
        "from inspection.card import read_card\n"
        f"card = read_card({str(fitted)!r})\n"
        f"d = AnomalyDetectors.load({str(fitted)!r}, card)\n"
        "r = d.score('shoe', np.ones((8, 4, 4), np.float32))\n"
        f"ReferenceEmbeddings.load({str(fitted)!r}, card)\n"
        "print(r.scores.shape, 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1,) False"


def test_fit_names_an_unknown_category(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bundle = build_bundle(tmp_path / "bundle", size=32)
    manifest = _manifest(tmp_path)
    code = cli_main(["anomaly", "fit", "--bundle", str(bundle), "--manifest", str(manifest),
                     "--categories", "bike"])
    assert code == 2 and "bike" in capsys.readouterr().err


def test_a_manifest_without_categories_needs_one_named(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """A set of one product line (MVTec's bottle) has no category column: `anomaly fit` says so
    instead of fitting nothing, and `--as-category` names it."""
    from inspection.manifest import read_manifest
    bundle = build_bundle(tmp_path / "bundle", size=32)
    manifest = read_manifest(_manifest(tmp_path))
    phones = [replace(s, category="") for s in manifest.samples if s.category == "phone"]
    uncategorised = write_manifest(tmp_path / "bottle.csv", phones, HEADS)
    fit = ["anomaly", "fit", "--bundle", str(bundle), "--manifest", str(uncategorised),
           "--coreset-ratio", "0.5", "--no-references"]
    assert cli_main(fit) == 2 and "--as-category" in capsys.readouterr().err
    assert "bottle" not in read_card(bundle).anomaly
    assert cli_main([*fit, "--as-category", "bottle"]) == 0
    card = verify_bundle(bundle)
    assert list(card.anomaly) == ["bottle"] and card.anomaly["bottle"]["fitted_on"]["train"] == 8
    assert AnomalyDetectors.load(bundle, card).has("bottle")


def test_a_damaged_unit_of_a_one_product_set_is_not_called_another_product(
        tmp_path: Path) -> None:
    """Item mismatch is the swap flag ("not the declared product"). With one product there is no
    other category to bound its threshold, and fitted on the good photos alone it called every
    damaged photo another product (MVTec's bottle: all 32 damaged test photos). The damaged val
    photos are genuine too."""
    from inspection.engine import Engine
    from inspection.images import load_photo
    from inspection.manifest import read_manifest
    bundle = build_bundle(tmp_path / "bundle", size=32)
    manifest = read_manifest(_manifest(tmp_path))
    phones = [replace(s, category="") for s in manifest.samples if s.category == "phone"]
    one_product = write_manifest(tmp_path / "bottle.csv", phones, HEADS)
    assert cli_main(["anomaly", "fit", "--bundle", str(bundle), "--manifest", str(one_product),
                     "--as-category", "bottle", "--coreset-ratio", "0.5"]) == 0
    card = verify_bundle(bundle)
    assert card.calibration["item_mismatch"]["bottle"]["genuine"] == 4  # 3 good + 1 damaged val
    references = ReferenceEmbeddings.load(bundle, card)
    engine = Engine.load(bundle)
    val = [s for s in phones if s.split == "val"]
    photos = [load_photo(tmp_path / s.image, min_side=engine.input_size) for s in val]
    embeddings = next(engine.iter_raw(photos, len(photos), outputs=["embedding"]))["embedding"]
    assert not any(references.is_mismatch("bottle", e) for e in embeddings)


def _item_on_tray(colour: int) -> np.ndarray:
    """A long item lying at an angle on a plain grey tray (what `crop: upright` is for)."""
    from training.anomaly.placement import Placement, place
    rgb = np.full((48, 96, 3), 120, np.uint8)
    rgb[12:36, 16:80] = colour
    return place(rgb, Placement(30.0, 1.0, (0.0, 0.0)))


def test_an_upright_detector_scores_the_item_and_draws_its_map_on_the_photo(fitted: Path) -> None:
    card = read_card(fitted)
    card.anomaly = {"phone": {**card.anomaly["phone"], "crop": "upright"}}
    detectors = AnomalyDetectors.load(fitted, card)
    assert detectors.crop_of("phone") == "upright" and detectors.crop_of("bike") == "none"
    texture = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    photos = [_item_on_tray(220), texture]
    features = np.random.default_rng(1).random((2, 8, 4, 4)).astype(np.float32)
    crops: list[np.ndarray] = []

    def features_of(pictures: list[np.ndarray]) -> np.ndarray:
        crops.extend(pictures)
        return np.full((len(pictures), 8, 4, 4), 0.5, np.float32)

    result = detectors.score_photos("phone", photos, features, features_of)
    assert result is not None and result.maps.shape == (2, 4, 4)
    assert len(crops) == 1 and crops[0].shape[1] > crops[0].shape[0]  # the item only, upright
    assert (crops[0] == 220).all(axis=2).mean() > 0.8
    whole = detectors.score("phone", features)
    on_item = detectors.score("phone", np.full((1, 8, 4, 4), 0.5, np.float32))
    assert whole is not None and on_item is not None
    assert result.scores[1] == pytest.approx(whole.scores[1])  # no tray: the photo as it is
    assert result.scores[0] == pytest.approx(on_item.scores[0])
    assert result.maps[0][0, 0] == 0.0  # the tray's corner, outside the item


def test_an_unknown_crop_in_the_card_refuses_the_bundle(fitted: Path) -> None:
    from inspection.errors import BundleError
    card = read_card(fitted)
    card.anomaly = {"phone": {**card.anomaly["phone"], "crop": "sideways"}}
    with pytest.raises(BundleError, match="crop"):
        AnomalyDetectors.load(fitted, card)


@pytest.mark.parametrize("crop", ["upright", "auto"])
def test_fit_records_what_the_detector_was_fitted_on(crop: str, tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path / "bundle", size=32)
    manifest = _manifest(tmp_path)
    assert cli_main(["anomaly", "fit", "--bundle", str(bundle), "--manifest", str(manifest),
                     "--categories", "phone", "--crop", crop, "--no-references",
                     "--coreset-ratio", "0.5"]) == 0
    card = verify_bundle(bundle)
    entry = card.anomaly["phone"]
    assert AnomalyDetectors.load(bundle, card).crop_of("phone") == entry["crop"]
    if crop == "upright":
        assert entry["crop"] == "upright" and entry["max_bank"] == 8192  # 4,096 per half turn
        assert entry["searched_rows"] <= 3072  # 1,536 per half turn, or every row of a small bank
    else:  # both fitted, the val split's defect chose, both val AUROCs kept
        assert entry["crop"] in ("none", "upright")
        assert set(entry["crop_val_auroc"]) == {"none", "upright"}


def test_crop_auto_keeps_what_separates_the_val_defects_best() -> None:
    from training.anomaly.fit import Fitted, choose_crop

    def fitted(crop: str, held: list[float], defects: list[float] | None) -> Fitted:
        return Fitted(crop, 0, None, np.zeros(0), np.array(held),  # type: ignore[arg-type]
                      None if defects is None else np.array(defects))

    whole, upright = fitted("none", [1, 2, 3], [2.5, 1.5]), fitted("upright", [1, 2, 3], [4, 5])
    best, aurocs = choose_crop([whole, upright])
    assert best is upright and aurocs == {"none": 0.5, "upright": 1.0}
    best, _ = choose_crop([fitted("none", [1, 2], [3]), fitted("upright", [1, 2], [4])])
    assert best.crop == "none"  # a tie: whole photos, the cheaper to serve
    best, aurocs = choose_crop([fitted("none", [1, 2], None), fitted("upright", [1, 2], None)])
    assert best.crop == "none" and aurocs == {"none": None, "upright": None}
