"""The recipes in datasets/recipes/ are runnable: their commands parse, and on the real photos
they reproduce the split counts they promise."""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path

import pytest
import yaml

from inspection.cli import _chosen, build_parser
from inspection.cli import main as cli
from inspection.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "datasets"
RECIPES = sorted((REPO / "datasets" / "recipes").glob("*.yaml"))


def _argvs(recipe: Path) -> list[list[str]]:
    commands = yaml.safe_load(recipe.read_text())["commands"]
    return [shlex.split(command)[1:] for command in commands]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_commands_parse(recipe: Path) -> None:
    for argv in _argvs(recipe):
        assert build_parser(_chosen(argv)).parse_args(argv)._module.startswith("inspection.dataset")


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("name", ["mvtec_bottle", "magnetic_tile"])
def test_recipe_reproduces_its_split(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is absent")
    recipe = REPO / "datasets" / "recipes" / f"{name}.yaml"
    monkeypatch.chdir(REPO)  # the recipes' paths are relative to the repository root
    for argv in _argvs(recipe):
        assert cli([arg.replace("datasets/work/", f"{tmp_path}/") for arg in argv]) == 0, argv
    manifest = read_manifest(tmp_path / name / "manifest.csv")
    counts: dict[str, Counter] = {}
    for sample in manifest.samples:
        counts.setdefault(sample.split, Counter())[sample.labels["defect"][0]] += 1
    expected = yaml.safe_load(recipe.read_text())["expected_split"]
    assert {split: dict(c) for split, c in counts.items()} == expected
