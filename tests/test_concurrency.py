"""Issue 9, items 2 and 3, against a real server process on SQLite and PostgreSQL:
concurrent reviews of one inspection leave exactly one review (the losers get 409), and
`serve --workers N` on an empty data directory migrates once and serves."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import KEYS, encode, textured_photo
from server_process import ServerProcess, start_server
from sqlalchemy import func, select

from inspection.service.db import make_engine
from inspection.service.models import Review

INSPECTIONS = 8
REVIEWERS = 4  # parallel reviews of each inspection


@pytest.fixture
def server(tmp_path: Path, cracked_bundle: Path, database_url: str | None) -> Iterator[ServerProcess]:
    process = start_server(cracked_bundle, tmp_path / "data", database_url)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def create_inspection(url: str, seed: int) -> str:
    files = [("photos", ("p.jpg", encode(textured_photo(seed=seed)), "image/jpeg"))]
    answer = httpx.post(f"{url}/v1/inspections", headers={"X-API-Key": KEYS["station"]},
                        files=files, data={"return_id": f"R-{seed}", "category": "phone"}, timeout=60)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def review_together(url: str, inspection_id: str, count: int) -> list[int]:
    """`count` reviews released at the same instant; their status codes."""
    barrier = threading.Barrier(count)

    def review(index: int) -> int:
        body = {"decision": "correct", "labels": {"condition": [["A", "B", "C", "D"][index % 4]]}}
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.post(f"{url}/v1/inspections/{inspection_id}/review",
                               headers={"X-API-Key": KEYS["operator"]}, json=body).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(review, range(count)))


def reviews_in_database(server: ServerProcess, database_url: str | None, tmp_path: Path
                        ) -> dict[str, int]:
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'data' / 'inspection.db'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Review.inspection_id, func.count())
                                      .group_by(Review.inspection_id))
            return {str(inspection): int(count) for inspection, count in rows}
    finally:
        engine.dispose()


def test_concurrent_reviews_leave_exactly_one(server: ServerProcess, database_url: str | None,
                                              tmp_path: Path) -> None:
    ids = [create_inspection(server.url, seed) for seed in range(INSPECTIONS)]
    outcomes = {inspection: review_together(server.url, inspection, REVIEWERS) for inspection in ids}
    for inspection, statuses in outcomes.items():
        assert sorted(statuses) == [201] + [409] * (REVIEWERS - 1), (inspection, statuses)
    assert reviews_in_database(server, database_url, tmp_path) == dict.fromkeys(ids, 1)
    assert "Traceback" not in server.log()


def test_concurrent_admin_overrides_add_one_revision_each_time(server: ServerProcess,
                                                               database_url: str | None,
                                                               tmp_path: Path) -> None:
    inspection = create_inspection(server.url, 99)
    first = httpx.post(f"{server.url}/v1/inspections/{inspection}/review", timeout=60,
                       headers={"X-API-Key": KEYS["operator"]}, json={"decision": "confirm"})
    assert first.status_code == 201
    barrier = threading.Barrier(3)

    def override(_: int) -> Any:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.post(f"{server.url}/v1/inspections/{inspection}/review",
                               headers={"X-API-Key": KEYS["admin"]},
                               json={"decision": "confirm", "override": True}).status_code

    with ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(override, range(3)))
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    stored = reviews_in_database(server, database_url, tmp_path)[inspection]
    assert stored == 1 + statuses.count(201)
    answer = httpx.get(f"{server.url}/v1/inspections/{inspection}", timeout=60,
                       headers={"X-API-Key": KEYS["admin"]}).json()
    assert answer["review"]["override"] is True


@pytest.mark.slow
@pytest.mark.parametrize(("workers", "starts"), [(2, 3), (4, 2)])
def test_serve_with_several_workers_on_an_empty_data_dir(tmp_path: Path, cracked_bundle: Path,
                                                         database_url: str | None, workers: int,
                                                         starts: int) -> None:
    from conftest import empty_postgres

    for attempt in range(starts):
        url = empty_postgres() if database_url else None  # empty again for each start
        data = tmp_path / f"data-{attempt}"
        server = start_server(cracked_bundle, data, url, workers=workers, log_name=f"s{attempt}.log")
        try:
            server.wait_ready()
            assert server.process.poll() is None
            log = server.log()
            assert "already exists" not in log and "Traceback" not in log, log
            create_inspection(server.url, attempt)
        finally:
            server.stop()
