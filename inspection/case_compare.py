"""Customer <-> dock comparison of one return: is the item that arrived the item the customer
photographed, and is there damage at the dock that no customer photo shows?

Two scores, both from outputs the served model already computes per photo (no torch):
- `changed_since_request`: how alike the closest (station, customer) pair of photos is — a
  weighted mean of the embeddings' cosine similarity and a patch-level match where the views
  overlap (each patch against its best match anywhere in the other photo, the best tenth of those
  averaged, both ways, so pose and framing matter little). The flag is raised when even the
  closest pair is below the fitted threshold: likely another item.
- `new_damage_since_request`: per damage label, the highest probability at the dock minus the
  highest in any customer photo; the flag is raised when the largest rise reaches the threshold
  (transit or handling damage rather than damage the customer declared).

Both photo sets go through the same model (the earlier photos are re-scored from the store), so
their embeddings are comparable. Thresholds come from `returns-inspect case fit` (model card).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspection.engine import PhotoPrediction

CHANGED = "changed_since_request"
NEW_DAMAGE = "new_damage_since_request"
CASE_FLAGS = (CHANGED, NEW_DAMAGE)
# Share of the embedding in the same-item score, the rest is the patch match. The embedding alone
# tells another item of the same category a little better (synthetic AUROC 0.83 vs 0.81 at 0.75),
# but damage moves it: a good vs a defective bottle reads as "another item" 42% of the time on the
# embedding alone, 2% at 0.75 (BENCHMARKS.md). The card records the weight its threshold was
# fitted with (WEIGHT_KEY); this default applies where it has none.
EMBEDDING_WEIGHT = 0.75
WEIGHT_KEY = "changed_since_request_embedding_weight"
OVERLAP = 0.1  # the best-matching tenth of a photo's patches stands for "where the views overlap"
MAP_DECIMALS = 3


@dataclass(frozen=True)
class CasePhoto:
    """What the comparison needs of one photo: where it is, and the model's outputs."""

    inspection_id: str
    index: int
    source: str  # customer | station
    embedding: np.ndarray  # D, unit length
    patches: np.ndarray  # h*w x C, unit rows
    patch_shape: tuple[int, int]
    damage: Mapping[str, float]  # damage label -> calibrated probability
    sha256: str = ""  # of the stored file, for the other side's photos: the record outlives them


def unit(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)


def case_photo(inspection_id: str, index: int, source: str, prediction: PhotoPrediction,
               sha256: str = "") -> CasePhoto | None:
    """None when the model has no embedding or patch features (nothing to compare with)."""
    if prediction.embedding is None or prediction.patch_features is None:
        return None
    features = np.asarray(prediction.patch_features, dtype=np.float32)  # C x h x w
    channels, height, width = features.shape
    patches = unit(features.reshape(channels, height * width).T)
    return CasePhoto(inspection_id, index, source, unit(prediction.embedding.ravel()), patches,
                     (height, width), dict(prediction.probabilities.get("damage", {})), sha256)


@dataclass(frozen=True)
class PairSimilarity:
    embedding: float
    patches: float
    score: float  # weight * embedding + (1 - weight) * patches
    unmatched: np.ndarray  # h x w of the first photo: 1 - its patches' best match in the second


def overlap_mean(best_matches: np.ndarray) -> float:
    kept = max(1, int(round(OVERLAP * best_matches.size)))
    return float(np.sort(best_matches)[-kept:].mean())


def pair_similarity(first: CasePhoto, second: CasePhoto,
                    weight: float = EMBEDDING_WEIGHT) -> PairSimilarity:
    cosine = first.patches @ second.patches.T  # P1 x P2
    best_first, best_second = cosine.max(axis=1), cosine.max(axis=0)
    patches = 0.5 * (overlap_mean(best_first) + overlap_mean(best_second))
    embedding = float(first.embedding @ second.embedding)
    score = weight * embedding + (1.0 - weight) * patches
    unmatched = np.clip(1.0 - best_first, 0.0, 2.0).reshape(first.patch_shape)
    return PairSimilarity(embedding, patches, score, unmatched)


@dataclass(frozen=True)
class PairCheck:
    """One comparison flag's evidence: the score, its threshold and the two photos."""

    kind: str
    score: float
    threshold: float | None
    flagged: bool
    station: tuple[str, int]  # (inspection id, photo index)
    customer: tuple[str, int]
    reason: str
    hashes: dict[str, str] = field(default_factory=dict)  # side -> sha256, where known
    label: str | None = None  # the damage label for new_damage_since_request
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "score": self.score, "threshold": self.threshold,
                "flagged": self.flagged, "label": self.label, "reason": self.reason,
                "station": {"inspection_id": self.station[0], "photo": self.station[1],
                            "sha256": self.hashes.get("station")},
                "customer": {"inspection_id": self.customer[0], "photo": self.customer[1],
                             "sha256": self.hashes.get("customer")},
                "details": self.details}


