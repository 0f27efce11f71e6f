"""Anomaly detectors and item-mismatch references at serving time (no torch).

The main model outputs `patch_features`; the declared category's small ONNX detector turns them
into a raw anomaly score and map, which the card's per-category normaliser and threshold turn
into a decision. A detector fitted on upright items (card entry `crop: upright`, for items lying
anywhere on a tray) sees each photo's item cut out and turned upright (inspection.locate): the
model runs once more on those crops, and the maps are drawn back onto the photos.

Item mismatch compares the photo's embedding with the category's reference
embeddings (references.npz) against a similarity threshold fitted on val.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from inspection.card import ModelCard
from inspection.errors import BundleError, InputError
from inspection.locate import find_upright
from inspection.manifest import file_sha256
from inspection.second_opinion import CARD_KEY as SECOND_OPINION
from inspection.second_opinion import SecondOpinion

REFERENCES_FILE = "references.npz"
MISMATCH_KEY = "item_mismatch"  # card.thresholds[MISMATCH_KEY] = {category: min similarity}
CROPS = ("none", "upright")  # what a detector was fitted on: whole photos, or upright items
FeaturesOf = Callable[[list[np.ndarray]], np.ndarray]  # RGB photos -> N x C x h x w features


@dataclass(frozen=True)
class AnomalyResult:
    """One batch of photos of one category. Scores and maps are normalised: 1.0 is the edge of
    what held-out good photos reach; `threshold` is in the same unit."""

    scores: np.ndarray  # N
    raw_scores: np.ndarray  # N, nearest-neighbour distance of the worst patch
    threshold: float
    is_anomalous: np.ndarray  # N bool
    maps: np.ndarray  # N x h x w (stride 8), see `upsample_map` for display


@dataclass(frozen=True)
class Detector:
    session: ort.InferenceSession
    normaliser: float
    threshold: float
    crop: str = "none"
    second_opinion: SecondOpinion | None = None  # on heads with a `no_defect` label


class AnomalyDetectors:
    """Per-category ONNX detectors listed in card.anomaly, each checked against its sha256."""

    def __init__(self, detectors: dict[str, Detector]):
        self._detectors = detectors

    @classmethod
    def load(cls, bundle_dir: str | Path, card: ModelCard, threads: int = 1) -> AnomalyDetectors:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        detectors = {}
        taxonomy = card.get_taxonomy()  # parsed once: the second opinions name its heads
        for category, entry in card.anomaly.items():
            path = Path(bundle_dir) / str(entry["file"])
            if not path.is_file():
                raise BundleError(f"{path} is listed in the card's anomaly section but missing")
            if file_sha256(path) != entry["sha256"]:
                raise BundleError(f"{path} does not match the card's anomaly sha256")
            try:
                session = ort.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
                raise BundleError(f"{path}: ONNX Runtime cannot load it ({exc})") from None
            crop = str(entry.get("crop", "none"))
            if crop not in CROPS:
                raise BundleError(f"card.anomaly[{category!r}].crop is {crop!r}; known: {CROPS}")
            opinion = (SecondOpinion.from_entry(entry[SECOND_OPINION], taxonomy,
                                                f"card.anomaly[{category!r}].{SECOND_OPINION}")
                       if SECOND_OPINION in entry else None)
            detectors[category] = Detector(session, float(entry["normaliser"]),
                                           float(entry["threshold"]), crop, opinion)
        return cls(detectors)

    @property
    def categories(self) -> list[str]:
        return sorted(self._detectors)

    def has(self, category: str) -> bool:
        return category in self._detectors

    def crop_of(self, category: str) -> str:
        """What the category's detector was fitted on: "none" (whole photos) or "upright"."""
        detector = self._detectors.get(category)
        return detector.crop if detector is not None else "none"

    def second_opinion(self, category: str) -> SecondOpinion | None:
        """The category's anomaly score as a second opinion on the heads, where fitted."""
        detector = self._detectors.get(category)
        return detector.second_opinion if detector is not None else None

    def score(self, category: str, patch_features: np.ndarray) -> AnomalyResult | None:
        """Score N x C x h x w (or one C x h x w) patch features; None without a detector."""
        detector = self._detectors.get(category)
        if detector is None:
            return None
        features = np.asarray(patch_features, dtype=np.float32)
        if features.ndim == 3:
            features = features[None]
        if features.ndim != 4:
            raise InputError(f"patch features must be N x C x h x w, got shape {features.shape}")
        raw_scores, raw_maps = detector.session.run(
            ["anomaly_score", "anomaly_map"], {"patch_features": features})
        scores = raw_scores / detector.normaliser
        return AnomalyResult(scores, raw_scores, detector.threshold,
                             scores >= detector.threshold, raw_maps / detector.normaliser)

    def score_photos(self, category: str, photos: Sequence[np.ndarray],
                     patch_features: np.ndarray, features_of: FeaturesOf) -> AnomalyResult | None:
        """Score photos (upright RGB, as the model saw them) from their `patch_features`; for a
        detector fitted on upright items, the photos where an item lies on a tray are scored
        on that item instead (`features_of` runs the model on the crops) and their maps are
        drawn back over the whole photo."""
        detector = self._detectors.get(category)
        if detector is None or detector.crop == "none":
            return self.score(category, patch_features)
        items = [find_upright(rgb) for rgb in photos]
        found = [index for index, item in enumerate(items) if item is not None]
        features = np.array(patch_features, dtype=np.float32, copy=True)
        if found:
            features[found] = features_of([items[index].rgb for index in found])  # type: ignore[union-attr]
        result = self.score(category, features)
        if result is None or not found:
            return result
        maps = [item.map_to_photo(crop_map, (rgb.shape[1], rgb.shape[0])) if item else crop_map
                for item, crop_map, rgb in zip(items, result.maps, photos, strict=True)]
        return replace(result, maps=np.stack(maps))


