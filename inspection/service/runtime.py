"""The model as served: the verified Engine plus what the bundle may carry beside it
(reference embeddings for item mismatch, anomaly detectors), swapped as one reference on reload.

A reload loads the new bundle completely before the swap; a request holds the `LoadedModel`
it started with, so requests in flight finish on the old model and none is dropped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from inspection.anomaly import REFERENCES_FILE, AnomalyDetectors, ReferenceEmbeddings
from inspection.card import ModelCard
from inspection.engine import Engine
from inspection.errors import BundleError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    engine: Engine
    references: ReferenceEmbeddings  # per category, for item mismatch (references.npz)
    anomaly: AnomalyDetectors | None  # when the bundle has anomaly detectors
    unavailable: dict[str, str] = field(default_factory=dict)  # check -> why it cannot run

    @property
    def card(self) -> ModelCard:
        return self.engine.card

    @classmethod
    def load(cls, bundle_dir: str | Path) -> LoadedModel:
        bundle_dir = Path(bundle_dir)
        engine = Engine.load(bundle_dir)
        unavailable: dict[str, str] = {}
        references = ReferenceEmbeddings.load(bundle_dir, engine.card)
        if not references.references:
            unavailable["item_mismatch"] = f"the bundle has no {REFERENCES_FILE}"
        anomaly, why = load_anomaly(bundle_dir, engine)
        if why:
            unavailable["anomaly"] = why
        return cls(engine=engine, references=references, anomaly=anomaly, unavailable=unavailable)


def load_anomaly(bundle_dir: Path, engine: Engine) -> tuple[AnomalyDetectors | None, str]:
    if not engine.card.anomaly:
        return None, "the bundle has no anomaly detectors"
    return AnomalyDetectors.load(bundle_dir, engine.card), ""


class ModelHolder:
    """One reference to the current LoadedModel; assignment is atomic under the GIL, the lock
    only keeps two reloads from interleaving."""

    def __init__(self, model: LoadedModel | None = None, bundle_dir: Path | None = None):
        self._model = model
        self.bundle_dir = bundle_dir
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
            model = LoadedModel.load(target)
            self._model, self.bundle_dir, self.error = model, target, None
        log.info("serving model %s %s (%s) from %s", model.card.name, model.card.version,
                 model.card.model_id, target)
        return model
