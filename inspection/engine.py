"""The served model: a verified bundle behind an ONNX Runtime session.

Evaluation, calibration, offline scoring and the API all call `Engine.predict`, so a metric in a
report describes exactly what the service answers: same decoding, same preprocessing (read from
the card), same session, same temperatures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inspection.bundle import verify_seal
from inspection.card import ONNX_CARD_ID_KEY, ModelCard, verify_bundle
from inspection.errors import BundleError
from inspection.preprocess import batch_inputs
from inspection.taxonomy import Head, Taxonomy


@dataclass(frozen=True)
class PhotoPrediction:
    """What the model says about one photo. Probabilities are calibrated (temperature applied):
    softmax over labels for a single-label head, one sigmoid per label for a multi-label head."""

    probabilities: dict[str, dict[str, float]]
    logits: dict[str, np.ndarray]
    embedding: np.ndarray | None = None
    cams: dict[str, np.ndarray] = field(default_factory=dict)  # head -> labels x h x w
    patch_features: np.ndarray | None = None  # C x h x w, for the anomaly detectors

    def top(self, head: str) -> tuple[str, float]:
        """Most probable label of a head and its probability."""
        label = max(self.probabilities[head], key=self.probabilities[head].__getitem__)
        return label, self.probabilities[head][label]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)  # no overflow for large logits
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # tanh form: stable for any sign


def head_probabilities(logits: np.ndarray, head: Head, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities for a batch of one head's logits (N x labels)."""
    scaled = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-6)
    return softmax(scaled) if head.type == "single" else sigmoid(scaled)


def default_threads() -> int:
    return int(os.environ.get("RETURNS_ORT_THREADS", "0")) or min(4, os.cpu_count() or 1)


MIRROR = "mirror"  # card.export["test_time_augmentation"] of a bundle exported with --flip-tta


class Engine:
    """Load once, predict many times; thread-safe (ONNX Runtime sessions allow concurrent runs)."""

    def __init__(self, bundle_dir: Path, card: ModelCard, session: ort.InferenceSession):
        self.bundle_dir = bundle_dir
        self.card = card
        self.session = session
        self.taxonomy: Taxonomy = card.get_taxonomy()
        self.output_names = [output.name for output in session.get_outputs()]
        self.mirrored = card.export.get("test_time_augmentation") == MIRROR

    @classmethod
    def load(cls, bundle_dir: str | Path, threads: int | None = None) -> Engine:
        """Verify the seal and the card/ONNX pair, then open the session. Raises BundleError if
        any file differs from what the bundle was sealed with."""
        bundle_dir = Path(bundle_dir)
        card = verify_bundle(bundle_dir)
        verify_seal(bundle_dir, card)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT threads spin by default; on a shared or busy host they steal the cores the
        # other requests need (measured on a busy 2-core host, 2 threads: 31 vs 141 photos/s, and
        # 45 vs 156 with two calls at once; `returns-inspect bench inference`).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(bundle_dir / card.onnx_file), options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
            raise BundleError(f"{bundle_dir / card.onnx_file}: ONNX Runtime cannot load it ({exc})") from None
        stored_id = session.get_modelmeta().custom_metadata_map.get(ONNX_CARD_ID_KEY)
        if stored_id != card.model_id:
            msg = (f"{bundle_dir}: ONNX metadata model_id {stored_id!r} does not match "
                   f"the card's {card.model_id!r}")
            raise BundleError(msg)
        return cls(bundle_dir, card, session)

    @property
    def input_size(self) -> int:
        return self.card.preprocessing.input_size

    def run(self, batch: np.ndarray, outputs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Raw ONNX outputs for an N x 3 x S x S batch (preprocessed). A mirrored bundle's
        logits are the mean of each photo's and its left-right mirror image's (the maps, the
        embedding and the patch features stay the photo's own), here, so that calibration,
        evaluation and the service all see the same logits."""
        names = list(outputs) if outputs is not None else self.output_names
        mirror = self.mirrored and any(name.endswith("_logits") for name in names)
        if mirror:
            batch = np.concatenate([batch, batch[..., ::-1]])
        values = self.session.run(names, {self.card.preprocessing.input_name: batch})
        if not mirror:
            return dict(zip(names, values, strict=True))
        count = len(batch) // 2
        return {name: (value[:count] + value[count:]) / 2 if name.endswith("_logits") else value[:count]
                for name, value in zip(names, values, strict=True)}

    def predict(self, photos: Sequence[np.ndarray], batch_size: int = 16,
                with_maps: bool = True) -> list[PhotoPrediction]:
        """Predictions for upright RGB uint8 photos of any size."""
        predictions: list[PhotoPrediction] = []
        for start in range(0, len(photos), batch_size):
            chunk = list(photos[start:start + batch_size])
            raw = self.run(batch_inputs(chunk, self.card.preprocessing), self._wanted(with_maps))
            predictions.extend(self._split(raw, len(chunk)))
        return predictions

    def patch_features(self, photos: Sequence[np.ndarray]) -> np.ndarray:
        """N x C x h x w patch features of upright RGB uint8 photos (the anomaly detectors')."""
        batch = batch_inputs(list(photos), self.card.preprocessing)
        return self.run(batch, ["patch_features"])["patch_features"]

    def iter_raw(self, photos: Sequence[np.ndarray], batch_size: int = 32,
                 outputs: Sequence[str] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Raw outputs batch by batch: evaluation and calibration read logits directly."""
        for start in range(0, len(photos), batch_size):
            chunk = list(photos[start:start + batch_size])
            yield self.run(batch_inputs(chunk, self.card.preprocessing), outputs)

    def _wanted(self, with_maps: bool) -> list[str]:
        if with_maps:
            return self.output_names
        return [name for name in self.output_names if name.endswith("_logits") or name == "embedding"]

    def _split(self, raw: dict[str, np.ndarray], count: int) -> list[PhotoPrediction]:
        probabilities = {
            head.name: head_probabilities(raw[f"{head.name}_logits"], head,
                                          self.card.temperatures.get(head.name, 1.0))
            for head in self.taxonomy.heads
        }
        results = []
        for index in range(count):
            results.append(PhotoPrediction(
                probabilities={
                    head.name: dict(zip(head.labels, map(float, probabilities[head.name][index]),
                                        strict=True))
                    for head in self.taxonomy.heads
                },
                logits={head.name: raw[f"{head.name}_logits"][index] for head in self.taxonomy.heads},
                embedding=raw["embedding"][index] if "embedding" in raw else None,
                cams={head.name: raw[f"{head.name}_cam"][index] for head in self.taxonomy.heads
                      if f"{head.name}_cam" in raw},
                patch_features=raw["patch_features"][index] if "patch_features" in raw else None,
            ))
        return results
