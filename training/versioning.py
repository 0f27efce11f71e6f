"""Which code and which library releases produced an artefact: the package version plus `git
describe` when in a checkout, and the releases of the libraries that move its figures."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from importlib import metadata
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


# The libraries whose release moves a bundle's figures, not only its speed: OpenCV and numpy draw
# and decode the photos (OpenCV 5.0 and 5.1 draw 55 % of the sample set's photos up to 6 grey
# levels apart, BENCHMARKS.md "Default bundle"), torch and timm train, onnx and ONNX Runtime
# export and score, scikit-learn and scipy fit the calibration and the detectors' thresholds.
# `make default-bundle` installs them at the versions in DEFAULT_BUNDLE_CONSTRAINTS.
RESULT_LIBRARIES = ("numpy", "opencv-python-headless", "pillow", "torch", "torchvision", "timm",
                    "onnx", "onnxruntime", "scikit-learn", "scipy")
DEFAULT_BUNDLE_CONSTRAINTS = REPO_ROOT / "training" / "recipes" / "default-bundle.constraints.txt"


def library_versions() -> dict[str, str]:
    """The installed release of each of RESULT_LIBRARIES (those installed), for the card."""
    versions = {}
    for name in RESULT_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # e.g. opencv-python instead of the headless build: not the pinned one
    return versions
