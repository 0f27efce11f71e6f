"""`returns-inspect score`: offline scoring through the service's code path, from a folder or
a manifest, one JSON line per item; an unreadable photo is an error line, not a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import encode, textured_photo

from inspection.cli import main as cli_main
from inspection.manifest import Sample, write_manifest


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_score_a_folder(cracked_bundle: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(encode(textured_photo(seed=1)))
    (photos / "b.png").write_bytes(encode(textured_photo(seed=2), "PNG"))
    (photos / "broken.jpg").write_bytes(b"not a photo")
    (photos / "notes.txt").write_text("ignored")
    out = tmp_path / "results.jsonl"
    assert cli_main(["score", str(photos), "--bundle", str(cracked_bundle), "--out", str(out),
                     "--category", "phone"]) == 0
    lines = {line["item_id"]: line for line in read_lines(out)}
    assert set(lines) == {"a.jpg", "b.png", "broken.jpg"}
    assert lines["a.jpg"]["item"]["condition"]["grade"] == "D"
    assert lines["a.jpg"]["item"]["missing_accessories"] == ["charger"]
    assert lines["a.jpg"]["decision"]["disposition"] == "liquidate"
    assert "not an image" in lines["broken.jpg"]["error"]


def test_score_a_manifest_groups_photos_by_item(clean_bundle: Path, tmp_path: Path) -> None:
    for name in ("x1.jpg", "x2.jpg", "y1.jpg"):
        (tmp_path / name).write_bytes(encode(textured_photo(seed=len(name))))
    samples = [Sample("x1.jpg", "item-x", "shoe", "S1"), Sample("x2.jpg", "item-x", "shoe", "S1"),
               Sample("y1.jpg", "item-y", "phone")]
    manifest = write_manifest(tmp_path / "m.csv", samples, ["condition"])
    out = tmp_path / "out" / "results.jsonl"
    assert cli_main(["score", str(manifest), "--bundle", str(clean_bundle), "--out", str(out)]) == 0
    lines = {line["item_id"]: line for line in read_lines(out)}
    assert len(lines["item-x"]["photos"]) == 2 and lines["item-x"]["category"] == "shoe"
    assert lines["item-x"]["sku"] == "S1"
    assert lines["item-y"]["decision"] == {"disposition": "restock", "refund": "approve",
                                           "rule": "as_new", "reasons": ["rule as_new"]}


def test_bad_source_or_bundle_is_one_clear_error(cracked_bundle: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["score", str(tmp_path / "nothing"), "--bundle", str(cracked_bundle)]) == 2
    assert "no such folder or manifest" in capsys.readouterr().err
    assert cli_main(["score", str(tmp_path), "--bundle", str(tmp_path / "no-bundle")]) == 2
    assert "model_card.json" in capsys.readouterr().err
