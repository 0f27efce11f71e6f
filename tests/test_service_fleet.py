"""Replicas agree on the model: a reload through one replica is recorded in the shared
database, the others load the same bundle, and a replica that starts later serves it too. Here
the replicas are two apps on one SQLite file; tests/test_replicas.py runs real processes on
PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import headers


def current(client: Any) -> dict[str, Any]:
    return client.get("/v1/models/current", headers=headers("admin")).json()


def wait_for_model(client: Any, model_id: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (status := current(client))["model_id"] != model_id and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_a_reload_through_one_replica_reaches_the_others(make_app: Callable[..., Any],
                                                         cracked_bundle: Path,
                                                         clean_bundle: Path) -> None:
    a = make_app(cracked_bundle, model_sync_seconds=0.1)
    b = make_app(cracked_bundle, model_sync_seconds=0.1)
    assert current(a)["model_id"] == current(b)["model_id"]
    reloaded = a.post("/v1/models/reload", headers=headers("admin"),
                      json={"bundle": str(clean_bundle)})
    assert reloaded.status_code == 200 and reloaded.json()["version"] == "2.0.0"
    followed = wait_for_model(b, reloaded.json()["model_id"])
    assert followed["version"] == "2.0.0" and followed["bundle"] == str(clean_bundle.resolve())
    # A replica that joins later serves the fleet's model, not the bundle it was started with.
    late = make_app(cracked_bundle, model_sync_seconds=0)
    assert current(late)["model_id"] == reloaded.json()["model_id"]


def test_a_bundle_that_does_not_load_here_keeps_the_current_model(make_app: Callable[..., Any],
                                                                  cracked_bundle: Path,
                                                                  clean_bundle: Path,
                                                                  tmp_path: Path) -> None:
    a = make_app(cracked_bundle, model_sync_seconds=0)
    moved = tmp_path / "only-on-replica-a"
    moved.mkdir()
    for path in clean_bundle.iterdir():
        (moved / path.name).write_bytes(path.read_bytes())
    assert a.post("/v1/models/reload", headers=headers("admin"),
                  json={"bundle": str(moved)}).status_code == 200
    for path in moved.iterdir():
        path.unlink()  # this bundle now exists nowhere another replica could load it from
    b = make_app(cracked_bundle, model_sync_seconds=0)
    assert current(b)["version"] == "1.0.0"  # still serving, on its own model
    assert b.get("/readyz").status_code == 200
