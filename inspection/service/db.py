"""Engine, sessions and migrations. SQLite (WAL) is the embedded default; PostgreSQL comes by
URL. The schema is brought to the latest Alembic revision at start, so a fresh data directory
and an old database both end up with the tables the code expects.

Migrations run under a lock (a PostgreSQL advisory lock; a file lock beside a SQLite database):
`serve --workers N`, or several replicas on one PostgreSQL, start together and each would
otherwise try to create the same tables. The first migrates; the others wait, then find the
schema at head and do nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 5000  # writers wait for each other instead of failing at once
MIGRATION_LOCK_KEY = 0x72657475726E73  # pg_advisory_lock key: "returns" in ASCII, any fixed bigint
MIGRATION_LOCK_TIMEOUT_S = 300  # a migration of a large database may take minutes


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    # WAL: readers (the queue, GETs) never block the writer (POST); foreign keys are off by
    # default in SQLite.
    # busy_timeout first: switching to WAL takes a lock that a second process may be holding.
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not at every commit: the database cannot corrupt,
    # a power cut may lose the last commits (the photos themselves are fsynced by the store).
    # Measured: the commit was ~9 ms of a ~25 ms inspection at concurrency 1 (BENCHMARKS.md).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(engine: Engine) -> Config:
    package = resources.files("inspection.service")
    config = Config(str(package / "alembic.ini"))
    config.set_main_option("script_location", str(package / "migrations"))
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    with migration_lock(engine):
        command.upgrade(alembic_config(engine), "head")


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Only one process migrates a database at a time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            # Session-level: held on this connection until unlocked or the connection closes
            # (a killed process never leaves it behind).
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with FileLock(f"{database}.migrate.lock", timeout=MIGRATION_LOCK_TIMEOUT_S):
        yield


def database_reachable(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
