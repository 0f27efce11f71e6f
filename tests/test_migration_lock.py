"""Issue 9, item 3: migrations run once under a lock. Several processes migrating the same
empty database at the same moment (what `serve --workers N` and replicas do) all succeed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import empty_postgres
from server_process import REPO
from sqlalchemy import inspect

from inspection.service.db import make_engine

PROCESSES = 4
MIGRATE = ("import sys, time; from inspection.service.db import make_engine, upgrade_to_head; "
           "engine = make_engine(sys.argv[1]); time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
           "upgrade_to_head(engine)")


def migrate_together(url: str) -> list[subprocess.CompletedProcess[str]]:
    """PROCESSES interpreters that all start migrating at the same wall-clock instant."""
    import time

    start_at = time.time() + 4.0  # after every interpreter has imported SQLAlchemy and Alembic
    running = [subprocess.Popen([sys.executable, "-c", MIGRATE, url, str(start_at)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
               for _ in range(PROCESSES)]
    results = []
    for process in running:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_simultaneous_migrations_of_an_empty_database_all_succeed(tmp_path: Path, backend: str) -> None:
    for attempt in range(2):
        url = (empty_postgres() if backend == "postgresql"
               else f"sqlite:///{tmp_path / f'd{attempt}' / 'inspection.db'}")
        results = migrate_together(url)
        failures = [result.stderr[-2000:] for result in results if result.returncode != 0]
        assert failures == []
        engine = make_engine(url)
        assert {"inspections", "reviews", "idempotency_keys"} <= set(inspect(engine).get_table_names())
        engine.dispose()
