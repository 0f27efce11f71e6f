"""Issue 9: a real server process is killed with SIGKILL in the middle of a load of inspections
and reviews; after a restart every write it acknowledged (201) is there, on SQLite and on
PostgreSQL. A write answered 201 has been committed: the answer is only sent after it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import KEYS, encode, textured_photo
from server_process import start_server

WRITERS = 4
LOAD_SECONDS = 6.0  # of load before the kill: dozens of writes on a 2-core machine


def load(url: str, stop: threading.Event, acknowledged: dict[str, list[str]], lock: threading.Lock,
         seed: int) -> None:
    """Post inspections and review each one just made, until stopped or the server is gone."""
    photo = encode(textured_photo(seed=seed))
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            try:
                made = client.post("/v1/inspections", headers={"X-API-Key": KEYS["station"]},
                                   files=[("photos", ("p.jpg", photo, "image/jpeg"))],
                                   data={"return_id": f"K-{seed}", "category": "phone"})
                if made.status_code != 201:
                    continue
                inspection = made.json()["id"]
                with lock:
                    acknowledged["inspections"].append(inspection)
                reviewed = client.post(f"/v1/inspections/{inspection}/review",
                                       headers={"X-API-Key": KEYS["operator"]},
                                       json={"decision": "confirm", "note": f"by writer {seed}"})
                if reviewed.status_code == 201:
                    with lock:
                        acknowledged["reviews"].append(inspection)
            except httpx.HTTPError:
                return  # killed: whatever was not answered was never acknowledged


@pytest.mark.slow
def test_every_acknowledged_write_survives_kill_9(tmp_path: Path, cracked_bundle: Path,
                                                  database_url: str | None) -> None:
    data = tmp_path / "data"
    server = start_server(cracked_bundle, data, database_url, log_name="before.log")
    acknowledged: dict[str, list[str]] = {"inspections": [], "reviews": []}
    lock, stop = threading.Lock(), threading.Event()
    try:
        server.wait_ready()
        writers = [threading.Thread(target=load, args=(server.url, stop, acknowledged, lock, seed))
                   for seed in range(WRITERS)]
        for writer in writers:
            writer.start()
        time.sleep(LOAD_SECONDS)
        server.kill()  # mid-load: requests are in flight
        stop.set()
        for writer in writers:
            writer.join(timeout=60)
    finally:
        stop.set()
        server.stop()
    assert len(acknowledged["inspections"]) >= WRITERS and acknowledged["reviews"]
    print(f"killed after {len(acknowledged['inspections'])} acknowledged inspections and "
          f"{len(acknowledged['reviews'])} reviews")

    restarted = start_server(cracked_bundle, data, database_url, log_name="after.log")
    try:
        restarted.wait_ready()
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            for inspection in acknowledged["inspections"]:
                answer = client.get(f"/v1/inspections/{inspection}", headers={"X-API-Key": KEYS["admin"]})
                assert answer.status_code == 200, inspection
                assert client.get(f"/v1/inspections/{inspection}/photos/0",
                                  headers={"X-API-Key": KEYS["admin"]}).status_code == 200
                if inspection in acknowledged["reviews"]:
                    assert answer.json()["review"]["decision"] == "confirm", inspection
    finally:
        restarted.stop()
