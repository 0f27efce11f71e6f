"""The service's speed machinery, checked for behaviour (no timings asserted): compact heatmaps
(old rows still readable), the smaller default answer, stage timings in the answer and in
Prometheus, bounded compute slots, and nothing left on disk by a refused request."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from conftest import submit

from inspection.service.compute import ComputeSlots
from inspection.service.heatmap import normalise_map
from inspection.stored_maps import pack_map, unpack_map


def test_a_packed_map_keeps_what_the_heatmap_draws() -> None:
    values = np.random.default_rng(0).normal(0, 3, (20, 20)).astype(np.float32)
    packed = pack_map(values)
    restored = unpack_map(packed)
    assert restored.shape == (20, 20) and len(packed["u8"]) < 600
    assert np.abs(restored - values).max() <= (values.max() - values.min()) / 255 / 2 + 1e-5
    assert np.abs(normalise_map(restored) - normalise_map(values)).max() < 0.01


def test_a_flat_map_and_an_old_row_read_back() -> None:
    assert np.all(unpack_map(pack_map(np.full((5, 5), 2.5))) == 2.5)
    old = [[0.1, 0.2], [0.3, 0.4]]  # rows written before the packed format
    assert np.allclose(unpack_map(old), old)


def test_answer_detail_and_stage_metrics(client: Any, photo_jpeg: bytes) -> None:
    body = submit(client, [photo_jpeg]).json()
    assert body["photos"][0].get("probabilities") is None
    full = client.get(f"/v1/inspections/{body['id']}?detail=full", headers={"X-API-Key": "admin-key-1"})
    probabilities = full.json()["photos"][0]["probabilities"]
    assert probabilities["condition"] == body["photos"][0]["condition"]["probabilities"]
    assert probabilities["damage"] == body["photos"][0]["damages"]
    assert len(full.content) > len(client.get(f"/v1/inspections/{body['id']}",
                                              headers={"X-API-Key": "admin-key-1"}).content)
    bad = client.get(f"/v1/inspections/{body['id']}?detail=everything", headers={"X-API-Key": "admin-key-1"})
    assert bad.status_code == 422 and "error" in bad.json()
    metrics = client.get("/metrics").text
    for stage in ("queue", "decode", "inference", "storage", "database"):
        assert f'returns_stage_seconds_count{{stage="{stage}"}} 1.0' in metrics


def test_heatmap_of_a_row_stored_as_float_lists(client: Any, photo_jpeg: bytes) -> None:
    from inspection.service.models import Photo

    body = submit(client, [photo_jpeg]).json()
    sessions = client.app.state.service.sessions
    with sessions() as session:
        photo = session.query(Photo).filter_by(inspection_id=body["id"]).one()
        cams = photo.predictions["cams"]
        photo.predictions = {**photo.predictions, "cams": {
            head: {label: unpack_map(packed).tolist() for label, packed in maps.items()}
            for head, maps in cams.items()}}
        session.commit()
    response = client.get(f"/v1/inspections/{body['id']}/photos/0/heatmap?label=crack",
                          headers={"X-API-Key": "admin-key-1"})
    assert response.status_code == 200 and response.content[:4] == b"\x89PNG"


def test_a_refused_request_leaves_no_photo_behind(client: Any, photo_jpeg: bytes) -> None:
    store: Path = client.app.state.service.store.root
    response = submit(client, [photo_jpeg, photo_jpeg[: len(photo_jpeg) // 3]])
    assert response.status_code == 422
    assert [p for p in store.rglob("*") if p.is_file()] == []


def test_compute_slots_bound_concurrency_and_report_the_wait() -> None:
    slots = ComputeSlots(2)
    running, peak, waits = [0], [0], []
    lock = threading.Lock()

    def work() -> None:
        with slots.slot() as waited:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1
        waits.append(waited)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak[0] == 2 and max(waits) > 0
