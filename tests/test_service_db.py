"""Persistence: the Alembic migrations build exactly the ORM's schema (SQLite and, when a server
is given, PostgreSQL), SQLite runs in WAL mode, and the photo store is content-addressed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import headers, submit
from sqlalchemy import Engine, inspect, text

from inspection.service.db import alembic_config, database_reachable, make_engine, upgrade_to_head
from inspection.service.models import Base
from inspection.service.storage import PhotoStore

# e.g. postgresql+psycopg://postgres@127.0.0.1:5432/returns_test (the database is emptied)
POSTGRES_URL = os.environ.get("RETURNS_TEST_DATABASE_URL", "")


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_sqlite_migrations_match_the_models_and_use_wal(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'inspection.db'}")
    upgrade_to_head(engine)
    upgrade_to_head(engine)  # idempotent: a restart does not fail
    assert set(inspect(engine).get_table_names()) >= {"inspections", "photos", "flags", "reviews",
                                                      "alembic_version"}
    assert schema_differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert database_reachable(engine)


def test_unreachable_database_is_reported_not_raised() -> None:
    pytest.importorskip("psycopg")
    assert not database_reachable(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))


def test_photo_store_is_content_addressed_and_deduplicated(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "photos")
    first = store.put(b"jpeg bytes", "JPEG")
    again = store.put(b"jpeg bytes", "JPEG")
    assert first.created and not again.created and first.path == again.path
    assert first.path == f"{first.sha256[:2]}/{first.sha256[2:]}.jpg"
    assert store.read(first.path) == b"jpeg bytes"
    assert not list((tmp_path / "photos").rglob(".partial-*"))  # nothing left half-written
    with pytest.raises(ValueError, match="outside the store"):
        store.path("../../etc/passwd")


@pytest.fixture
def postgres_engine() -> Any:
    if not POSTGRES_URL:
        pytest.skip("set RETURNS_TEST_DATABASE_URL to a PostgreSQL database to run this test")
    pytest.importorskip("psycopg")
    engine = make_engine(POSTGRES_URL)
    if not database_reachable(engine):
        pytest.skip(f"no PostgreSQL server answers at {engine.url.render_as_string()}")
    command.downgrade(alembic_config(engine), "base")
    yield engine
    command.downgrade(alembic_config(engine), "base")
    engine.dispose()


def test_postgresql_migrations_and_a_review_round_trip(postgres_engine: Engine, make_app: Any,
                                                       cracked_bundle: Path,
                                                       photo_jpeg: bytes) -> None:
    upgrade_to_head(postgres_engine)
    assert schema_differences(postgres_engine) == []
    client = make_app(cracked_bundle, database_url=POSTGRES_URL)
    inspection = submit(client, [photo_jpeg]).json()["id"]
    page = client.get("/v1/review-queue", headers=headers("operator")).json()
    assert [item["id"] for item in page["items"]] == [inspection]
    reviewed = client.post(f"/v1/inspections/{inspection}/review", headers=headers("operator"),
                           json={"decision": "confirm"})
    assert reviewed.status_code == 201
    assert client.get("/v1/review-queue", headers=headers("operator")).json()["total"] == 0
