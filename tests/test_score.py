"""`returns-inspect score`: offline scoring through the service's code path, from a folder or
a manifest, one JSON line per item; an unreadable photo is an error line, not a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import encode, submit, textured_photo

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


def test_a_results_folder_resumes_and_refuses_another_model(cracked_bundle: Path, clean_bundle: Path,
                                                            tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(5):
        (photos / f"p{seed}.jpg").write_bytes(encode(textured_photo(seed=seed)))
    out = tmp_path / "results"
    args = ["score", str(photos), "--bundle", str(cracked_bundle), "--out", str(out),
            "--category", "phone", "--part-size", "2"]
    assert cli_main(args) == 0
    assert sorted(p.name for p in out.glob("part-*")) == [
        f"part-0000{n}.{ext}" for n in range(3) for ext in ("jsonl", "parquet")]
    table = pq.read_table(out / "part-00000.parquet")
    assert table.column("grade").to_pylist() == ["D", "D"]
    assert json.loads(table.column("result")[0].as_py())["item"]["missing_accessories"] == ["charger"]
    (photos / "p5.jpg").write_bytes(encode(textured_photo(seed=5)))  # the backlog grew
    assert cli_main(args) == 0
    assert "5 already in" in capsys.readouterr().out
    ids = [line["item_id"] for path in sorted(out.glob("part-*.jsonl")) for line in read_lines(path)]
    assert sorted(ids) == [f"p{n}.jpg" for n in range(6)]  # each once; only p5 in the new part
    assert cli_main([*args[:2], "--bundle", str(clean_bundle), *args[4:]]) == 2
    assert "score into a new folder" in capsys.readouterr().err


def test_ray_engine_needs_a_results_folder(cracked_bundle: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.jpg").write_bytes(encode(textured_photo()))
    assert cli_main(["score", str(tmp_path), "--bundle", str(cracked_bundle), "--engine", "ray",
                     "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "give --out a folder" in capsys.readouterr().err
    assert cli_main(["score", str(tmp_path), "--bundle", str(cracked_bundle), "--address", "auto",
                     "--out", str(tmp_path / "parts")]) == 2
    assert "needs --engine ray" in capsys.readouterr().err


def test_rescore_the_service_database(make_app: Any, cracked_bundle: Path, tmp_path: Path) -> None:
    client = make_app(cracked_bundle)
    answers = {}
    for seed in range(3):
        response = submit(client, [encode(textured_photo(seed=seed))], return_id=f"R-{seed}")
        answers[response.json()["id"]] = response.json()
    data = tmp_path / "data"
    out = tmp_path / "rescored"
    assert cli_main(["score", "--from-db", f"sqlite:///{data / 'inspection.db'}", "--photo-store",
                     str(data / "photos"), "--bundle", str(cracked_bundle), "--out", str(out)]) == 0
    records = {r["item_id"]: r for path in out.glob("part-*.jsonl") for r in read_lines(path)}
    assert set(records) == set(answers)
    for inspection_id, answer in answers.items():
        assert records[inspection_id]["item"] == answer["item"]
        assert records[inspection_id]["decision"] == answer["decision"]
        assert records[inspection_id]["category"] == "phone"
