"""dataset import: ImageFolder (with masks beside JPEGs) and MVTec AD layouts -> manifest + taxonomy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspection.cli import main as cli
from inspection.manifest import file_sha256, read_manifest
from inspection.taxonomy import load_taxonomy

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def _photo(path: Path, value: int, suffix: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 24, 3), value, np.uint8)).save(path, suffix)


def test_imagefolder_with_masks_beside_jpegs(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    _photo(root / "MT_Free" / "Imgs" / "a.jpg", 10)
    _photo(root / "MT_Free" / "Imgs" / "b.jpg", 20)
    _photo(root / "MT_Crack" / "Imgs" / "c.jpg", 30)
    _photo(root / "MT_Crack" / "Imgs" / "c.png", 255, "PNG")  # c.jpg's mask, not a photo
    _photo(root / "MT_Crack" / "Imgs" / "d.png", 40, "PNG")  # a PNG photo with no JPEG twin
    out = tmp_path / "work" / "tiles.csv"
    assert cli(["dataset", "import", "--root", str(root), "--out", str(out), "--good-label", "MT_Free"]) == 0
    taxonomy = load_taxonomy(out.parent / "taxonomy.yaml")
    assert taxonomy.head("defect").labels == ("MT_Free", "MT_Crack")
    manifest = read_manifest(out, taxonomy)
    by_name = {Path(s.image).name: s for s in manifest.samples}
    assert sorted(by_name) == ["a.jpg", "b.jpg", "c.jpg", "d.png"]
    assert by_name["c.jpg"].labels == {"defect": ("MT_Crack",)}
    assert manifest.mask_path(by_name["c.jpg"]).resolve() == (root / "MT_Crack" / "Imgs" / "c.png").resolve()
    assert by_name["a.jpg"].mask == "" and by_name["a.jpg"].split == ""
    assert by_name["a.jpg"].image == "../tiles/MT_Free/Imgs/a.jpg"  # relative to the manifest's folder
    assert all(s.sha256 == file_sha256(manifest.image_path(s)) for s in manifest.samples)


def test_mvtec_layout_takes_split_and_masks_from_folders(tmp_path: Path) -> None:
    root = tmp_path / "bottle"
    _photo(root / "train" / "good" / "000.png", 1, "PNG")
    _photo(root / "test" / "good" / "000.png", 2, "PNG")
    _photo(root / "test" / "broken_large" / "000.png", 3, "PNG")
    _photo(root / "ground_truth" / "broken_large" / "000_mask.png", 255, "PNG")
    out = tmp_path / "bottle.jsonl"
    code = cli(["dataset", "import", "--root", str(root), "--out", str(out),
                "--taxonomy-out", str(tmp_path / "bottle_taxonomy.yaml")])
    assert code == 0
    taxonomy = load_taxonomy(tmp_path / "bottle_taxonomy.yaml")
    manifest = read_manifest(out, taxonomy)
    rows = {(s.split, s.labels["defect"][0]): s for s in manifest.samples}
    assert set(rows) == {("train", "good"), ("test", "good"), ("test", "broken_large")}
    assert rows[("test", "broken_large")].mask == "bottle/ground_truth/broken_large/000_mask.png"
    assert len({s.item_id for s in manifest.samples}) == 3  # train/good/000 and test/good/000 differ


def _two_sets(tmp_path: Path) -> tuple[Path, Path]:
    bottle, tiles = tmp_path / "bottle", tmp_path / "tiles"
    _photo(bottle / "good" / "a.jpg", 10)
    _photo(bottle / "broken" / "b.jpg", 20)
    _photo(tiles / "MT_Free" / "c.jpg", 30)
    _photo(tiles / "MT_Crack" / "d.jpg", 40)
    return bottle, tiles


def test_a_second_import_into_the_folder_keeps_the_first_sets_taxonomy(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's two examples both write into `my/`: the second import must not silently give
    the first set's manifest the second set's labels."""
    bottle, tiles = _two_sets(tmp_path)
    my = tmp_path / "my"
    assert cli(["dataset", "import", "--root", str(bottle), "--out", str(my / "bottle.csv")]) == 0
    first = (my / "taxonomy.yaml").read_text()
    assert cli(["dataset", "import", "--root", str(bottle), "--out", str(my / "bottle.csv")]) == 0
    assert (my / "taxonomy.yaml").read_text() == first  # the same set again: nothing to refuse
    capsys.readouterr()

    assert cli(["dataset", "import", "--root", str(tiles), "--out", str(my / "tiles.csv"),
                "--good-label", "MT_Free"]) == 2
    error = capsys.readouterr().err
    assert f"{my / 'taxonomy.yaml'}: already holds the taxonomy 'bottle' (defect: good, broken)" in error
    assert "--taxonomy-out" in error and "--replace-taxonomy" in error
    assert (my / "taxonomy.yaml").read_text() == first
    assert not (my / "tiles.csv").exists()  # nothing half-imported
    assert cli(["dataset", "validate", str(my / "bottle.csv")]) == 0

    assert cli(["dataset", "import", "--root", str(tiles), "--out", str(my / "tiles.csv"),
                "--good-label", "MT_Free", "--taxonomy-out", str(my / "tiles.yaml")]) == 0
    assert load_taxonomy(my / "tiles.yaml").head("defect").labels == ("MT_Free", "MT_Crack")
    assert cli(["dataset", "import", "--root", str(tiles), "--out", str(my / "tiles.csv"),
                "--good-label", "MT_Free", "--replace-taxonomy"]) == 0
    assert load_taxonomy(my / "taxonomy.yaml").name == "tiles"
    assert "note: no folder is the normal class" not in capsys.readouterr().out


def test_an_import_without_a_good_folder_says_what_that_turns_off(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, tiles = _two_sets(tmp_path)
    assert cli(["dataset", "import", "--root", str(tiles), "--out", str(tmp_path / "t.csv")]) == 0
    said = capsys.readouterr().out
    assert "note: no folder is the normal class 'good'" in said and "--good-label FOLDER" in said
    assert load_taxonomy(tmp_path / "taxonomy.yaml").head("defect").no_defect is None


def test_import_of_a_missing_folder_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert cli(["dataset", "import", "--root", str(missing), "--out", str(tmp_path / "m.csv")]) == 2
    assert f"{missing}: not a folder" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_magnetic_tile_import(tmp_path: Path) -> None:
    root = SHARED / "magnetic_tile"
    if not root.is_dir():
        pytest.skip("../shared/datasets/magnetic_tile is absent")
    out = tmp_path / "magnetic_tile.csv"
    assert cli(["dataset", "import", "--root", str(root), "--out", str(out), "--good-label", "MT_Free"]) == 0
    manifest = read_manifest(out, load_taxonomy(tmp_path / "taxonomy.yaml"))
    counts: dict[str, int] = {}
    for sample in manifest.samples:
        counts[sample.labels["defect"][0]] = counts.get(sample.labels["defect"][0], 0) + 1
        assert sample.image.endswith(".jpg")
    assert counts == {"MT_Free": 952, "MT_Blowhole": 115, "MT_Break": 85, "MT_Crack": 57, "MT_Fray": 32,
                      "MT_Uneven": 103}
    assert all(manifest.mask_path(s) and manifest.mask_path(s).is_file() for s in manifest.samples)
