"""Which code produced an artefact: the package version plus `git describe` when in a checkout."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from inspection import __version__

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_describe(root: Path = REPO_ROOT) -> str | None:
    """`git describe --always --dirty`, or None outside a git checkout or without git."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root,
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    described = result.stdout.strip()
    return described if result.returncode == 0 and described else None


def code_version() -> str:
    described = git_describe()
    return f"{__version__}+git.{described}" if described else __version__


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
