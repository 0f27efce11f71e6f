"""`dataset import`: a manifest (and a matching one-head taxonomy) from label folders.

Two layouts:
- imagefolder: `root/<label>/**/*.jpg|png|...`. A PNG with the same stem as a JPEG beside it is
  that photo's pixel mask, not a photo (the magnetic-tile layout `MT_Crack/Imgs/x.jpg` + `x.png`).
- mvtec: `root/train/good`, `root/test/<defect>`, optional `root/ground_truth/<defect>/<stem>_mask.png`;
  the split comes from the layout (train/* -> train, test/* -> test).
Each photo is its own item. Image paths are written relative to the manifest's folder.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from inspection.errors import InputError
from inspection.manifest import Sample, file_sha256, write_manifest
from inspection.taxonomy import Taxonomy, other_taxonomy_at, taxonomy_beside, write_taxonomy

log = logging.getLogger(__name__)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic")
MASK_FOR_JPEG = (".jpg", ".jpeg")


@dataclass(frozen=True)
class Found:
    """One photo found in a layout, before paths are made relative."""

    image: Path
    label: str
    split: str = ""
    mask: Path | None = None


def relative_to(path: Path, folder: Path) -> str:
    """`path` relative to `folder`, or absolute when no relative path exists (another drive)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def find_imagefolder(root: Path) -> list[Found]:
    found = []
    for label_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = _photos_in(label_dir)
        jpeg_stems = {(p.parent, p.stem) for p in files if p.suffix.lower() in MASK_FOR_JPEG}
        for path in files:
            is_mask = path.suffix.lower() == ".png" and (path.parent, path.stem) in jpeg_stems
            if is_mask:
                continue
            mask = path.with_suffix(".png") if path.suffix.lower() in MASK_FOR_JPEG else None
            found.append(Found(path, label_dir.name, mask=mask if mask and mask.is_file() else None))
    return found


def find_mvtec(root: Path, good_label: str) -> list[Found]:
    found = []
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for label_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            label = good_label if label_dir.name == "good" else label_dir.name
            for path in _photos_in(label_dir):
                mask = root / "ground_truth" / label_dir.name / f"{path.stem}_mask.png"
                found.append(Found(path, label, split, mask if mask.is_file() else None))
    return found


def detect_layout(root: Path) -> str:
    return "mvtec" if (root / "train").is_dir() and (root / "test").is_dir() else "imagefolder"


def import_folder(root: Path, out: Path, layout: str = "auto", head: str = "defect",
                  good_label: str = "good") -> tuple[list[Sample], list[str]]:
    """Find the photos, hash them and return (samples, labels with the good label first)."""
    if not root.is_dir():
        raise InputError("not a folder", root)
    layout = detect_layout(root) if layout == "auto" else layout
    found = find_mvtec(root, good_label) if layout == "mvtec" else find_imagefolder(root)
    if not found:
        raise InputError(f"no photos found in the {layout} layout ({', '.join(PHOTO_SUFFIXES)})", root)
    samples = []
    for item in tqdm(found, desc="hashing photos", unit="photo"):
        image = relative_to(item.image, out.parent)
        samples.append(Sample(
            image=image,
            item_id=Path(relative_to(item.image, root)).with_suffix("").as_posix(),
            split=item.split,
            labels={head: (item.label,)},
            mask=relative_to(item.mask, out.parent) if item.mask else "",
            sha256=file_sha256(item.image),
        ))
    labels = sorted({item.label for item in found})
    if good_label in labels:  # the normal class first: anomaly code and reports read it as such
        labels = [good_label] + [label for label in labels if label != good_label]
    return samples, labels


def imported_taxonomy(name: str, head: str, labels: list[str], good_label: str) -> Taxonomy:
    spec: dict = {"type": "single", "labels": labels}
    if good_label in labels:
        spec["descriptions"] = {good_label: "no defect (the normal class)"}
        spec["no_defect"] = good_label
    return Taxonomy.from_dict({"name": name, "heads": {head: spec}})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="folder with one sub-folder per label")
    parser.add_argument("--out", required=True, help="manifest to write (.csv or .jsonl)")
    parser.add_argument("--layout", choices=["auto", "imagefolder", "mvtec"], default="auto")
    parser.add_argument("--head", default="defect", help="name of the single-label head")
    parser.add_argument("--good-label", default="good",
                        help="the normal class (MVTec's `good` folder is given this label)")
    parser.add_argument("--taxonomy-out", help="taxonomy YAML to write (default: taxonomy.yaml beside --out)")
    parser.add_argument("--replace-taxonomy", action="store_true",
                        help="write over a different taxonomy already there (refused otherwise)")


def main(args: argparse.Namespace) -> int:
    root, out = Path(args.root), Path(args.out)
    if not args.head.isidentifier():
        raise InputError(f"head name must be a plain word, got {args.head!r}", "--head")
    samples, labels = import_folder(root, out, args.layout, args.head, args.good_label)
    if len(labels) < 2:
        raise InputError(f"found only the label {labels}; a single-label head needs two or more", root)
    taxonomy = imported_taxonomy(root.resolve().name, args.head, labels, args.good_label)
    taxonomy_out = Path(args.taxonomy_out) if args.taxonomy_out else taxonomy_beside(out)
    # Checked before anything is written: two imports into one folder would otherwise leave the
    # first set's manifest read with the second set's labels.
    if not args.replace_taxonomy and (there := other_taxonomy_at(taxonomy_out, taxonomy)):
        raise InputError(f"already holds {there}, which this import would replace; it is kept. "
                         "Import into another folder, name another file with --taxonomy-out, or "
                         "pass --replace-taxonomy", taxonomy_out)
    write_manifest(out, samples, [args.head])
    write_taxonomy(taxonomy, taxonomy_out)
    counts = Counter(s.labels[args.head][0] for s in samples)
    masks = sum(1 for s in samples if s.mask)
    summary = ", ".join(f"{label}={counts[label]}" for label in labels)
    print(f"{out}: {len(samples)} photos ({summary}), {masks} masks; taxonomy {taxonomy_out}")
    if args.good_label not in labels:  # legal, but the good-only half of the product is then off
        print(f"note: no folder is the normal class {args.good_label!r}, so the taxonomy names "
              "none: `anomaly fit` has no good photos to learn from and the anomaly score's "
              "second opinion is off. If one folder holds the photos without a defect, import "
              "again with --good-label FOLDER --replace-taxonomy")
    return 0
