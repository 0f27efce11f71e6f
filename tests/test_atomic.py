"""Files the CLI rewrites (manifests, cards, seals, detectors, reports, score output) are replaced
whole: by concurrent writers of one file, and when a write fails half-way."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inspection.atomic import replacing
from inspection.manifest import Sample, read_manifest, write_manifest


def samples(version: int, count: int = 3000) -> list[Sample]:
    return [Sample(image=f"photos/{version}-{i}.jpg", item_id=f"{version}-{i}", split="train",
                   labels={"defect": ("good",)}) for i in range(count)]


def test_concurrent_writers_of_one_manifest_each_leave_a_whole_file(tmp_path: Path) -> None:
    # Two `dataset split` runs writing one manifest shared a temporary name: one renamed the
    # other's half-written file, or failed because its own had already been renamed.
    target = tmp_path / "manifest.csv"
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda v: write_manifest(target, samples(v), ["defect"]), range(16)))
    assert written == [target] * 16
    items = [s.item_id for s in read_manifest(target).samples]
    version = items[0].split("-")[0]
    assert items == [f"{version}-{i}" for i in range(3000)]  # one writer's file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]  # no temporaries left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "card.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]


def test_the_replaced_file_keeps_the_umask_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    target = tmp_path / "model_card.json"
    with replacing(target) as temporary:
        temporary.write_text("{}")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode)


def test_a_killed_writers_temporary_is_removed_by_the_next_writer_once_stale(tmp_path: Path) -> None:
    target = tmp_path / "manifest.csv"
    stale, live = (tmp_path / f".manifest.csv.{pid}-0000.partial" for pid in (1, 2))
    other_file = tmp_path / ".other.csv.1-0000.partial"
    for partial in (stale, live, other_file):
        partial.write_text("half")
    an_hour_and_more_ago = time.time() - 3700
    for old in (stale, other_file):
        os.utime(old, (an_hour_and_more_ago, an_hour_and_more_ago))
    with replacing(target) as temporary:
        temporary.write_text("whole")
    assert target.read_text() == "whole"
    assert not stale.exists()  # a killed writer's, of this target
    assert live.exists() and other_file.exists()  # a live writer's, and another target's


def test_the_new_file_reaches_the_disk_before_the_rename_and_the_folder_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inspection.atomic as atomic

    target = tmp_path / "model_card.json"
    target.write_text("old")
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else
                      f"fsync file of {os.fstat(descriptor).st_size} bytes")
        real_fsync(descriptor)

    def replace(source: str | Path, destination: str | Path) -> None:
        events.append("rename")
        real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    with replacing(target) as temporary:
        temporary.write_text("new card")
    assert events == ["fsync file of 8 bytes", "rename", "fsync folder"]
    assert target.read_text() == "new card"
