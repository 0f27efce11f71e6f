"""Shared fixtures. Service fixtures build a tiny ONNX bundle (tests/bundle_factory.py, no torch)
and an app on a temporary SQLite database and photo store."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_factory import CLEAN_ITEM, CRACKED_ITEM, build_bundle
from PIL import Image

KEYS = {"station": "station-key-1", "station2": "station-key-2", "customer": "customer-key-1",
        "operator": "operator-key-1", "admin": "admin-key-1"}
API_KEYS = ("station-key-1:station:station-A,station-key-2:station:station-B,"
            "customer-key-1:customer:portal,operator-key-1:operator:olga,admin-key-1:admin:root")


# e.g. postgresql+psycopg://postgres@127.0.0.1:5432/returns_test (scripts/test-postgres.sh); the
# database is emptied by the tests that use it.
POSTGRES_URL = os.environ.get("RETURNS_TEST_DATABASE_URL", "")


def empty_postgres() -> str:
    """RETURNS_TEST_DATABASE_URL with an empty public schema; skips without a server."""
    if not POSTGRES_URL:
        pytest.skip("set RETURNS_TEST_DATABASE_URL to a PostgreSQL database to run this test")
    pytest.importorskip("psycopg")
    from sqlalchemy import text

    from inspection.service.db import database_reachable, make_engine

    engine = make_engine(POSTGRES_URL)
    try:
        if not database_reachable(engine):
            pytest.skip(f"no PostgreSQL server answers at {engine.url.render_as_string()}")
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each database the service supports: None is the embedded SQLite under the data dir."""
    return empty_postgres() if request.param == "postgresql" else None


@pytest.fixture(scope="session")
def cracked_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that sees a grade-D item with a crack and no charger, whatever the photo."""
    return build_bundle(tmp_path_factory.mktemp("cracked"), biases=CRACKED_ITEM, version="1.0.0")


@pytest.fixture(scope="session")
def clean_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that sees a complete, as-new item."""
    return build_bundle(tmp_path_factory.mktemp("clean"), biases=CLEAN_ITEM, version="2.0.0")


def textured_photo(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """A sharp, well exposed RGB photo (checkerboard + noise): passes every quality check."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    board = (((x // 16) + (y // 16)) % 2) * 120 + 60
    noise = rng.integers(0, 30, (height, width))
    grey = np.clip(board + noise, 0, 255).astype(np.uint8)
    return np.stack([grey, np.roll(grey, 3, axis=1), np.roll(grey, 5, axis=0)], axis=2)


def encode(rgb: np.ndarray, fmt: str = "JPEG", **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **save)
    return buffer.getvalue()


@pytest.fixture
def photo_jpeg() -> bytes:
    return encode(textured_photo())


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Any]:
    """make_app(bundle, **settings) -> a started TestClient (closed at teardown)."""
    from fastapi.testclient import TestClient

    from inspection.service.app import create_app
    from inspection.service.settings import Settings

    clients: list[TestClient] = []

    def make(bundle: Path, **overrides: Any) -> TestClient:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "bundle_dir": bundle,
                                  "api_keys": API_KEYS, **overrides}
        client = TestClient(create_app(Settings(**values)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_app: Callable[..., Any], cracked_bundle: Path) -> Iterator[Any]:
    yield make_app(cracked_bundle)


def headers(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


def submit(client: Any, photos: list[bytes], role: str = "station", **form: str) -> Any:
    """POST /v1/inspections with default return_id R-1 and category phone."""
    files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    return client.post("/v1/inspections", headers=headers(role), files=files,
                       data={"return_id": "R-1", "category": "phone", **form})


def error_of(response: Any) -> dict[str, Any]:
    """The JSON error body, checked to have exactly the documented shape."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    return body["error"]
