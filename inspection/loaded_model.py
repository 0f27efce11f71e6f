"""The model as served: the verified Engine plus what the bundle may carry beside it
(reference embeddings for item mismatch, anomaly detectors). The service, the offline scorer and
any distributed re-scoring load a bundle through here, so they all see the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from inspection.anomaly import REFERENCES_FILE, AnomalyDetectors, ReferenceEmbeddings
from inspection.card import ModelCard
from inspection.engine import Engine


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
    def load(cls, bundle_dir: str | Path, threads: int | None = None) -> LoadedModel:
        """`threads`: ONNX Runtime threads per call (default: engine.default_threads)."""
        bundle_dir = Path(bundle_dir)
        engine = Engine.load(bundle_dir, threads)
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
