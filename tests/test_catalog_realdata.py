"""The issue's "Done when" on real photos, through the API on the default bundle: a SKU from ten
MVTec bottles, a broken bottle of it flagged `anomaly` with a heatmap and the closest reference,
a magnetic tile declared as it flagged `item_mismatch` (the README's curl commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import headers

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BOTTLE = DATASETS / "mvtec_ad" / "bottle"
TILE = DATASETS / "magnetic_tile" / "MT_Free" / "Imgs"
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"

pytestmark = [
    pytest.mark.realdata, pytest.mark.slow,  # ~10 s: ten 900 px PNGs and three inspections
    pytest.mark.skipif(not (BOTTLE.is_dir() and TILE.is_dir()),
                       reason="../shared/datasets (MVTec bottle, magnetic tile) is absent"),
]


def upload(path: Path) -> tuple[str, tuple[str, bytes, str]]:
    return ("photos", (path.name, path.read_bytes(), "image/png"))


def inspect(client: Any, path: Path) -> dict[str, Any]:
    response = client.post("/v1/inspections", headers=headers("station"), files=[upload(path)],
                           data={"return_id": "RMA-2001", "sku": "BOTTLE-500"})
    assert response.status_code == 201, response.text
    return response.json()


def test_done_when_on_real_photos(make_app: Any) -> None:
    client = make_app(DEFAULT_BUNDLE)
    references = sorted((BOTTLE / "train" / "good").glob("*.png"))[:10]
    registered = client.put("/v1/catalog/BOTTLE-500", headers=headers("admin"),
                            files=[upload(path) for path in references])
    assert registered.status_code == 200, registered.text
    assert registered.json()["photo_count"] == 10 and registered.json()["status"] == "ready"

    broken = inspect(client, BOTTLE / "test" / "broken_large" / "000.png")
    assert broken["comparison"]["basis"] == "sku"
    assert "anomaly" in {flag["kind"] for flag in broken["flags"]}
    closest = broken["comparison"]["closest_reference"]
    assert closest["sha256"] in {photo["sha256"] for photo in registered.json()["photos"]}
    heatmap = client.get(f"/v1/inspections/{broken['id']}/photos/0/heatmap?label=anomaly",
                         headers=headers("operator"))
    assert heatmap.status_code == 200 and heatmap.content.startswith(b"\x89PNG")

    tile = inspect(client, sorted(TILE.glob("*.jpg"))[0])
    assert "item_mismatch" in {flag["kind"] for flag in tile["flags"]}

    genuine = inspect(client, BOTTLE / "test" / "good" / "000.png")
    assert not {"item_mismatch", "anomaly"} & {flag["kind"] for flag in genuine["flags"]}
