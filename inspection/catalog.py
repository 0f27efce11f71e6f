"""Catalog conformity: a returned item compared with its SKU's own reference photos.

A SKU's reference is built from a few photos by the served ONNX model alone, no training: the
photos' `embedding`s (is this the product that was sold?) and a memory bank of their
`patch_features` (is any region unlike every region of a good unit?), with thresholds fitted
from the photos themselves (catalog_fit.py). A reference records the `model_id` that built it
and is only ever compared with photos seen by that same model.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inspection.catalog_bank import build_bank, flatten_patches, nearest_distances
from inspection.catalog_fit import (
    DEFAULT_FALSE_FLAG_TARGET,
    FittedThresholds,
    fit_thresholds,
    refuse_copies,
)
from inspection.engine import Engine

MAX_REFERENCE_PHOTOS = 50
MIN_LEAVE_ONE_OUT = 3  # fewer photos: mirrored views join the threshold fit (catalog_fit.py)
OUTPUTS = ("embedding", "patch_features")


class CatalogUnavailable(ValueError):
    """The model lacks an output the catalog needs."""


@dataclass(frozen=True)
class Views:
    """The served model's outputs for some photos."""

    embeddings: np.ndarray  # N x D, unit rows
    patch_features: np.ndarray  # N x C x h x w


@dataclass(frozen=True)
class SkuComparison:
    """Photos of one returned item against a SKU's reference."""

    similarities: list[float]  # per photo: cosine similarity to the closest reference photo
    closest: list[int]  # per photo: index of that reference photo
    anomaly_scores: list[float]  # per photo, normalised: 1.0 = the worst genuine reference
    anomaly_maps: list[np.ndarray]  # per photo, h x w, same unit


@dataclass(frozen=True)
class SkuReference:
    model_id: str
    embeddings: np.ndarray  # K x D unit rows, one per reference photo (in upload order)
    bank: np.ndarray  # M x C patch memory
    thresholds: FittedThresholds

    def compare(self, views: Views) -> SkuComparison:
        similarity = views.embeddings @ self.embeddings.T  # N x K
        maps = nearest_distances(views.patch_features, self.bank) / self.thresholds.normaliser
        return SkuComparison(
            similarities=[float(v) for v in similarity.max(axis=1)],
            closest=[int(i) for i in similarity.argmax(axis=1)],
            anomaly_scores=[float(m.max()) for m in maps],
            anomaly_maps=list(maps))

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=self.embeddings, bank=self.bank,
                 meta=np.frombuffer(json.dumps({"model_id": self.model_id,
                                                "thresholds": self.thresholds.to_dict()}).encode(),
                                    dtype=np.uint8))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SkuReference:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            meta = json.loads(stored["meta"].tobytes().decode())
            return cls(model_id=meta["model_id"], embeddings=stored["embeddings"],
                       bank=stored["bank"], thresholds=FittedThresholds.from_dict(meta["thresholds"]))


def model_views(engine: Engine, photos: Sequence[np.ndarray], batch_size: int = 16) -> Views:
    """Embeddings and patch features of decoded RGB photos through the served model."""
    missing = [name for name in OUTPUTS if name not in engine.output_names]
    if missing:
        raise CatalogUnavailable(f"model {engine.card.model_id} has no {' or '.join(missing)} "
                                 "output, which catalog comparison needs")
    parts = list(engine.iter_raw(list(photos), batch_size, outputs=list(OUTPUTS)))
    embeddings = np.concatenate([p["embedding"] for p in parts]).astype(np.float32)
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return Views(embeddings, np.concatenate([p["patch_features"] for p in parts]).astype(np.float32))


def views_of(prediction_embeddings: Sequence[np.ndarray], patch_features: Sequence[np.ndarray]
             ) -> Views:
    """Views from the predictions an inspection already made (no second model run)."""
    embeddings = np.stack(prediction_embeddings).astype(np.float32)
    embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return Views(embeddings, np.stack(patch_features).astype(np.float32))


def mirrored(photos: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each photo flipped left-right and upside down: the same unit, lying another way."""
    return [np.ascontiguousarray(view) for photo in photos
            for view in (photo[:, ::-1], photo[::-1, :])]


def farthest_apart(features: np.ndarray) -> float:
    """The largest RMS patch difference from the first photo: 0 when every photo is a copy."""
    flat = features.reshape(len(features), features.shape[1], -1)
    gaps = [float(np.sqrt(np.mean(np.sum((flat[i] - flat[0]) ** 2, axis=0))))
            for i in range(1, len(flat))]
    return max(gaps)


def build_reference(engine: Engine, photos: Sequence[np.ndarray],
                    target: float = DEFAULT_FALSE_FLAG_TARGET) -> SkuReference:
    """A SKU's reference from decoded RGB photos (1 to MAX_REFERENCE_PHOTOS). Raises TooUniform
    when the photos do not vary enough to fit a threshold."""
    if not 1 <= len(photos) <= MAX_REFERENCE_PHOTOS:
        msg = f"a SKU takes 1 to {MAX_REFERENCE_PHOTOS} reference photos, got {len(photos)}"
        raise ValueError(msg)
    return reference_from_views(engine.card.model_id, model_views(engine, photos),
                                lambda: model_views(engine, mirrored(photos)), target)


def reference_from_views(model_id: str, views: Views, mirrored_views: Callable[[], Views],
                         target: float = DEFAULT_FALSE_FLAG_TARGET) -> SkuReference:
    """The reference from the photos' model outputs; `mirrored_views` is only called for fewer
    than MIN_LEAVE_ONE_OUT photos (catalog evaluate reuses outputs across reference counts)."""
    count = len(views.embeddings)
    bank = build_bank(views.patch_features)
    scale = float(np.median(np.linalg.norm(flatten_patches(views.patch_features), axis=1)))
    if count >= 2:  # ten copies of one picture are one picture
        refuse_copies(farthest_apart(views.patch_features), scale)
    if count >= MIN_LEAVE_ONE_OUT:
        own = np.arange(count)[:, None] == bank.owners[None, :]  # N x M: a photo's own rows
        similarity = views.embeddings @ views.embeddings.T
        np.fill_diagonal(similarity, -np.inf)
        raw = nearest_distances(views.patch_features, bank.rows, excluded=own)
        thresholds = fit_thresholds(similarity.max(axis=1), raw.reshape(count, -1).max(axis=1),
                                    scale, target)
    else:
        extra = mirrored_views()
        similarity = extra.embeddings @ views.embeddings.T
        raw = nearest_distances(extra.patch_features, bank.rows)
        thresholds = fit_thresholds(similarity.max(axis=1), raw.reshape(len(raw), -1).max(axis=1),
                                    scale, target, method="mirrored views")
    return SkuReference(model_id, views.embeddings, bank.rows, thresholds)


@dataclass(frozen=True)
class SkuEntry:
    """What an inspection needs to know about its declared SKU."""

    sku: str
    category: str | None = None
    accessory_kit: tuple[str, ...] | None = None  # replaces the category's kit when set
    reference: SkuReference | None = None  # None: not in the catalog, or not built for this model
    registered: bool = False  # in the catalog (its reference may still be building)
    photo_sha256: tuple[str, ...] = ()  # the reference photos, in the reference's order
    note: str = ""  # why there is no reference to compare with
