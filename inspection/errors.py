"""Domain errors. Core code raises these with the offending value in the message; the CLI and
the API turn them into one clear line or one JSON body, never a traceback."""

from __future__ import annotations

from pathlib import Path


class InspectionError(Exception):
    """Base class for every error this project reports to a user."""


class InputError(InspectionError):
    """Bad input from a user: a file, a row in it, an option or an uploaded photo.

    `where` names the place (``manifest.csv:14``, ``--device``, ``photo 2``) so the message
    points at what to fix.
    """

    def __init__(self, message: str, where: str | Path | None = None, line: int | None = None):
        self.where = str(where) if where is not None else None
        self.line = line
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        if self.where is None:
            return self.detail
        location = self.where if self.line is None else f"{self.where}:{self.line}"
        return f"{location}: {self.detail}"


class BundleError(InspectionError):
    """A model bundle that cannot be served: missing file, card and ONNX that do not match."""