def same_item_check(station: Sequence[CasePhoto], customer: Sequence[CasePhoto],
                    threshold: float | None,
                    weight: float = EMBEDDING_WEIGHT) -> tuple[PairCheck, dict[int, np.ndarray]]:
    """The closest pair decides; returns the check and each station photo's unmatched map
    against its closest customer photo (the heatmap of what the customer never showed)."""
    best: tuple[PairSimilarity, CasePhoto, CasePhoto] | None = None
    maps: dict[int, np.ndarray] = {}
    for dock in station:
        pairs = [(pair_similarity(dock, photo, weight), photo) for photo in customer]
        closest, photo = max(pairs, key=lambda pair: pair[0].score)
        maps[dock.index] = closest.unmatched
        if best is None or closest.score > best[0].score:
            best = (closest, dock, photo)
    assert best is not None, "same_item_check needs photos on both sides"
    similarity, dock, photo = best
    flagged = threshold is not None and similarity.score < threshold
    reason = (f"the closest pair (station photo {dock.index + 1}, customer photo {photo.index + 1}) "
              f"is {similarity.score:.2f} alike" + (
                  f", below {threshold:.2f}: likely not the item the customer photographed"
                  if flagged else ""))
    return PairCheck(CHANGED, similarity.score, threshold, flagged,
                     (dock.inspection_id, dock.index), (photo.inspection_id, photo.index), reason,
                     hashes=_hashes(dock, photo), details={"embedding": similarity.embedding,
                              "patches": similarity.patches, "embedding_weight": weight}), maps


def new_damage_check(station: Sequence[CasePhoto], customer: Sequence[CasePhoto],
                     threshold: float | None) -> PairCheck | None:
    """The damage label whose probability rose most from the customer's photos to the dock's;
    None when the model has no damage head."""
    labels = sorted({label for photo in station for label in photo.damage})
    if not labels:
        return None
    rises = []
    for label in labels:
        dock = max(station, key=lambda photo: photo.damage.get(label, 0.0))
        home = max(customer, key=lambda photo: photo.damage.get(label, 0.0))
        rise = dock.damage.get(label, 0.0) - home.damage.get(label, 0.0)
        rises.append((rise, label, dock, home))
    rise, label, dock, home = max(rises, key=lambda entry: entry[0])
    flagged = threshold is not None and rise >= threshold
    name = label.replace("_", " ")
    reason = (f"{name}: {dock.damage.get(label, 0.0):.2f} at the dock (station photo "
              f"{dock.index + 1}) vs at most {home.damage.get(label, 0.0):.2f} in the customer's "
              f"photos (closest: photo {home.index + 1})" +
              (" — absent when the return was requested" if flagged else ""))
    return PairCheck(NEW_DAMAGE, rise, threshold, flagged, (dock.inspection_id, dock.index),
                     (home.inspection_id, home.index), reason, _hashes(dock, home), label=label,
                     details={"station": dock.damage.get(label, 0.0),
                              "customer": home.damage.get(label, 0.0)})


def _hashes(station: CasePhoto, customer: CasePhoto) -> dict[str, str]:
    return {side: photo.sha256 for side, photo in (("station", station), ("customer", customer))
            if photo.sha256}


@dataclass(frozen=True)
class Comparison:
    checks: list[PairCheck]
    unmatched_maps: dict[int, np.ndarray]  # station photo index -> map (station photos only)
    compared: dict[str, int]  # source -> photos compared

    def flagged(self) -> list[PairCheck]:
        return [check for check in self.checks if check.flagged]


def compare(station: Sequence[CasePhoto], customer: Sequence[CasePhoto],
            thresholds: Mapping[str, float | None]) -> Comparison:
    """Both sides must hold at least one photo (a one-sided return is not compared)."""
    if not station or not customer:
        msg = (f"comparison needs photos on both sides, got {len(station)} station and "
               f"{len(customer)} customer")
        raise ValueError(msg)
    weight = thresholds.get(WEIGHT_KEY)
    same, maps = same_item_check(station, customer, thresholds.get(CHANGED),
                                 EMBEDDING_WEIGHT if weight is None else weight)
    damage = new_damage_check(station, customer, thresholds.get(NEW_DAMAGE))
    checks = [same] + ([damage] if damage is not None else [])
    return Comparison(checks, maps, {"station": len(station), "customer": len(customer)})


def rounded_map(values: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(values, dtype=np.float64), MAP_DECIMALS).tolist()
