"""`make default-bundle` reproduces models/default only with the library releases that produced it:
a newer OpenCV alone draws half the sample set's photos a few grey levels apart. The Makefile
installs the pins in training/recipes/default-bundle.constraints.txt; these tests keep those pins,
the sample set the card records and the Makefile together. (Training itself is not bit-identical
across CPU types: BENCHMARKS.md "Default bundle" has the figures of a rebuild on another CPU.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from inspection.cli import main as cli
from inspection.manifest import file_sha256
from training.versioning import (
    DEFAULT_BUNDLE_CONSTRAINTS,
    REPO_ROOT,
    RESULT_LIBRARIES,
    library_versions,
)

DRAWING_LIBRARIES = ("numpy", "opencv-python-headless")  # what `dataset synth` draws and encodes with
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$")


def read_pins(path: Path) -> dict[str, str]:
    pins = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = PIN.match(text)
        assert match, f"{path.name}:{number}: not a 'name==version' pin: {line!r}"
        pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_library_that_moves_the_figures_is_pinned() -> None:
    pins = read_pins(DEFAULT_BUNDLE_CONSTRAINTS)
    assert set(pins) == set(RESULT_LIBRARIES)


def test_torch_pins_agree_with_the_train_extra() -> None:
    pins = read_pins(DEFAULT_BUNDLE_CONSTRAINTS)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name in ("torch", "torchvision"):
        assert f'"{name}=={pins[name]}"' in pyproject, name


@pytest.mark.slow
def test_the_pinned_releases_draw_the_sample_set_the_default_bundle_learnt_from(tmp_path: Path) -> None:
    """`dataset synth` as `make default-bundle` runs it (20 s on 2 cores): byte for byte the
    manifest in the card, where the installed OpenCV and numpy are the pinned ones."""
    pins = read_pins(DEFAULT_BUNDLE_CONSTRAINTS)
    installed = library_versions()
    other = [f"{name} {installed.get(name)} (pinned {pins[name]})" for name in DRAWING_LIBRARIES
             if installed.get(name) != pins[name]]
    if other:
        pytest.skip("the sample set's bytes depend on these releases: " + ", ".join(other))
    card = json.loads((REPO_ROOT / "models" / "default" / "model_card.json").read_text())
    assert cli(["dataset", "synth", "--out", str(tmp_path / "sample")]) == 0
    drawn = file_sha256(tmp_path / "sample" / "manifest.csv")
    assert drawn == card["dataset"]["manifest_sha256"]


def test_make_default_bundle_installs_the_pins() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndefault-bundle:", 1)[1].split("\n\n", 1)[0]
    first_step = recipe.splitlines()[1]  # the line after the target's own
    assert "pip install" in first_step and "-c $(BUNDLE_PINS)" in first_step
    assert f"BUNDLE_PINS = {DEFAULT_BUNDLE_CONSTRAINTS.relative_to(REPO_ROOT)}" in makefile