# The map's Gaussian, as a share of the photo's longer side. PatchCore's own (sigma 4 input
# pixels, half a stride-8 cell: 1.6 % of the side at 256 px, 2.5 % at the bundle's 160 px) and
# 2-3 % gain pixel AUROC and PRO on magnetic tile and three synthetic products but lose on phone,
# whose cracks and scratches are thin (BENCHMARKS.md, "The heatmap's smoothing"), so it stays 1 %.
SMOOTHING_SHARE = 0.01


def upsample_map(anomaly_map: np.ndarray, width: int, height: int,
                 sigma_share: float = SMOOTHING_SHARE) -> np.ndarray:
    """Stride-8 map -> photo size (width x height), Gaussian-smoothed: the map whose pixel AUROC
    and PRO are measured, and the one the operator's heatmap draws."""
    resized = cv2.resize(np.asarray(anomaly_map, dtype=np.float32), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    sigma = max(1.0, sigma_share * max(width, height))
    return cv2.GaussianBlur(resized, (0, 0), sigmaX=sigma)


class ReferenceEmbeddings:
    """Good photos' embeddings per category (K x D, unit rows) and the similarity thresholds."""

    def __init__(self, references: dict[str, np.ndarray], thresholds: dict[str, float]):
        self.references = references
        self.thresholds = thresholds

    @classmethod
    def load(cls, bundle_dir: str | Path, card: ModelCard | None = None) -> ReferenceEmbeddings:
        path = Path(bundle_dir) / REFERENCES_FILE
        if not path.is_file():
            return cls({}, {})
        try:
            with np.load(path, allow_pickle=False) as data:
                references = {name: unit_rows(data[name]) for name in data.files}
        except Exception as exc:  # noqa: BLE001 - zipfile, numpy and pickle checks raise many kinds
            raise BundleError(f"{path}: cannot read reference embeddings ({exc})") from None
        limits: Any = (card.thresholds.get(MISMATCH_KEY, {}) if card is not None else {})
        thresholds = ({str(k): float(v) for k, v in limits.items()} if isinstance(limits, dict)
                      else dict.fromkeys(references, float(limits)))
        return cls(references, thresholds)

    def has(self, category: str) -> bool:
        return category in self.references

    def similarity(self, category: str, embedding: np.ndarray) -> float:
        """Cosine similarity of an embedding to the category's nearest reference."""
        unit = unit_rows(np.asarray(embedding, dtype=np.float32)[None])[0]
        return float(np.max(self.references[category] @ unit))

    def is_mismatch(self, category: str, embedding: np.ndarray) -> bool:
        return self.similarity(category, embedding) < self.thresholds[category]


def unit_rows(array: np.ndarray) -> np.ndarray:
    rows = np.asarray(array, dtype=np.float32).reshape(len(array), -1)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
