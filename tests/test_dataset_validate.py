"""dataset validate: every problem kind is reported with the manifest file and the right line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspection.cli import main as cli
from inspection.manifest import Sample, file_sha256, write_manifest
from inspection.taxonomy import load_taxonomy


def _photo(path: Path, value: int) -> str:
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path, "PNG")
    return file_sha256(path)


def _row(image: str, item: str, split: str, grade: str = "A", **extra: str) -> Sample:
    labels = {"condition": (grade,), "damage": (), "accessories": ()}
    return Sample(image=image, item_id=item, category="phone", split=split, labels=labels, **extra)


@pytest.fixture()
def good_rows(tmp_path: Path) -> list[Sample]:
    return [_row(f"{i}.png", f"item{i}", "train", sha256=_photo(tmp_path / f"{i}.png", i * 40))
            for i in range(3)]


def _validate(tmp_path: Path, rows: list[Sample], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    manifest = write_manifest(tmp_path / "manifest.csv", rows, ["condition", "damage", "accessories"])
    code = cli(["dataset", "validate", str(manifest)])
    return code, capsys.readouterr().out


def test_clean_manifest_passes_with_a_summary(tmp_path: Path, good_rows: list[Sample],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(tmp_path, good_rows, capsys)
    assert code == 0
    assert "OK, 3 photos, 3 items; train=3; condition: A=3" in out


def test_every_problem_kind_has_its_line(tmp_path: Path, good_rows: list[Sample],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg", "JPEG")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes()[:900])
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(tmp_path / "copy.png", "PNG")
    rows = good_rows + [
        _row("gone.png", "item3", "train"),                                    # line 5
        _row("cut.jpg", "item4", "train"),                                     # line 6
        _row("1.png", "item5", "train", grade="Z"),                            # line 7
        _row("2.png", "item6", "test"),                                        # line 8: bytes of line 4
        _row("copy.png", "item0", "val"),                                      # line 9: item0 is in train
        _row("0.png", "item7", "train", mask="nomask.png"),                    # line 10
        _row("1.png", "item8", "train", sha256="0" * 64),                      # line 11
    ]
    code, out = _validate(tmp_path, rows, capsys)
    assert code == 1
    manifest = tmp_path / "manifest.csv"
    expected = {
        5: "image not found", 6: "unreadable image", 7: "unknown condition label(s) ['Z']",
        8: "the same photo (sha256)", 9: "the same item_id item0", 10: "mask not found",
        11: "sha256 column 000000000000",
    }
    for line, text in expected.items():
        assert any(row.startswith(f"{manifest}:{line}: ") and text in row for row in out.splitlines()), \
            (line, text, out)
    assert any(row.startswith(f"{manifest}:4: ") and "the same photo" in row for row in out.splitlines())
    assert any(row.startswith(f"{manifest}:2: ") and "the same item_id" in row for row in out.splitlines())


def test_unknown_category_and_head_are_reported(tmp_path: Path, good_rows: list[Sample],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    odd = Sample(image="0.png", item_id="x", category="toaster", split="train",
                 labels={"condition": ("A",), "colour": ("red",)})
    manifest = write_manifest(tmp_path / "m.csv", [*good_rows, odd], ["condition", "colour"])
    assert cli(["dataset", "validate", str(manifest), "--taxonomy", str(load_taxonomy().name and
               Path(__file__).resolve().parents[1] / "inspection" / "defaults" / "taxonomy.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"{manifest}:5: column 'colour' is not a head" in out
    assert f"{manifest}:5: unknown category 'toaster'" in out
