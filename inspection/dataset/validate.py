"""`dataset validate`: every problem in a manifest, each with its file and line, in one pass.

Training on a manifest with a truncated JPEG fails an hour in; one with the same photo in train
and test reports a score that means nothing. This finds both, and the rest, before anything
trains: missing or undecodable photos, labels the taxonomy does not know, the same bytes or the
same item in two splits, missing masks and stale sha256 values.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from inspection.errors import InputError
from inspection.images import load_photo
from inspection.manifest import SPLITS, Manifest, file_sha256, label_problems, read_manifest
from inspection.taxonomy import Taxonomy, load_taxonomy, taxonomy_beside


@dataclass(frozen=True)
class Problem:
    where: str  # the manifest (or photo) the problem is in
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.message}" if self.line else f"{self.where}: {self.message}"


def check_files(manifest: Manifest, progress: bool = True) -> tuple[list[Problem], dict[int, str]]:
    """Decode every photo in full; return problems and each readable row's sha256 (by index)."""
    problems: list[Problem] = []
    digests: dict[int, str] = {}
    where = str(manifest.path)
    for index, sample in enumerate(tqdm(manifest.samples, desc="decoding photos", unit="photo",
                                        disable=not progress)):
        path = manifest.image_path(sample)
        mask = manifest.mask_path(sample)
        if mask is not None and not mask.is_file():
            problems.append(Problem(where, sample.line, f"mask not found: {mask}"))
        if not path.is_file():
            problems.append(Problem(where, sample.line, f"image not found: {path}"))
            continue
        try:
            load_photo(path)
        except InputError as exc:
            problems.append(Problem(where, sample.line, f"unreadable image {path}: {exc.detail}"))
            continue
        digests[index] = file_sha256(path)
        if sample.sha256 and sample.sha256.lower() != digests[index]:
            problems.append(Problem(where, sample.line,
                                    f"sha256 column {sample.sha256[:12]}… does not match the file "
                                    f"{path} ({digests[index][:12]}…)"))
    return problems, digests


def check_leaks(manifest: Manifest, digests: dict[int, str]) -> list[Problem]:
    """The same photo bytes, or the same item, in more than one split."""
    problems = []
    where = str(manifest.path)
    for key_name, key_of in (("photo (sha256)", lambda i, s: digests.get(i)),
                             ("item_id", lambda i, s: s.item_id)):
        rows: dict[str, list] = defaultdict(list)
        for index, sample in enumerate(manifest.samples):
            key = key_of(index, sample)
            if key and sample.split:
                rows[key].append(sample)
        for key, samples in rows.items():
            splits = sorted({s.split for s in samples})
            if len(splits) < 2:
                continue
            lines = ", ".join(f"{s.line} ({s.split})" for s in samples)
            for sample in samples:
                message = f"the same {key_name} {key[:16]} is in splits {splits}: lines {lines}"
                problems.append(Problem(where, sample.line, message))
    return problems


def validate(manifest: Manifest, taxonomy: Taxonomy | None, progress: bool = True) -> list[Problem]:
    problems = []
    if taxonomy is not None:
        problems += [Problem(str(manifest.path), line, message)
                     for line, message in label_problems(manifest.samples, taxonomy)]
    file_problems, digests = check_files(manifest, progress)
    problems += file_problems + check_leaks(manifest, digests)
    return sorted(problems, key=lambda p: (p.line, p.message))


def summary(manifest: Manifest, taxonomy: Taxonomy | None) -> str:
    splits = Counter(s.split or "unsplit" for s in manifest.samples)
    split_text = " ".join(f"{name}={splits[name]}" for name in (*SPLITS, "unsplit") if splits[name])
    heads = [h.name for h in taxonomy.heads if h.name in manifest.head_columns] if taxonomy \
        else list(manifest.head_columns)
    label_text = []
    for head in heads:
        counts = Counter(label for s in manifest.samples for label in s.labels.get(head, ()))
        label_text.append(f"{head}: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    items = len({s.item_id for s in manifest.samples})
    return f"{manifest.path}: OK, {len(manifest.samples)} photos, {items} items; {split_text}; " \
        + "; ".join(label_text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest CSV/JSONL")
    parser.add_argument("--taxonomy", help="taxonomy YAML (default: taxonomy.yaml beside the "
                        "manifest, else the packaged one)")


def main(args: argparse.Namespace) -> int:
    manifest = read_manifest(args.manifest)
    beside = taxonomy_beside(manifest.path)
    taxonomy_path = args.taxonomy or (beside if beside.is_file() else None)
    taxonomy = load_taxonomy(Path(taxonomy_path) if taxonomy_path else None)
    problems = validate(manifest, taxonomy)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{manifest.path}: {len(problems)} problem(s) in {len(manifest.samples)} rows")
        return 1
    print(summary(manifest, taxonomy))
    return 0
