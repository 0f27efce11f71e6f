"""Two `returns-inspect serve` processes on one PostgreSQL, each with its own data folder, and
photos in a store both reach (a shared folder, or S3 served by moto on loopback): what one
replica stores, the other serves; a review through one is seen by the other, and a second
review through the other is refused (409)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEYS, encode, headers, textured_photo

from inspection.service.db import database_reachable, make_engine

POSTGRES_URL = os.environ.get("RETURNS_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.slow


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty database (every table dropped before and after)."""
    if not POSTGRES_URL:
        pytest.skip("set RETURNS_TEST_DATABASE_URL (scripts/test-postgres.sh starts a server)")
    pytest.importorskip("psycopg")
    from alembic import command

    from inspection.service.db import alembic_config

    engine = make_engine(POSTGRES_URL)
    if not database_reachable(engine):
        pytest.skip(f"no PostgreSQL server answers at {engine.url.render_as_string()}")
    command.downgrade(alembic_config(engine), "base")
    yield POSTGRES_URL
    command.downgrade(alembic_config(engine), "base")
    engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_store() -> Iterator[tuple[str, dict[str, str]]]:
    """A bucket on a moto S3 server on loopback: (store URL, the environment that reaches it)."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(),
                                              verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket="returns")
    yield "s3://returns/photos", env
    server.stop()


class Replica:
    def __init__(self, process: subprocess.Popen, url: str):
        self.process, self.url = process, url
        self.http = httpx.Client(base_url=url, timeout=30)

    def __getattr__(self, name: str) -> Callable[..., httpx.Response]:
        return getattr(self.http, name)  # get / post


@pytest.fixture
def start_replica(tmp_path: Path, cracked_bundle: Path) -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(name: str, database_url: str, store: str, env: dict[str, str]) -> Replica:
        port = free_port()
        environment = {**os.environ, **env, "RETURNS_API_KEYS": API_KEYS,
                       "RETURNS_DATABASE_URL": database_url, "RETURNS_PHOTO_STORE": store,
                       "RETURNS_BUNDLE_DIR": str(cracked_bundle), "RETURNS_MODEL_SYNC_SECONDS": "0.5",
                       "RETURNS_DATA_DIR": str(tmp_path / name)}  # nothing shared on local disk
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([sys.executable, "-m", "inspection.cli", "serve", "--port",
                                    str(port)], env=environment, stdout=log, stderr=log)
        replica = Replica(process, f"http://127.0.0.1:{port}")
        started.append(replica)
        wait_ready(replica, tmp_path / f"{name}.log")
        return replica

    yield start
    for replica in started:
        replica.process.terminate()
        replica.process.wait(timeout=30)


def wait_ready(replica: Replica, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            pytest.fail(f"replica exited: {log.read_text()[-3000:]}")
        try:
            if replica.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"replica not ready in {timeout:.0f} s: {log.read_text()[-3000:]}")


def review_round_trip(a: Replica, b: Replica) -> None:
    photo = encode(textured_photo(seed=3))
    created = a.post("/v1/inspections", headers=headers("station"),
                     files=[("photos", ("p.jpg", photo, "image/jpeg"))],
                     data={"return_id": "RMA-7", "category": "phone"})
    assert created.status_code == 201, created.text
    inspection = created.json()["id"]
    assert b.get(f"/v1/inspections/{inspection}", headers=headers("operator")).json()["id"] == inspection
    assert b.get(f"/v1/inspections/{inspection}/photos/0", headers=headers("operator")).content == photo
    heatmap = b.get(f"/v1/inspections/{inspection}/photos/0/heatmap", params={"label": "crack"},
                    headers=headers("operator"))
    assert heatmap.status_code == 200 and heatmap.headers["content-type"] == "image/png"
    queue = b.get("/v1/review-queue", headers=headers("operator")).json()
    assert [item["id"] for item in queue["items"]] == [inspection]

    first = a.post(f"/v1/inspections/{inspection}/review", headers=headers("operator"),
                   json={"decision": "confirm"})
    assert first.status_code == 201, first.text
    assert b.get("/v1/review-queue", headers=headers("operator")).json()["total"] == 0
    second = b.post(f"/v1/inspections/{inspection}/review", headers=headers("operator"),
                    json={"decision": "confirm"})
    assert second.status_code == 409 and second.json()["error"]["code"] == "already_reviewed"


def test_two_replicas_on_one_database_and_a_shared_folder(postgres_url: str, tmp_path: Path,
                                                         clean_bundle: Path,
                                                         start_replica: Callable[..., Replica]
                                                         ) -> None:
    shared = str(tmp_path / "shared-photos")
    a = start_replica("a", postgres_url, shared, {})
    b = start_replica("b", postgres_url, shared, {})
    review_round_trip(a, b)
    assert list(Path(shared).rglob("*.jpg"))  # the photo is in the shared folder
    assert not (tmp_path / "a" / "photos").exists() and not (tmp_path / "b" / "photos").exists()

    # A reload through A: B follows, so both answer with the same model.
    reloaded = a.post("/v1/models/reload", headers=headers("admin"), json={"bundle": str(clean_bundle)})
    assert reloaded.status_code == 200, reloaded.text
    deadline = time.monotonic() + 30
    while b.get("/readyz").json()["model_id"] != reloaded.json()["model_id"]:
        assert time.monotonic() < deadline, "replica B did not follow the reload"
        time.sleep(0.2)
    answer = b.post("/v1/inspections", headers=headers("station"),
                    files=[("photos", ("p.jpg", encode(textured_photo()), "image/jpeg"))],
                    data={"return_id": "RMA-8", "category": "phone"})
    assert answer.json()["model"]["version"] == "2.0.0"


def test_two_replicas_with_photos_in_s3(postgres_url: str, start_replica: Callable[..., Replica],
                                        s3_store: tuple[str, dict[str, str]]) -> None:
    store, env = s3_store
    a = start_replica("a", postgres_url, store, env)
    b = start_replica("b", postgres_url, store, env)
    review_round_trip(a, b)
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=env["AWS_ENDPOINT_URL"], key="test", secret="test")
    assert [key for key in fs.find("returns/photos") if key.endswith(".jpg")]


def test_photo_store_in_object_storage_round_trip(s3_store: tuple[str, dict[str, str]],
                                                  monkeypatch: pytest.MonkeyPatch) -> Any:
    from inspection.service.storage import PhotoStore

    store_url, env = s3_store
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store = PhotoStore(store_url)
    first, again = store.put(b"jpeg bytes", "JPEG"), store.put(b"jpeg bytes", "JPEG")
    assert first.created and not again.created
    assert store.read(first.path) == b"jpeg bytes" and store.exists(first.path)
    assert store.location(first.path) == f"{store_url}/{first.path}"
    assert store.local_path(first.path) is None
    with pytest.raises(ValueError, match="outside the store"):
        store.read("../../other-bucket/x")
