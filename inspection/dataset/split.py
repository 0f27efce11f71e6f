"""`dataset split`: seeded, stratified train/val/test splits grouped by item.

An item (all photos sharing an `item_id`) never straddles splits: a model that saw one photo of
a returned phone in training would find its second photo in test suspiciously easy. Items are
grouped into strata by a head's label, shuffled with a seed derived from (seed, stratum) so
adding a new label does not reshuffle the others, then dealt out greedily to whichever split is
furthest below its share of photos.

MVTec-style protocols keep the split the layout gave (`--keep-existing`), re-deal only some
labels (`--resplit-labels`) and move a seeded part of the kept train items to val
(`--val-from-train`); see datasets/recipes/.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inspection.dataset.importer import relative_to
from inspection.errors import InputError
from inspection.manifest import SPLITS, Manifest, Sample, read_manifest, rows_by_item, write_manifest
from inspection.taxonomy import Taxonomy, load_taxonomy, other_taxonomy_at, taxonomy_beside, write_taxonomy

log = logging.getLogger(__name__)
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def _stable_rng(seed: int, *keys: str) -> np.random.Generator:
    # Python's hash() of a str changes per process; a digest does not.
    digest = hashlib.sha256("\x1f".join(keys).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def _stratum(samples: Sequence[Sample], indices: list[int], stratify: str | None) -> str:
    """The most common label set of the item's photos for the stratify head ('' if none)."""
    if not stratify:
        return ""
    keys = Counter(";".join(sorted(samples[i].labels.get(stratify, ()))) for i in indices)
    return sorted(keys.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def _deal(groups: list[list[int]], fractions: Sequence[float], counts: list[int]) -> list[int]:
    """Give each group (in order) to the split furthest below its share once the group is in."""
    chosen = []
    for group in groups:
        total = sum(counts) + len(group)
        deficits = [fraction * total - count for fraction, count in zip(fractions, counts, strict=True)]
        best = int(np.argmax(deficits))
        counts[best] += len(group)
        chosen.append(best)
    return chosen


def assign_splits(
    samples: Sequence[Sample],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    stratify: str | None = None,
    keep_existing: bool = False,
    resplit_labels: Sequence[str] = (),
    val_from_train: float = 0.0,
) -> list[Sample]:
    """Return the samples (same order) with `split` set; pure and deterministic for a seed.

    keep_existing: items that already have a split keep it, unless their stratum label is in
    `resplit_labels`; the rest are dealt by `fractions` (train, val, test).
    val_from_train: then move that fraction of the train items of each stratum to val.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        msg = f"fractions must be three non-negative numbers (train val test), got {list(fractions)}"
        raise ValueError(msg)
    if not 0.0 <= val_from_train < 1.0:
        raise ValueError(f"val_from_train must be in [0, 1), got {val_from_train}")
    splits = [s.split for s in samples]
    strata: dict[str, list[list[int]]] = defaultdict(list)
    kept_counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for item_id, indices in sorted(rows_by_item(samples).items()):
        stratum = _stratum(samples, indices, stratify)
        existing = sorted({splits[i] for i in indices if splits[i]})
        if keep_existing and existing and stratum not in resplit_labels:
            if len(existing) > 1:
                raise ValueError(f"item {item_id!r} is already in several splits: {existing}")
            for i in indices:
                splits[i] = existing[0]
            kept_counts[stratum][SPLITS.index(existing[0])] += len(indices)
        else:
            strata[stratum].append(indices)
    for stratum, groups in sorted(strata.items()):
        order = _stable_rng(seed, "split", stratum).permutation(len(groups))
        ordered = [groups[i] for i in order]
        for group, split in zip(ordered, _deal(ordered, fractions, list(kept_counts[stratum])),
                                strict=True):
            for i in group:
                splits[i] = SPLITS[split]
    if val_from_train:
        _move_to_val(samples, splits, stratify, seed, val_from_train)
    return [sample.with_split(split) for sample, split in zip(samples, splits, strict=True)]


def _move_to_val(samples: Sequence[Sample], splits: list[str], stratify: str | None,
                 seed: int, fraction: float) -> None:
    by_stratum: dict[str, list[list[int]]] = defaultdict(list)
    for _, indices in sorted(rows_by_item(samples).items()):
        if splits[indices[0]] == "train":
            by_stratum[_stratum(samples, indices, stratify)].append(indices)
    for stratum, groups in sorted(by_stratum.items()):
        order = _stable_rng(seed, "val", stratum).permutation(len(groups))
        for position in order[: int(round(fraction * len(groups)))]:
            for i in groups[position]:
                splits[i] = "val"


def default_stratify(manifest: Manifest, taxonomy: Taxonomy | None) -> str | None:
    """The taxonomy's first single-label head that the manifest has, else its first column
    that never holds more than one label per row."""
    if taxonomy is not None:
        for head in taxonomy.heads:
            if head.type == "single" and head.name in manifest.head_columns:
                return head.name
    for column in manifest.head_columns:
        if all(len(s.labels.get(column, ())) <= 1 for s in manifest.samples):
            return column
    return None


def taxonomy_for(manifest_path: Path, explicit: str | None) -> Taxonomy | None:
    """--taxonomy, else a taxonomy.yaml beside the manifest, else none."""
    if explicit:
        return load_taxonomy(explicit)
    beside = taxonomy_beside(manifest_path)
    return load_taxonomy(beside) if beside.is_file() else None


def split_summary(samples: Sequence[Sample], head: str | None) -> str:
    parts = []
    for split in SPLITS:
        chosen = [s for s in samples if s.split == split]
        labels = Counter(label for s in chosen for label in s.labels.get(head or "", ()))
        detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        parts.append(f"{split} {len(chosen)}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest CSV/JSONL to split")
    parser.add_argument("--out", required=True, help="where to write the split manifest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fractions", type=float, nargs=3, default=list(DEFAULT_FRACTIONS),
                        metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--stratify", help="head whose label stratifies (default: first single-label head)")
    parser.add_argument("--taxonomy", help="taxonomy YAML (default: taxonomy.yaml beside the manifest)")
    parser.add_argument("--keep-existing", action="store_true",
                        help="items that already have a split keep it (e.g. MVTec's train/test)")
    parser.add_argument("--resplit-labels", nargs="+", default=[], metavar="LABEL",
                        help="with --keep-existing: re-deal items of these labels by --fractions")
    parser.add_argument("--val-from-train", type=float, default=0.0, metavar="FRACTION",
                        help="afterwards move this seeded fraction of train items (per label) to val")


def main(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.manifest)
    taxonomy = taxonomy_for(manifest.path, args.taxonomy)
    stratify = args.stratify or default_stratify(manifest, taxonomy)
    if stratify and stratify not in manifest.head_columns:
        raise InputError(f"no column {stratify!r} to stratify by; columns: {list(manifest.head_columns)}",
                         "--stratify")
    if args.resplit_labels and not args.keep_existing:
        raise InputError("only makes sense with --keep-existing", "--resplit-labels")
    try:
        samples = assign_splits(manifest.samples, args.fractions, args.seed, stratify,
                                args.keep_existing, args.resplit_labels, args.val_from_train)
    except ValueError as exc:
        raise InputError(str(exc), args.manifest) from None
    out = Path(args.out)
    beside = taxonomy_beside(out)  # validate and train read the split manifest with this one
    if taxonomy is not None and (there := other_taxonomy_at(beside, taxonomy)):
        raise InputError(f"already holds {there}, not the taxonomy of {manifest.path}; the split "
                         "manifest would be read with it. Write the split into another folder",
                         beside)
    rebased = [_rebase(manifest, sample, out.parent) for sample in samples]
    write_manifest(out, rebased, _ordered_heads(manifest, taxonomy))
    if taxonomy is not None and not beside.exists():
        write_taxonomy(taxonomy, beside)
    print(f"{out}: {split_summary(rebased, stratify)}")
    return 0


def _ordered_heads(manifest: Manifest, taxonomy: Taxonomy | None) -> list[str]:
    if taxonomy is None:
        return list(manifest.head_columns)
    known = [h for h in taxonomy.head_names if h in manifest.head_columns]
    return known + [h for h in manifest.head_columns if h not in known]


def _rebase(manifest: Manifest, sample: Sample, new_root: Path) -> Sample:
    """Keep paths pointing at the same files when the output lands in another folder."""
    if manifest.root.resolve() == new_root.resolve():
        return sample
    image = relative_to(manifest.image_path(sample), new_root)
    mask_path = manifest.mask_path(sample)
    mask = relative_to(mask_path, new_root) if mask_path else ""
    return Sample(image=image, item_id=sample.item_id, category=sample.category, sku=sample.sku,
                  split=sample.split, labels=sample.labels, mask=mask, sha256=sample.sha256)
