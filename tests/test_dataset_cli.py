"""Bad input to the dataset commands ends in one line naming the file and row (or option), exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspection.cli import main as cli


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_malformed_row_names_file_and_line(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,item_id,split,condition\na.jpg,1,train,A\nb.jpg,2,holdout,B\n")
    for command in (["dataset", "validate", str(manifest)],
                    ["dataset", "split", str(manifest), "--out", str(tmp_path / "o.csv")]):
        err = _error(command, capsys)
        assert f"{manifest}:3: split must be one of" in err
    assert not (tmp_path / "o.csv").exists()


def test_missing_manifest_and_bad_taxonomy_are_named(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert f"{tmp_path / 'no.csv'}: manifest not found" in _error(
        ["dataset", "validate", str(tmp_path / "no.csv")], capsys)
    taxonomy = tmp_path / "t.yaml"
    taxonomy.write_text("heads: [unclosed\n")
    err = _error(["dataset", "synth", "--out", str(tmp_path / "s"), "--taxonomy", str(taxonomy)], capsys)
    assert err.startswith(f"returns-inspect: error: {taxonomy}:") and "not valid YAML" in err


def test_synth_options_are_checked(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "--photos: must be at least 1" in _error(
        ["dataset", "synth", "--out", str(tmp_path), "--photos", "0"], capsys)
    assert "--size: must be between" in _error(
        ["dataset", "synth", "--out", str(tmp_path), "--size", "8"], capsys)
    taxonomy = tmp_path / "t.yaml"
    taxonomy.write_text("heads:\n  defect: {type: single, labels: [good, bad]}\n")
    assert "needs a `condition` head" in _error(
        ["dataset", "synth", "--out", str(tmp_path), "--taxonomy", str(taxonomy)], capsys)


def test_split_refuses_resplit_without_keep_existing(tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,item_id,defect\na.jpg,1,good\nb.jpg,2,bad\n")
    err = _error(["dataset", "split", str(manifest), "--out", str(tmp_path / "o.csv"),
                  "--resplit-labels", "bad"], capsys)
    assert "--resplit-labels: only makes sense with --keep-existing" in err
