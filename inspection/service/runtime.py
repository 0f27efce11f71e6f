"""The served model, swapped as one reference on reload.

A reload loads the new bundle completely before the swap; a request holds the `LoadedModel`
it started with, so requests in flight finish on the old model and none is dropped.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from inspection.errors import BundleError
from inspection.loaded_model import LoadedModel
from inspection.precision import Precision, choose_bundle

log = logging.getLogger(__name__)


class ModelHolder:
    """One reference to the current LoadedModel; assignment is atomic under the GIL, the lock
    only keeps two reloads from interleaving."""

    def __init__(self, model: LoadedModel | None = None, bundle_dir: Path | None = None,
                 threads: int | None = None, precision: Precision = "fp32"):
        self._model = model
        self.bundle_dir = bundle_dir
        self.threads = threads  # ONNX Runtime threads per call (None: engine.default_threads)
        self.precision: Precision = precision  # inspection.precision: serve an INT8 sibling?
        self.precision_reason = ""
        self.error: str | None = None  # why the last load failed, for /readyz
        self._reload_lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._model

    def reload(self, bundle_dir: str | Path | None = None) -> LoadedModel:
        """Load fully, then swap. On failure the previous model keeps serving (and it raises)."""
        target = Path(bundle_dir) if bundle_dir is not None else self.bundle_dir
        if target is None:
            raise BundleError("no bundle directory configured")
        chosen, why = choose_bundle(target, self.precision)
        with self._reload_lock:
            model = LoadedModel.load(chosen, self.threads)
            self._model, self.bundle_dir, self.error = model, target, None
            self.precision_reason = why
        log.info("serving model %s %s (%s) from %s; %s", model.card.name, model.card.version,
                 model.card.model_id, chosen, why)
        return model
