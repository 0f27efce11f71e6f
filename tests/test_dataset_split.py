"""dataset split: grouped by item, deterministic by seed, stratified, MVTec-style hold-outs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from inspection.cli import main as cli
from inspection.dataset.split import assign_splits
from inspection.manifest import Sample, read_manifest, write_manifest


def _samples(items: int = 200, photos_per_item: int = 2) -> list[Sample]:
    labels = ["good", "good", "good", "crack", "tear"]  # imbalanced on purpose
    return [Sample(image=f"{i}_{k}.jpg", item_id=f"item{i}", labels={"defect": (labels[i % 5],)})
            for i in range(items) for k in range(photos_per_item)]


def test_items_never_straddle_splits() -> None:
    result = assign_splits(_samples(), seed=1, stratify="defect")
    splits_of: dict[str, set[str]] = {}
    for sample in result:
        splits_of.setdefault(sample.item_id, set()).add(sample.split)
    assert all(len(s) == 1 for s in splits_of.values())
    assert [s.image for s in result] == [s.image for s in _samples()]  # order kept


def test_same_seed_same_split_other_seed_other_split() -> None:
    first = [s.split for s in assign_splits(_samples(), seed=7, stratify="defect")]
    assert first == [s.split for s in assign_splits(_samples(), seed=7, stratify="defect")]
    assert first != [s.split for s in assign_splits(_samples(), seed=8, stratify="defect")]


def test_each_label_is_split_by_the_fractions() -> None:
    result = assign_splits(_samples(), fractions=(0.7, 0.15, 0.15), seed=0, stratify="defect")
    for label, total in Counter(s.labels["defect"][0] for s in result).items():
        counts = Counter(s.split for s in result if s.labels["defect"][0] == label)
        assert abs(counts["train"] - 0.7 * total) <= 2, (label, counts)
        assert abs(counts["val"] - 0.15 * total) <= 2, (label, counts)
        assert abs(counts["test"] - 0.15 * total) <= 2, (label, counts)


def test_keep_existing_resplits_only_named_labels_and_moves_val_from_train() -> None:
    def rows_of(prefix: str, count: int, split: str, label: str) -> list[Sample]:
        return [Sample(image=f"{prefix}{i}", item_id=f"{prefix}{i}", split=split, labels={"d": (label,)})
                for i in range(count)]

    rows = rows_of("tg", 100, "train", "good") + rows_of("eg", 20, "test", "good") \
        + rows_of("b", 20, "test", "broken")
    result = assign_splits(rows, fractions=(0.4, 0.1, 0.5), seed=0, stratify="d", keep_existing=True,
                           resplit_labels=["broken"], val_from_train=0.1)
    counts = Counter((s.labels["d"][0], s.image[:2] if s.image[0] != "b" else "b", s.split) for s in result)
    assert counts[("good", "tg", "train")] == 90 and counts[("good", "tg", "val")] == 10
    assert counts[("good", "eg", "test")] == 20
    assert counts[("broken", "b", "test")] == 10  # a seeded half held out
    assert counts[("broken", "b", "train")] + counts[("broken", "b", "val")] == 10


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="three non-negative"):
        assign_splits(_samples(), fractions=(0.5, 0.5), seed=0)


def test_cli_split_writes_a_manifest_that_keeps_paths(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = write_manifest(tmp_path / "data" / "all.csv", _samples(20, 1), ["defect"])
    out = tmp_path / "splits" / "split.csv"
    assert cli(["dataset", "split", str(source), "--out", str(out), "--seed", "3"]) == 0
    manifest = read_manifest(out)
    assert {s.split for s in manifest.samples} == {"train", "val", "test"}
    assert manifest.samples[0].image == "../data/0_0.jpg"
    assert not (out.parent / "taxonomy.yaml").exists()  # there was none to carry over
    assert "train 14" in capsys.readouterr().out


def test_cli_split_names_an_unknown_stratify_head(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = write_manifest(tmp_path / "all.csv", _samples(10, 1), ["defect"])
    out = str(tmp_path / "o.csv")
    assert cli(["dataset", "split", str(source), "--out", out, "--stratify", "grade"]) == 2
    assert "--stratify: no column 'grade'" in capsys.readouterr().err


def test_cli_split_carries_the_taxonomy_to_a_new_folder(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = write_manifest(tmp_path / "data" / "all.csv", _samples(20, 1), ["defect"])
    (tmp_path / "data" / "taxonomy.yaml").write_text(
        "name: t\nheads:\n  defect: {type: single, labels: [good, crack, tear]}\n")
    out = tmp_path / "splits" / "split.csv"
    assert cli(["dataset", "split", str(source), "--out", str(out)]) == 0
    assert "crack" in (out.parent / "taxonomy.yaml").read_text()
    assert cli(["dataset", "validate", str(out)]) == 1  # the photos do not exist: reported, not raised
    assert "image not found" in capsys.readouterr().out


def test_cli_split_keeps_another_taxonomy_in_the_out_folder(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A split written beside another set's taxonomy would be read with that set's labels."""
    source = write_manifest(tmp_path / "data" / "all.csv", _samples(20, 1), ["defect"])
    (tmp_path / "data" / "taxonomy.yaml").write_text(
        "name: t\nheads:\n  defect: {type: single, labels: [good, crack, tear]}\n")
    theirs = "name: tiles\nheads:\n  defect: {type: single, labels: [MT_Free, MT_Crack]}\n"
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "taxonomy.yaml").write_text(theirs)
    out = tmp_path / "splits" / "split.csv"
    assert cli(["dataset", "split", str(source), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'splits' / 'taxonomy.yaml'}: already holds the taxonomy 'tiles'" in error
    assert "MT_Free, MT_Crack" in error
    assert not out.exists()
    assert (tmp_path / "splits" / "taxonomy.yaml").read_text() == theirs
    # The same taxonomy there already (a second split of one set into one folder) is no conflict.
    (tmp_path / "splits" / "taxonomy.yaml").write_text(
        (tmp_path / "data" / "taxonomy.yaml").read_text())
    assert cli(["dataset", "split", str(source), "--out", str(out)]) == 0
