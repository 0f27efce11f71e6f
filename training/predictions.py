"""Run a served bundle over a manifest split: the logits and label targets that calibration and
evaluation both read.

Photos go through `inspection.images.load_photo` (reduced JPEG decode down to the input size, as
training and the service do) and `Engine.iter_raw` (the card's preprocessing, the bundle's ONNX
session), so every number computed from here describes what is served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from inspection.anomaly import AnomalyDetectors
from inspection.card import PreprocessSpec
from inspection.decide import HeadCall, head_call
from inspection.engine import Engine
from inspection.errors import InputError
from inspection.images import load_photo
from inspection.manifest import Manifest, Sample, rows_by_item
from inspection.taxonomy import Head, Taxonomy
from training.calibration import Opinion

LOAD_BATCH = 32  # photos decoded at a time: a split never has to fit in memory at full size


@dataclass
class SplitOutputs:
    """Raw logits (no temperature) of every photo of a split, in manifest order."""

    samples: list[Sample]
    paths: list[Path]
    logits: dict[str, np.ndarray]  # head -> N x labels
    seconds: float = 0.0


def model_photo(path: Path, spec: PreprocessSpec) -> np.ndarray:
    return load_photo(path, min_side=spec.input_size)


def split_samples(manifest: Manifest, split: str, option: str = "--split") -> list[Sample]:
    samples = manifest.split(split)
    if not samples:
        counts = {name: len(manifest.split(name)) for name in ("train", "val", "test")}
        raise InputError(f"{manifest.path} has no photos in split {split!r} (splits: {counts})", option)
    return samples


def collect_logits(engine: Engine, manifest: Manifest, samples: list[Sample],
                   desc: str = "scoring") -> SplitOutputs:
    """Every head's logits for `samples`, as the engine serves them (a mirrored engine's are
    the mean of each photo's and its mirror image's: `Engine.run`)."""
    names = [f"{head.name}_logits" for head in engine.taxonomy.heads]
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    paths = [manifest.image_path(sample) for sample in samples]
    started = time.perf_counter()
    with tqdm(total=len(paths), desc=desc, unit="photo") as progress:
        for start in range(0, len(paths), LOAD_BATCH):
            chunk = paths[start:start + LOAD_BATCH]
            photos = [model_photo(path, engine.card.preprocessing) for path in chunk]
            raw = _run_chunk(engine, photos, names)
            for name in names:
                chunks[name].append(raw[name])
            progress.update(len(photos))
    logits = {head.name: np.concatenate(chunks[f"{head.name}_logits"]).astype(np.float64)
              for head in engine.taxonomy.heads}
    return SplitOutputs(samples=samples, paths=paths, logits=logits,
                        seconds=time.perf_counter() - started)


def _run_chunk(engine: Engine, photos: list[np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    parts = list(engine.iter_raw(photos, batch_size=LOAD_BATCH, outputs=names))
    return {name: np.concatenate([part[name] for part in parts]) for name in names}


def single_targets(samples: list[Sample], head: Head) -> np.ndarray:
    """Label index per photo, -1 where the photo has no label for this head."""
    targets = np.full(len(samples), -1, dtype=np.int64)
    for row, sample in enumerate(samples):
        labels = sample.labels.get(head.name, ())
        if labels:
            targets[row] = head.index(labels[0])
    return targets


def multi_targets(samples: list[Sample], head: Head) -> tuple[np.ndarray, np.ndarray]:
    """(N x labels 0/1 matrix, N mask). A photo whose row lacks the head's column is unlabelled;
    an empty value means 'none of these' (no damage, no accessory visible)."""
    matrix = np.zeros((len(samples), len(head.labels)), dtype=np.float64)
    labelled = np.zeros(len(samples), dtype=bool)
    for row, sample in enumerate(samples):
        if head.name not in sample.labels:
            continue
        labelled[row] = True
        for label in sample.labels[head.name]:
            matrix[row, head.index(label)] = 1.0
    return matrix, labelled


def opinion_probabilities(engine: Engine, manifest: Manifest, samples: list[Sample]
                          ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The anomaly score's second opinion as the service computes it: per head it weighs, q
    (P(defect) from the photo's anomaly score) per sample, NaN where the sample's category has
    no opinion; and the photos per category it applies to."""
    if not engine.card.anomaly:
        return {}, {}
    detectors = AnomalyDetectors.load(engine.bundle_dir, engine.card)
    per_head: dict[str, np.ndarray] = {}
    applied = {}
    for category in sorted({s.category for s in samples if s.category}):
        opinion = detectors.second_opinion(category)
        if opinion is None:
            continue
        rows = [row for row, sample in enumerate(samples) if sample.category == category]
        starts = tqdm(range(0, len(rows), 16), desc=f"second opinion {category}")
        scores = np.concatenate([anomaly_scores(engine, detectors, category,
                                                [manifest.image_path(samples[r])
                                                 for r in rows[start:start + 16]])
                                 for start in starts])
        for name in opinion.heads:
            per_head.setdefault(name, np.full(len(samples), np.nan))[rows] = (
                opinion.defect_probability(scores))
        applied[category] = len(rows)
    return per_head, applied


