"""Backlog re-scoring on Ray Data: on a local Ray (2 CPUs) the results equal the in-process
results photo by photo, and a driver killed mid-run then resumed leaves each item's result in
exactly one part. Runs on the default bundle, so every photo gets its own prediction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import encode, submit, textured_photo

from inspection.cli import main as cli
from inspection.manifest import Sample, write_manifest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
pq = pytest.importorskip("pyarrow.parquet")
pytestmark = pytest.mark.slow

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"
CATEGORIES = ("phone", "headphones", "shoe", "boxed_kit")
ITEMS = 12


@pytest.fixture(scope="module")
def ray_address() -> Any:
    """A local Ray of 2 CPUs with a small object store, shared by the module's tests."""
    if not (BUNDLE / "model.onnx").is_file():
        pytest.skip("models/default is not in this checkout")
    ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False,
             log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def backlog(tmp_path: Path) -> Path:
    """A manifest of 12 items (1-2 photos each, of varied look) over the four categories."""
    photos = tmp_path / "photos"
    photos.mkdir()
    samples = []
    for item in range(ITEMS):
        for photo in range(1 + item % 2):
            name = f"i{item:02d}_{photo}.jpg"
            rgb = textured_photo(seed=item * 7 + photo)
            rgb[..., item % 3] //= 2  # a colour cast per item, so the model sees different things
            (photos / name).write_bytes(encode(rgb))
            samples.append(Sample(f"photos/{name}", f"item{item:02d}", CATEGORIES[item % 4]))
    return write_manifest(tmp_path / "manifest.csv", samples, ["condition"])


def score(manifest: Path, out: Path, *extra: str) -> int:
    return cli(["score", str(manifest), "--bundle", str(BUNDLE), "--out", str(out), *extra])


def read_parts(out: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(JSONL records, Parquet item ids) over every part of a results folder."""
    records = [json.loads(line) for path in sorted(out.glob("part-*.jsonl"))
               for line in path.read_text().splitlines()]
    ids = [i for path in sorted(out.glob("part-*.parquet"))
           for i in pq.read_table(path).column("item_id").to_pylist()]
    return records, ids


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "timings"}


def test_ray_results_equal_in_process_results_photo_by_photo(ray_address: str, backlog: Path,
                                                             tmp_path: Path) -> None:
    assert score(backlog, tmp_path / "local", "--part-size", "5") == 0
    assert score(backlog, tmp_path / "ray", "--engine", "ray", "--address", ray_address,
                 "--actors", "2", "--batch-size", "3", "--part-size", "5") == 0
    local, _ = read_parts(tmp_path / "local")
    on_ray, parquet_ids = read_parts(tmp_path / "ray")
    assert sorted(parquet_ids) == sorted(r["item_id"] for r in on_ray)
    assert len(on_ray) == len(local) == ITEMS
    by_id = {r["item_id"]: r for r in local}
    grades = set()
    for record in on_ray:
        expected = by_id[record["item_id"]]
        assert comparable(record) == comparable(expected)
        for photo, expected_photo in zip(record["photos"], expected["photos"], strict=True):
            assert photo["probabilities"] == expected_photo["probabilities"]
        grades.add(json.dumps(record["item"]["condition"]["probabilities"]))
    assert len(grades) > 1  # the photos differ, so equal answers are not one answer repeated


def test_killed_and_resumed_run_writes_each_result_exactly_once(ray_address: str, backlog: Path,
                                                                tmp_path: Path) -> None:
    # One photo is a FIFO: the actor that opens it blocks until the driver is killed, so the
    # kill lands mid-run on every machine, however fast.
    stuck = backlog.parent / "photos" / "i07_0.jpg"
    photo = stuck.read_bytes()
    stuck.unlink()
    os.mkfifo(stuck)
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "inspection.cli", "score", str(backlog), "--bundle",
               str(BUNDLE), "--out", str(out), "--engine", "ray", "--address", ray_address,
               "--actors", "2", "--batch-size", "1", "--part-size", "2"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        settled = wait_for_parts(out, driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert 0 < settled < ITEMS // 2, "the kill should land with some parts written, not all"
    first_run, _ = read_parts(out)
    assert "item07" not in {r["item_id"] for r in first_run}

    stuck.unlink()
    stuck.write_bytes(photo)
    assert score(backlog, out, "--engine", "ray", "--address", ray_address, "--actors", "2",
                 "--batch-size", "1", "--part-size", "2") == 0
    records, parquet_ids = read_parts(out)
    counts = Counter(r["item_id"] for r in records)
    assert set(counts) == {f"item{i:02d}" for i in range(ITEMS)}
    assert set(counts.values()) == {1} and sorted(parquet_ids) == sorted(counts)
    # The first run's parts were kept, not rewritten.
    assert all(r in records for r in first_run)
    assert not list(out.glob(".*.partial"))

    assert score(backlog, out, "--engine", "ray", "--address", ray_address) == 0  # nothing left
    assert len(read_parts(out)[0]) == ITEMS


def wait_for_parts(out: Path, driver: subprocess.Popen, timeout: float = 120.0) -> int:
    """Parts written once the run is stuck on the FIFO (their count stops growing)."""
    deadline, last, stable_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            pytest.fail(f"the driver ended early: {driver.stderr.read().decode()[-2000:]}")
        count = len(list(out.glob("part-*.parquet")))
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count and time.monotonic() - stable_since > 3.0:
            return count
        time.sleep(0.2)
    pytest.fail("no part was written in time")
    return 0


def test_ray_rescores_the_service_database(ray_address: str, make_app: Any, tmp_path: Path) -> None:
    """Actors read the stored photos from the service's photo store themselves."""
    client = make_app(BUNDLE)
    answers = {}
    for seed in range(3):
        response = submit(client, [encode(textured_photo(seed=seed))], return_id=f"R-{seed}")
        answers[response.json()["id"]] = response.json()
    data, out = tmp_path / "data", tmp_path / "rescored"
    assert cli(["score", "--from-db", f"sqlite:///{data / 'inspection.db'}", "--photo-store",
                str(data / "photos"), "--bundle", str(BUNDLE), "--out", str(out), "--engine", "ray",
                "--address", ray_address, "--actors", "2", "--batch-size", "1"]) == 0
    records = {r["item_id"]: r for r in read_parts(out)[0]}
    assert set(records) == set(answers)
    for inspection_id, answer in answers.items():
        assert records[inspection_id]["item"] == answer["item"]
        assert records[inspection_id]["flags"] == answer["flags"]
