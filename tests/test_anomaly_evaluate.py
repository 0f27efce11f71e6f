"""`anomaly evaluate` (MVTec AD protocol) on a tiny generated folder, and on real bottle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspection.cli import main as cli_main

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def _write(folder: Path, count: int, blob: bool, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rgb = np.clip(rng.normal(128, 8, (64, 64, 3)), 0, 255).astype(np.uint8)
        if blob:  # a dark disc somewhere: the "defect"
            y, x = rng.integers(12, 52, 2)
            yy, xx = np.ogrid[:64, :64]
            rgb[(yy - y) ** 2 + (xx - x) ** 2 < 64] = 10
        Image.fromarray(rgb).save(folder / f"{index:03d}.png")


@pytest.fixture(scope="module")
def tiny_mvtec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mvtec")
    rng = np.random.default_rng(0)
    _write(root / "widget" / "train" / "good", 8, False, rng)
    _write(root / "widget" / "test" / "good", 4, False, rng)
    _write(root / "widget" / "test" / "blob", 4, True, rng)
    return root


def test_evaluate_writes_auroc_and_detection_rates(tiny_mvtec: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert cli_main(["anomaly", "evaluate", "--root", str(tiny_mvtec), "--category", "widget",
                     "--input-size", "64", "--coreset-ratio", "0.5", "--json", str(out),
                     "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    assert result["image_auroc"] >= 0.9  # dark discs on flat grey are unmistakable
    assert set(result["detection_rate"]) == {"blob"}
    assert result["config"]["held_out_photos"] == 2 and result["config"]["fit_photos"] == 6


def test_evaluate_names_a_folder_not_in_mvtec_layout(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["anomaly", "evaluate", "--root", str(tmp_path), "--category", "x"]) == 2
    assert "MVTec AD layout" in capsys.readouterr().err


def test_evaluate_refuses_an_unknown_layer(tiny_mvtec: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["anomaly", "evaluate", "--root", str(tiny_mvtec), "--category", "widget",
                     "--layers", "8,12"])
    assert code == 2 and "--layers" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--searched-rows", "--max-bank"])
def test_evaluate_refuses_a_negative_row_count(tiny_mvtec: Path, flag: str,
                                               capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["anomaly", "evaluate", "--root", str(tiny_mvtec), "--category", "widget",
                     "--input-size", "64", flag, "-5"])
    assert code == 2 and "--searched-rows" in capsys.readouterr().err


def test_evaluate_searches_a_bank_larger_than_its_searched_rows_in_two_passes(
        tiny_mvtec: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert cli_main(["anomaly", "evaluate", "--root", str(tiny_mvtec), "--category", "widget",
                     "--input-size", "64", "--coreset-ratio", "1.0", "--searched-rows", "16",
                     "--json", str(out), "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["bank_size"] == 6 * 8 * 8 and result["config"]["searched_rows"] == 16
    assert result["image_auroc"] >= 0.9


@pytest.mark.slow
@pytest.mark.realdata
def test_bottle_image_auroc(tmp_path: Path) -> None:
    """Official protocol on real MVTec AD bottle: ~2-5 minutes on 2 CPU cores."""
    if not (DATASETS / "mvtec_ad" / "bottle").is_dir():
        pytest.skip("../shared/datasets/mvtec_ad/bottle is absent")
    out = tmp_path / "bottle.json"
    assert cli_main(["anomaly", "evaluate", "--root", str(DATASETS / "mvtec_ad"),
                     "--category", "bottle", "--coreset-ratio", "0.01", "--json", str(out),
                     "--threads", "2"]) == 0
    assert json.loads(out.read_text())["image_auroc"] >= 0.98


@pytest.fixture(scope="module")
def tiny_tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Magnetic-tile layout: MT_Free goods, MT_Blob defects, a `.png` mask beside each `.jpg`."""
    root = tmp_path_factory.mktemp("tiles") / "tiles"
    rng = np.random.default_rng(1)
    for kind, count, blob in (("MT_Free", 15, False), ("MT_Blob", 4, True)):
        folder = root / kind / "Imgs"
        _write(folder, count, blob, rng)
        for png in sorted(folder.glob("*.png")):
            rgb = np.asarray(Image.open(png))
            Image.fromarray(rgb).save(png.with_suffix(".jpg"), quality=95)
            mask = (rgb[:, :, 0] < 40).astype(np.uint8) * 255  # the dark disc, or nothing
            Image.fromarray(mask).save(png)
    return root.parent


def test_evaluate_magnetic_tile_layout_reports_pixel_auroc_and_cost(
        tiny_tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "tiles.json"
    assert cli_main(["anomaly", "evaluate", "--root", str(tiny_tiles), "--category", "tiles",
                     "--input-size", "64", "--coreset-ratio", "0.5", "--json", str(out),
                     "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["test_photos"] == 3 + 4  # a fifth of MT_Free held out as test goods
    assert result["image_auroc"] >= 0.9 and result["pixel_auroc"] >= 0.8
    assert set(result["detection_rate"]) == {"MT_Blob"}
    printed = capsys.readouterr().out
    assert "pixel AUROC" in printed and "ms/photo" in printed and "bank" in printed


def test_evaluate_with_random_placement_and_rotated_bank(tiny_mvtec: Path, tmp_path: Path) -> None:
    out = tmp_path / "placed.json"
    assert cli_main(["anomaly", "evaluate", "--root", str(tiny_mvtec), "--category", "widget",
                     "--input-size", "64", "--coreset-ratio", "0.5", "--placement", "random",
                     "--rotations", "2", "--json", str(out), "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["placement"] == "random" and result["config"]["rotations"] == 2
    assert result["image_auroc"] >= 0.9  # a dark disc stays a dark disc wherever it lies


def test_evaluate_needs_a_root_or_a_manifest(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["anomaly", "evaluate", "--category", "x"]) == 2
    assert "--manifest" in capsys.readouterr().err


def test_evaluate_a_manifest_category_reports_each_damage_type(tmp_path: Path) -> None:
    """Train-split goods fit; the test split is scored; `crack;dent` counts for both."""
    from inspection.manifest import Sample, write_manifest

    rng = np.random.default_rng(2)
    samples = []
    for index in range(14):
        split = "train" if index < 8 else "test"
        damage = {11: ("crack",), 12: ("crack", "dent"), 13: ("dent",)}.get(index, ())
        _write(tmp_path / f"p{index}", 1, bool(damage), rng)
        samples.append(Sample(image=f"p{index}/000.png", item_id=f"i{index}", category="phone",
                              split=split, labels={"condition": ("C" if damage else "A",),
                                                   "damage": damage, "accessories": ()}))
    manifest = write_manifest(tmp_path / "manifest.csv", samples,
                              ["condition", "damage", "accessories"])
    out = tmp_path / "phone.json"
    assert cli_main(["anomaly", "evaluate", "--manifest", str(manifest), "--category", "phone",
                     "--input-size", "64", "--coreset-ratio", "0.5", "--json", str(out),
                     "--threads", "1"]) == 0
    result = json.loads(out.read_text())
    assert set(result["tpr_at_fpr"]) == {"crack", "dent"} == set(result["detection_rate"])
    assert result["config"]["test_photos"] == 6 and result["image_auroc"] >= 0.9
