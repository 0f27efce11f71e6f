"""The served model, swapped as one reference on reload.

A reload loads the new bundle completely before the swap; a request holds the `LoadedModel`
it started with, so requests in flight finish on the old model and none is dropped.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from inspection.bundle import check_policy_pin, read_seal
from inspection.decide import DEFAULT_POLICY, load_policy, policy_notes
from inspection.errors import BundleError
from inspection.loaded_model import LoadedModel
from inspection.manifest import file_sha256
from inspection.precision import Precision, choose_bundle

log = logging.getLogger(__name__)


def load_checked(target: Path, precision: Precision = "fp32",
                 threads: int | None = None) -> tuple[LoadedModel, Path, str]:
    """(model, the bundle chosen for the precision, why): where anything a bundle on disk can
    make go wrong is a BundleError, so a reload never answers 500 and a start-up never crashes
    over a bad bundle."""
    if "\x00" in str(target):
        raise BundleError(f"{str(target)!r} is not a path (it contains a NUL byte)")
    if not target.is_dir():
        raise BundleError(f"{target} is not a bundle directory")
    try:
        chosen, why = choose_bundle(target, precision)
        return LoadedModel.load(chosen, threads), chosen, why
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file that passed its seal but cannot be read
        log.exception("bundle %s could not be loaded", target)
        raise BundleError(f"{target}: cannot load the bundle ({type(exc).__name__}: {exc})") from None


class ModelHolder:
    """One reference to the current LoadedModel; assignment is atomic under the GIL, the lock
    only keeps two reloads from interleaving."""

    def __init__(self, model: LoadedModel | None = None, bundle_dir: Path | None = None,
                 threads: int | None = None, precision: Precision = "fp32",
                 policy_file: Path | None = None):
        self._model = model
        self.bundle_dir = bundle_dir
        self.threads = threads  # ONNX Runtime threads per call (None: engine.default_threads)
        self.precision: Precision = precision  # inspection.precision: serve an INT8 sibling?
        self.precision_reason = ""
        # The policy the service decides with, as read at start: a bundle that pins another
        # policy in its seal is refused.
        self.policy_file = policy_file or DEFAULT_POLICY
        self.policy_sha256 = file_sha256(self.policy_file)
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
        with self._reload_lock:
            model, chosen, why = load_checked(target, self.precision, self.threads)
            check_policy_pin(read_seal(chosen), self.policy_sha256, self.policy_file)
            self._model, self.bundle_dir, self.error = model, target, None
            self.precision_reason = why
        log.info("serving model %s %s (%s) from %s; %s", model.card.name, model.card.version,
                 model.card.model_id, chosen, why)
        for note in policy_notes(load_policy(self.policy_file), model.engine.taxonomy):
            log.warning("policy %s: %s", self.policy_file, note)
        return model
