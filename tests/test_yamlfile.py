"""Every YAML file a user writes reports a syntax error with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspection.decide import load_policy
from inspection.errors import InputError
from inspection.taxonomy import load_taxonomy


@pytest.mark.parametrize("load", [load_taxonomy, load_policy])
def test_syntax_error_names_file_and_line(tmp_path: Path, load: object) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nheads:\n  condition: [A, B\n")  # unclosed list from line 3
    with pytest.raises(InputError) as raised:
        load(path)  # type: ignore[operator]
    assert raised.value.where == str(path) and raised.value.line is not None
    assert "not valid YAML" in str(raised.value)


def test_missing_file_names_its_role(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="policy file not found"):
        load_policy(tmp_path / "absent.yaml")
