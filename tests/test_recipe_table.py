"""bench/recipe_table.py: every variant is a valid `train` command line, and the table's arithmetic."""

from __future__ import annotations

import argparse

import pytest

from bench.recipe_table import PROTOCOL, VARIANTS, mean_std, print_table
from training.config import config_from_args
from training.train import add_arguments


@pytest.mark.parametrize("dataset", list(PROTOCOL))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_parses_as_train_flags(dataset: str, variant: str) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--manifest", "m.csv", *PROTOCOL[dataset], *VARIANTS[variant]])
    config = config_from_args(args)
    flags = VARIANTS[variant]  # the protocol's size, unless the variant names its own (a backbone's)
    size = flags[flags.index("--input-size") + 1] if "--input-size" in flags else PROTOCOL[dataset][1]
    assert config.input_size == int(size)


def test_mean_std_is_over_the_seeds() -> None:
    assert mean_std([0.8, 0.9, 1.0]) == "0.900 ± 0.082"
    assert mean_std([0.5]) == "0.500 ± 0.000"


def test_table_has_one_row_per_variant(capsys: pytest.CaptureFixture[str]) -> None:
    results = [{"dataset": "magnetic_tile", "variant": variant, "seed": seed, "macro_f1": f1,
                "accuracy": 0.9, "train_seconds": 100}
               for variant, f1 in (("default", 0.9), ("mirror", 0.8)) for seed in range(2)]
    print_table(results)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| default", "| mirror"]
    assert "0.900 ± 0.000" in rows[1] and "0.900 0.900" in rows[1]


def test_anomaly_map_extent_figures_grow_with_the_defect() -> None:
    """bench/anomaly_plus_heads.py describes a map by its worst patch and how much of it is hot."""
    import numpy as np

    from bench.anomaly_plus_heads import map_figures
    maps = np.ones((2, 10, 10), np.float32)
    maps[0, :2, :2] = 3.0  # a small hot spot
    maps[1, :6, :6] = 3.0  # a large one, as hot
    small, large = map_figures(maps, normaliser=1.0)
    assert small[0] == large[0] == 3.0  # the worst patch cannot tell them apart
    assert small[4] == 0.04 and large[4] == 0.36  # the share above 2x the normaliser can


def test_a_curve_subset_keeps_n_train_photos_per_class_and_every_other_row(tmp_path, monkeypatch) -> None:
    """bench/learning_curves_finetune.py: the subset manifest sits beside the full one."""
    import csv

    from bench import learning_curves_finetune as curves
    folder = tmp_path / "mvtec_bottle"
    folder.mkdir()
    rows = [{"image": f"{split}{i}.png", "split": split, "defect": label}
            for split, count in (("train", 12), ("val", 3), ("test", 4))
            for i, label in enumerate(["good", "crack"] * (count // 2) + ["good"] * (count % 2))]
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "split", "defect"])
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setattr(curves, "WORK", tmp_path)
    subset = curves.subset_manifest("mvtec_bottle", 2, seed=0)
    assert subset.parent == folder
    kept = list(csv.DictReader(subset.open()))
    train = [r["defect"] for r in kept if r["split"] == "train"]
    assert sorted(train) == ["crack", "crack", "good", "good"]
    assert sum(r["split"] != "train" for r in kept) == 7  # val and test untouched
    few_defects = curves.subset_manifest("mvtec_bottle", 2, seed=0, every_good=True)
    assert few_defects != subset
    kept = list(csv.DictReader(few_defects.open()))
    train = [r["defect"] for r in kept if r["split"] == "train"]
    assert sorted(train) == ["crack"] * 2 + ["good"] * 6  # the same draw of cracks, every good
