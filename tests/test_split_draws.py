"""bench/split_draws.py: another draw of a dataset's split protocol keeps the protocol's counts and
MVTec's own good test photos, and deals the defects differently."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from bench import split_draws
from inspection.manifest import Sample, read_manifest, write_manifest

TAXONOMY = """name: parts
heads:
  defect:
    type: single
    labels: [good, crack, dent]
    no_defect: good
"""


def split_counts(manifest: Path) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((s.split, s.labels["defect"][0]) for s in read_manifest(manifest).samples)


def test_a_draw_keeps_the_protocol_and_deals_the_defects_again(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "mvtec_bottle"
    folder.mkdir()
    (folder / "taxonomy.yaml").write_text(TAXONOMY)
    imported = [Sample(image=f"{split}/good/{i}.png", item_id=f"{split}/good/{i}", split=split,
                       labels={"defect": ("good",)})
                for split, count in (("train", 20), ("test", 5)) for i in range(count)]
    imported += [Sample(image=f"test/{kind}/{i}.png", item_id=f"test/{kind}/{i}", split="test",
                        labels={"defect": (kind,)}) for kind in ("crack", "dent") for i in range(10)]
    write_manifest(folder / "imported.csv", imported, ["defect"])
    protocol = ["dataset", "split", str(folder / "imported.csv"), "--out", "PLACEHOLDER", "--seed", "0",
                "--keep-existing", "--resplit-labels", "crack", "dent", "--fractions", "0.4", "0.1", "0.5",
                "--val-from-train", "0.1"]
    monkeypatch.setattr(split_draws, "WORK", tmp_path)
    monkeypatch.setattr(split_draws, "PREPARE", {"mvtec_bottle": [protocol]})

    first, second = (split_draws.drawn_manifest("mvtec_bottle", draw) for draw in (0, 1))

    assert first.parent == folder and sorted(p.name for p in folder.iterdir()) == [
        "draw-0.csv", "draw-1.csv", "imported.csv", "taxonomy.yaml"]  # no temporaries left
    assert split_counts(first) == split_counts(second)  # the protocol's counts on every draw
    tested = [split_draws.test_photos(m) for m in (first, second)]
    goods = [{s.item_id for s in photos.values() if s.labels["defect"] == ("good",)} for photos in tested]
    assert goods[0] == goods[1] == {f"test/good/{i}" for i in range(5)}  # MVTec's own good test photos
    defects = [{s.item_id for s in photos.values()} - good
               for photos, good in zip(tested, goods, strict=True)]
    assert defects[0] != defects[1]  # dealt again


def test_the_summary_counts_each_photo_against_the_runs_that_tested_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    results = [{"draw": draw, "seed": 0, "kinds": "1 crack / 1 good", "head": head, "served": served,
                "served errors": errors}
               for draw, head, served, errors in ((0, 0.8, 0.9, [("test/crack/1", "good")]),
                                                  (1, 0.7, 0.96, []))]
    split_draws.print_summary(results, collections.Counter({"test/crack/1": 2}))
    printed = capsys.readouterr().out
    assert "head alone 0.750 ± 0.050, served 0.930 ± 0.030; served ≥ 0.95 on 1 of 2" in printed
    assert "| test/crack/1 | 1 / 2 |" in printed