def weigh_in(probabilities: dict[str, np.ndarray], opinions: dict[str, np.ndarray],
             taxonomy: Taxonomy) -> None:
    """Each head's probabilities with q weighed in where it applies (the dict's entries are
    replaced), as served."""
    for name, q in opinions.items():
        head = taxonomy.head(name)
        probabilities[name] = Opinion(head.index(str(head.no_defect)), q).weigh(probabilities[name])


def item_defect_calls(probabilities: np.ndarray, samples: list[Sample], head: Head
                      ) -> tuple[list[HeadCall], np.ndarray]:
    """Per item with photos labelled for `head` (a head with a `no_defect` label): the call the
    service makes on it (`inspection.decide.head_call`: the photo least likely to show no
    defect) and whether any of its photos truly shows a defect."""
    calls, truth = [], []
    for item_rows in rows_by_item(samples).values():
        rows = [row for row in item_rows if samples[row].labels.get(head.name)]
        if rows:
            photos = [{head.name: dict(zip(head.labels, map(float, probabilities[row]), strict=True))}
                      for row in rows]
            calls.append(head_call(photos, head))
            truth.append(any(samples[row].labels[head.name][0] != head.no_defect for row in rows))
    return calls, np.array(truth, dtype=bool)


def flag_rates(flagged: np.ndarray, defective: np.ndarray) -> dict[str, Any]:
    """What a per-item flag does on the items with a defect (recall) and on those without."""
    return {"recall": float(flagged[defective].mean()) if defective.any() else None,
            "false_flag_rate": float(flagged[~defective].mean()) if (~defective).any() else None,
            "items_with_defect": int(defective.sum()), "items_without": int((~defective).sum())}


def weigh_second_opinion(engine: Engine, manifest: Manifest, samples: list[Sample],
                         probabilities: dict[str, np.ndarray]) -> dict[str, int]:
    """Weigh each category's anomaly score into the heads, as the service does
    (inspection.second_opinion), in place; photos per category it was applied to."""
    opinions, applied = opinion_probabilities(engine, manifest, samples)
    weigh_in(probabilities, opinions, engine.taxonomy)
    return applied


def anomaly_scores(engine: Engine, detectors: AnomalyDetectors, category: str,
                   paths: list[Path]) -> np.ndarray:
    """Normalised anomaly scores of photos, decoded and scored as the service does."""
    photos = [model_photo(path, engine.card.preprocessing) for path in paths]
    result = detectors.score_photos(category, photos, engine.patch_features(photos),
                                    engine.patch_features)
    assert result is not None  # the caller checked the category has a detector
    return result.scores
