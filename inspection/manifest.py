"""A dataset is a manifest: one row per photo, read from CSV or JSONL.

Columns: `image` (path, relative to the manifest's folder unless absolute), `item_id` (the photos
of one returned item), `category`, `sku`, `split` (train / val / test, or empty), one column per
taxonomy head (a label; several labels joined by ';' for multi-label heads, or a JSON list in
JSONL), optional `mask` (path) and `sha256`. Rows never straddle splits by item (`dataset split`).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inspection.atomic import replacing
from inspection.errors import InputError
from inspection.taxonomy import Taxonomy

SPLITS = ("train", "val", "test")
FIXED_COLUMNS = ("image", "item_id", "category", "sku", "split", "mask", "sha256")
LABEL_SEPARATOR = ";"


@dataclass(frozen=True)
class Sample:
    """One photo and what is known about it. `labels` maps head name -> labels (a single-label
    head has one, an unlabelled one none)."""

    image: str
    item_id: str
    category: str = ""
    sku: str = ""
    split: str = ""
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mask: str = ""
    sha256: str = ""
    line: int = 0  # where it was read, for messages; 0 when made in code

    def with_split(self, split: str) -> Sample:
        return replace(self, split=split)


@dataclass
class Manifest:
    path: Path  # the manifest file; relative image paths resolve against its folder
    samples: list[Sample]
    head_columns: tuple[str, ...]

    @property
    def root(self) -> Path:
        return self.path.parent

    def image_path(self, sample: Sample) -> Path:
        return _resolve(self.root, sample.image)

    def mask_path(self, sample: Sample) -> Path | None:
        return _resolve(self.root, sample.mask) if sample.mask else None

    def where(self, sample: Sample) -> str:
        return f"{self.path}:{sample.line}" if sample.line else str(self.path)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def sha256(self) -> str:
        return file_sha256(self.path)


def with_category(manifest: Manifest, category: str) -> Manifest:
    """The manifest with `category` given to every photo that has none (a set of one product
    line, as MVTec's bottle: `--as-category`)."""
    samples = [sample if sample.category else replace(sample, category=category)
               for sample in manifest.samples]
    return replace(manifest, samples=samples)


def rows_by_item(samples: Sequence[Sample]) -> dict[str, list[int]]:
    """Row indices of each item's photos, items in first-seen order (dicts keep insertion order)."""
    groups: dict[str, list[int]] = {}
    for row, sample in enumerate(samples):
        groups.setdefault(sample.item_id, []).append(row)
    return groups


def _resolve(root: Path, relative: str) -> Path:
    path = Path(relative)
    return path if path.is_absolute() else root / path


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: str | Path, taxonomy: Taxonomy | None = None) -> Manifest:
    """Read a CSV or JSONL manifest. With a taxonomy, also check every label is one it knows."""
    path = Path(path)
    if not path.is_file():
        raise InputError("manifest not found", path)
    records = _read_jsonl(path) if path.suffix.lower() in (".jsonl", ".json") else _read_csv(path)
    samples: list[Sample] = []
    head_columns: set[str] = set()
    for line, record in records:
        sample = _to_sample(record, path, line)
        head_columns.update(sample.labels)
        samples.append(sample)
    if not samples:
        raise InputError("manifest has no rows", path)
    manifest = Manifest(path=path, samples=samples, head_columns=tuple(sorted(head_columns)))
    if taxonomy is not None:
        check_labels(manifest, taxonomy)
    return manifest


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "image" not in reader.fieldnames:
            raise InputError(f"CSV header must name an `image` column, got {reader.fieldnames}", path, 1)
        # Line numbers as an editor shows them: the header is line 1.
        return [(index + 2, row) for index, row in enumerate(reader)]


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    with open(path, encoding="utf-8") as handle:
        for line_number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON ({exc.msg})", path, line_number) from None
            if not isinstance(record, dict):
                raise InputError("each line must be a JSON object", path, line_number)
            records.append((line_number, record))
    return records


def _to_sample(record: dict[str, Any], path: Path, line: int) -> Sample:
    image = str(record.get("image") or "").strip()
    if not image:
        raise InputError("row has no `image` path", path, line)
    split = str(record.get("split") or "").strip()
    if split and split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS} or empty, got {split!r}", path, line)
    labels = {
        column: _parse_labels(value)
        for column, value in record.items()
        if column not in FIXED_COLUMNS and column is not None and value is not None
    }
    return Sample(
        image=image,
        item_id=str(record.get("item_id") or image),
        category=str(record.get("category") or ""),
        sku=str(record.get("sku") or ""),
        split=split,
        labels=labels,
        mask=str(record.get("mask") or ""),
        sha256=str(record.get("sha256") or ""),
        line=line,
    )


def _parse_labels(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v).strip() for v in value if str(v).strip())
    text = str(value).strip()
    return tuple(part.strip() for part in text.split(LABEL_SEPARATOR) if part.strip())


def check_labels(manifest: Manifest, taxonomy: Taxonomy) -> None:
    """Raise on the first label the taxonomy does not know (validate lists them all)."""
    for problem in label_problems(manifest.samples, taxonomy):
        raise InputError(problem[1], manifest.path, problem[0])


def label_problems(samples: Iterable[Sample], taxonomy: Taxonomy) -> list[tuple[int, str]]:
    """(line, message) for every unknown head column, unknown label or extra single label."""
    problems = []
    known_heads = {head.name: head for head in taxonomy.heads}
    for sample in samples:
        for column, labels in sample.labels.items():
            head = known_heads.get(column)
            if head is None:
                problems.append((sample.line, f"column {column!r} is not a head of the taxonomy "
                                 f"{taxonomy.name!r} (heads: {taxonomy.head_names})"))
                continue
            unknown = [label for label in labels if label not in head.labels]
            if unknown:
                problems.append((sample.line, f"unknown {column} label(s) {unknown}; "
                                 f"known: {list(head.labels)}"))
            if head.type == "single" and len(labels) > 1:
                problems.append((sample.line, f"{column} is single-label, got {list(labels)}"))
        if sample.category and taxonomy.kits and sample.category not in taxonomy.kits:
            problems.append((sample.line, f"unknown category {sample.category!r}; "
                             f"known: {taxonomy.categories}"))
    return problems


def write_manifest(path: str | Path, samples: Sequence[Sample], heads: Sequence[str]) -> Path:
    """Write CSV or JSONL (by suffix) atomically: a crash never leaves half a manifest."""
    path = Path(path)
    with replacing(path) as temporary:
        if path.suffix.lower() in (".jsonl", ".json"):
            with open(temporary, "w", encoding="utf-8") as handle:
                for sample in samples:
                    handle.write(json.dumps(_to_record(sample, heads, as_lists=True)) + "\n")
        else:
            columns = ["image", "item_id", "category", "sku", "split", *heads, "mask", "sha256"]
            with open(temporary, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                for sample in samples:
                    writer.writerow(_to_record(sample, heads, as_lists=False))
    return path


def _to_record(sample: Sample, heads: Sequence[str], as_lists: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "image": sample.image, "item_id": sample.item_id, "category": sample.category,
        "sku": sample.sku, "split": sample.split,
    }
    for head in heads:
        labels = list(sample.labels.get(head, ()))
        record[head] = labels if as_lists else LABEL_SEPARATOR.join(labels)
    record["mask"] = sample.mask
    record["sha256"] = sample.sha256
    return record
