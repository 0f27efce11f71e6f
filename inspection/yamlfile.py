"""Read the YAML files users write (taxonomy, policy, training recipe), turning a missing file or
a syntax error into one `InputError` that names the file and, where YAML knows it, the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inspection.errors import InputError


def read_yaml(path: Path, what: str) -> Any:
    """The parsed document; `what` names the file's role in messages ("taxonomy", "recipe")."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{what} file not found", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"not valid YAML ({getattr(exc, 'problem', None) or exc})", path, line) from None
