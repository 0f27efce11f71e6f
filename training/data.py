"""Manifest rows -> training tensors, through the same decode and preprocessing the service uses.

Each item is a dict: `image` (3 x S x S float32), `category` (index, -1 when unknown) and per
head `<head>` (single: the label's index; multi: a multi-hot vector) with `<head>_mask` (1 when
the row labels that head). Unlabelled heads are masked out of the loss, so manifests that label
only some heads (MVTec's `defect`, or operators' partial corrections) train the rest untouched.
A single-label head is labelled when its column holds a label; a multi-label head when its
column is present at all (an empty value there means "none of these").
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from inspection.card import PreprocessSpec
from inspection.images import load_photo
from inspection.manifest import Manifest, Sample
from inspection.preprocess import normalise, resize_for_model
from inspection.taxonomy import Taxonomy
from training.presets import Preset, augment

MAX_CLASS_WEIGHT = 10.0  # a class 100x rarer than the rest is weighted 10x, not 100x


class InspectionDataset(Dataset):
    def __init__(self, manifest: Manifest, samples: list[Sample], taxonomy: Taxonomy,
                 categories: list[str], spec: PreprocessSpec, preset: Preset | None = None,
                 cache: bool = True) -> None:
        self.manifest = manifest
        self.samples = samples
        self.taxonomy = taxonomy
        self.categories = categories
        self.spec = spec
        self.preset = preset
        # Photos resized to input size: 160 px x 3 channels = 77 kB each, so a few thousand fit
        # in memory and later epochs skip decoding (the costliest step on 2 cores).
        self.cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def photo(self, index: int) -> np.ndarray:
        """The photo at model input size, uint8 RGB, before augmentation."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        path = self.manifest.image_path(self.samples[index])
        rgb = resize_for_model(load_photo(path, min_side=self.spec.input_size), self.spec)
        if self.cache is not None:
            self.cache[index] = rgb
        return rgb

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rgb = self.photo(index)
        if self.preset is not None:
            # Seeded from torch's generator, which DataLoader seeds per worker from the run seed.
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
            rgb = augment(rgb, self.preset, rng)
        item = {"image": torch.from_numpy(normalise(rgb, self.spec))}
        item.update(encode_targets(self.samples[index], self.taxonomy, self.categories))
        return item


def encode_targets(sample: Sample, taxonomy: Taxonomy,
                   categories: list[str]) -> dict[str, torch.Tensor]:
    category = categories.index(sample.category) if sample.category in categories else -1
    targets = {"category": torch.tensor(category)}
    for head in taxonomy.heads:
        labels = sample.labels.get(head.name)
        if head.type == "single":
            labelled = bool(labels)
            targets[head.name] = torch.tensor(head.index(labels[0]) if labels else 0)
        else:
            labelled = labels is not None
            hot = torch.zeros(len(head.labels))
            for label in labels or ():
                hot[head.index(label)] = 1.0
            targets[head.name] = hot
        targets[f"{head.name}_mask"] = torch.tensor(float(labelled))
    return targets


def class_weights(samples: list[Sample], taxonomy: Taxonomy) -> dict[str, torch.Tensor]:
    """Per head loss weights from train counts: single heads get inverse class frequency
    (mean 1 over seen classes), multi heads a BCE pos_weight = negatives / positives."""
    weights: dict[str, torch.Tensor] = {}
    for head in taxonomy.heads:
        rows = [s.labels[head.name] for s in samples if s.labels.get(head.name) is not None]
        if head.type == "single":
            counts = Counter(labels[0] for labels in rows if labels)
            seen = [counts[label] for label in head.labels if counts[label]]
            total, classes = sum(seen), max(1, len(seen))
            values = [total / (classes * counts[label]) if counts[label] else 1.0
                      for label in head.labels]
        else:
            positives = Counter(label for labels in rows for label in labels)
            values = [(len(rows) - positives[label]) / positives[label] if positives[label]
                      else 1.0 for label in head.labels]
        weights[head.name] = torch.tensor(values).clamp(1.0 / MAX_CLASS_WEIGHT, MAX_CLASS_WEIGHT)
    return weights


def balanced_sampler(samples: list[Sample], taxonomy: Taxonomy,
                     generator: torch.Generator) -> WeightedRandomSampler:
    """Draw rows so each label of the first single-label head (else each category) is seen
    about equally often."""
    single = next((h.name for h in taxonomy.heads if h.type == "single"), None)
    keys = [(s.labels.get(single) or ("",))[0] if single else s.category for s in samples]
    counts = Counter(keys)
    weights = [1.0 / counts[key] for key in keys]
    return WeightedRandomSampler(weights, num_samples=len(samples), replacement=True,
                                 generator=generator)
