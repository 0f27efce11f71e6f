"""`returns-inspect catalog add|list|remove` on a data folder, and `catalog evaluate` on a tiny
generated MVTec-style folder and (realdata) on ../shared/datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_factory import CLEAN_ITEM, build_bundle
from catalog_photos import damaged_photo, other_product, product_photos

from inspection.cli import main as cli_main

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("bundle"), biases=CLEAN_ITEM)


def write(folder: Path, photos: list[bytes], stem: str = "ref") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(photos):
        (folder / f"{stem}{index:02d}.jpg").write_bytes(data)
    return folder


def test_add_list_remove(tmp_path: Path, bundle: Path, capsys: pytest.CaptureFixture) -> None:
    photos = write(tmp_path / "phone-x", product_photos(6))
    data = ["--data-dir", str(tmp_path / "data")]
    assert cli_main(["catalog", "add", *data, "--bundle", str(bundle), "--sku", "PHONE-X",
                     "--category", "phone", str(photos)]) == 0
    out = capsys.readouterr().out
    assert "PHONE-X: 6 reference photo(s), revision 1" in out and "leave-one-out" in out
    assert cli_main(["catalog", "list", *data]) == 0
    assert "PHONE-X" in capsys.readouterr().out
    assert cli_main(["catalog", "remove", *data, "--sku", "PHONE-X"]) == 0
    assert cli_main(["catalog", "list", *data]) == 0
    assert "the catalog is empty" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "message"), [
    (["--category", "spaceship"], "unknown category 'spaceship'"),
    (["NOT-A-FILE.jpg"], "NOT-A-FILE.jpg: no such file or folder"),
])
def test_add_refusals_name_the_problem(tmp_path: Path, bundle: Path, capsys: pytest.CaptureFixture,
                                       extra: list[str], message: str) -> None:
    photos = write(tmp_path / "p", product_photos(3))
    code = cli_main(["catalog", "add", "--data-dir", str(tmp_path / "data"), "--bundle", str(bundle),
                     "--sku", "X", str(photos), *extra])
    assert code == 2 and message in capsys.readouterr().err


def test_add_names_the_file_that_is_not_an_image(tmp_path: Path, bundle: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    folder = write(tmp_path / "p", product_photos(3))
    (folder / "notes.png").write_bytes(b"not a png")
    code = cli_main(["catalog", "add", "--data-dir", str(tmp_path / "data"), "--bundle", str(bundle),
                     "--sku", "X", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and "notes.png" in err and "not an image" in err
    assert cli_main(["catalog", "list", "--data-dir", str(tmp_path / "data")]) == 0
    assert "the catalog is empty" in capsys.readouterr().out  # nothing half-built


def test_evaluate_runs_the_protocol_on_an_mvtec_layout(tmp_path: Path, bundle: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "datasets" / "mvtec_ad" / "bottle"
    write(root / "train" / "good", product_photos(8))
    write(root / "test" / "good", product_photos(12)[8:], stem="held")
    write(root / "test" / "broken", [damaged_photo()] * 3, stem="dmg")
    tile = tmp_path / "datasets" / "magnetic_tile"
    write(tile / "MT_Free" / "Imgs", [other_product((320 + 8 * i, 240)) for i in range(8)])
    write(tile / "MT_Crack" / "Imgs", [damaged_photo()], stem="crack")
    out = tmp_path / "eval.json"
    assert cli_main(["catalog", "evaluate", "--bundle", str(bundle), "--datasets",
                     str(tmp_path / "datasets"), "--sizes", "1", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    bottle = next(r for r in result["rows"] if r["sku"] == "mvtec-bottle" and r["references"] == 5)
    assert bottle["counts"] == {"held_out": 4, "damaged": 3, "swaps": 3}
    assert bottle["swap_mismatch"] == 1.0  # the tiles declared as the bottle
    assert bottle["defect_auroc"] == 1.0 and bottle["defect_recall"] == 1.0
    assert {row["references"] for row in result["summary"]} == {1, 5}
    assert "real" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.realdata
def test_evaluate_on_real_bottle_and_tile(tmp_path: Path) -> None:
    """~1 minute on 2 cores: bottle and magnetic tile as two SKUs of the default bundle."""
    if not (DATASETS / "mvtec_ad" / "bottle").is_dir():
        pytest.skip("../shared/datasets/mvtec_ad/bottle is absent")
    out = tmp_path / "real.json"
    assert cli_main(["catalog", "evaluate", "--datasets", str(DATASETS), "--sizes", "10",
                     "--json", str(out)]) == 0
    rows = {row["sku"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["mvtec-bottle"]["defect_auroc"] >= 0.95
    assert rows["mvtec-bottle"]["swap_mismatch"] == 1.0 and rows["magnetic-tile"]["swap_mismatch"] == 1.0


def test_score_compares_manifest_items_with_their_sku(tmp_path: Path, bundle: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    """The offline scorer reads the same catalog as the service: same comparison, same flags."""
    data = tmp_path / "data"
    assert cli_main(["catalog", "add", "--data-dir", str(data), "--bundle", str(bundle),
                     "--sku", "PHONE-X", str(write(tmp_path / "refs", product_photos(6)))]) == 0
    photos = write(tmp_path / "returns", [damaged_photo(), other_product()], stem="ret")
    manifest = tmp_path / "returns.csv"
    manifest.write_text("image,item_id,category,sku,split\n"
                        f"{photos / 'ret00.jpg'},a,phone,PHONE-X,test\n"
                        f"{photos / 'ret01.jpg'},b,phone,NOT-LISTED,test\n")
    out = tmp_path / "scores.jsonl"
    assert cli_main(["score", str(manifest), "--bundle", str(bundle), "--catalog", str(data),
                     "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["comparison"]["basis"] == "sku"
    assert "anomaly" in {flag["kind"] for flag in lines[0]["flags"]}
    assert "not in the catalog" in lines[1]["comparison"]["note"]
    assert cli_main(["score", str(manifest), "--bundle", str(bundle), "--catalog",
                     str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "inspection.db" in capsys.readouterr().err
