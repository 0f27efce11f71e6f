"""export-reviews: reviewed inspections come out as a manifest + taxonomy that `train` reads
back with zero label problems; corrections win over the model, confirmations keep it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import headers, submit

from inspection.cli import main as cli_main
from inspection.manifest import label_problems, read_manifest
from inspection.taxonomy import load_taxonomy


def test_export_reviews_round_trip(client: Any, cracked_bundle: Path, tmp_path: Path,
                                   photo_jpeg: bytes) -> None:
    confirmed = submit(client, [photo_jpeg, photo_jpeg], sku="S1").json()["id"]
    corrected = submit(client, [photo_jpeg], sku="S2", category="shoe").json()["id"]
    submit(client, [photo_jpeg])  # never reviewed: not exported
    for inspection, body in ((confirmed, {"decision": "confirm"}),
                             (corrected, {"decision": "correct",
                                          "labels": {"condition": ["B"], "damage": []}})):
        response = client.post(f"/v1/inspections/{inspection}/review", headers=headers("operator"),
                               json=body)
        assert response.status_code == 201
    out = tmp_path / "export"
    code = cli_main(["dataset", "export-reviews", "--out", str(out),
                     "--data-dir", str(tmp_path / "data"), "--bundle", str(cracked_bundle)])
    assert code == 0
    taxonomy = load_taxonomy(out / "taxonomy.yaml")
    manifest = read_manifest(out / "manifest.csv", taxonomy)
    assert label_problems(manifest.samples, taxonomy) == []
    rows = {sample.item_id: sample for sample in manifest.samples}
    assert [s.item_id for s in manifest.samples].count(confirmed) == 2  # one row per photo
    assert set(rows) == {confirmed, corrected}
    # confirmed: the model's item labels
    assert rows[confirmed].labels["condition"] == ("D",)
    assert rows[confirmed].labels["damage"] == ("crack",)
    assert "charger" not in rows[confirmed].labels["accessories"]
    # corrected: the operator's labels where given, the model's elsewhere
    assert rows[corrected].labels["condition"] == ("B",) and rows[corrected].labels["damage"] == ()
    assert rows[corrected].category == "shoe" and rows[corrected].sku == "S2"
    # photos copied beside the manifest, hashes kept
    assert all(manifest.image_path(s).is_file() for s in manifest.samples)
    assert rows[confirmed].sha256 == __import__("hashlib").sha256(photo_jpeg).hexdigest()


def test_export_with_nothing_reviewed_is_one_clear_error(client: Any, cracked_bundle: Path,
                                                         tmp_path: Path, capsys: Any) -> None:
    code = cli_main(["dataset", "export-reviews", "--out", str(tmp_path / "e"),
                     "--data-dir", str(tmp_path / "data"), "--bundle", str(cracked_bundle),
                     "--since", "2030-01-01"])
    assert code == 2
    assert "no reviewed inspections to export since 2030-01-01" in capsys.readouterr().err
    assert not (tmp_path / "e" / "manifest.csv").exists()
