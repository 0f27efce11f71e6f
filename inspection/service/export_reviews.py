"""`returns-inspect dataset export-reviews`: reviewed inspections -> a manifest `train` accepts.

The QA loop: operators confirm or correct the model in the review queue; this turns their
decisions into training rows (one per photo, `item_id` = the inspection, so `dataset split`
keeps an item's photos together). A confirmed item keeps the model's item-level labels; a
corrected one takes the operator's labels head by head (heads left out keep the model's).
Labels are the item's, given to each of its photos.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from inspection.card import read_card
from inspection.errors import InputError
from inspection.manifest import Sample, write_manifest
from inspection.service.crud import reviewed_inspections
from inspection.service.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from inspection.service.models import Inspection
from inspection.service.settings import Settings
from inspection.service.storage import PhotoStore
from inspection.taxonomy import Taxonomy

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder for manifest.csv, "
                        "taxonomy.yaml and photos/")
    parser.add_argument("--database-url", help="default: RETURNS_DATABASE_URL, else the SQLite "
                        "database in --data-dir")
    parser.add_argument("--data-dir", type=Path, help="service data directory (default: data)")
    parser.add_argument("--photo-dir", type=Path, help="photo store (default: <data-dir>/photos)")
    parser.add_argument("--bundle", type=Path, help="bundle whose taxonomy the labels use "
                        "(default: RETURNS_BUNDLE_DIR or models/default)")
    parser.add_argument("--since", type=_timestamp, help="only reviews at or after this ISO time")
    parser.add_argument("--link", action="store_true",
                        help="reference photos in the store instead of copying them")


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def model_labels(row: Inspection, photo_probabilities: dict[str, dict[str, float]],
                 taxonomy: Taxonomy) -> dict[str, tuple[str, ...]]:
    """The model's answer as labels: item-level for the heads the service understands, the
    photo's own top label (single) or labels at 0.5 (multi) for any other head."""
    item = row.result.get("item", {})
    labels: dict[str, tuple[str, ...]] = {}
    for head in taxonomy.heads:
        if head.name == "condition" and item.get("condition", {}).get("grade"):
            labels[head.name] = (item["condition"]["grade"],)
        elif head.name == "damage":
            labels[head.name] = tuple(d["label"] for d in item.get("damages", []) if d.get("found"))
        elif head.name == "accessories":
            labels[head.name] = tuple(item.get("accessories_visible", []))
        elif head.name in photo_probabilities:
            scores = photo_probabilities[head.name]
            labels[head.name] = ((max(scores, key=scores.__getitem__),) if head.type == "single"
                                 else tuple(k for k, v in scores.items() if v >= 0.5))
    return labels


def samples_for(row: Inspection, taxonomy: Taxonomy, store: PhotoStore, out: Path,
                link: bool) -> list[Sample]:
    review = row.reviews[-1]
    samples = []
    for photo in row.photos:
        labels = model_labels(row, photo.predictions.get("probabilities", {}), taxonomy)
        if review.decision == "correct":
            labels.update({head: tuple(values) for head, values in review.labels.items()})
        image = store.location(photo.path) if link else _copy(store, photo.path, out / "photos")
        samples.append(Sample(image=image, item_id=row.id, category=row.category or "",
                              sku=row.sku or "", labels=labels, sha256=photo.sha256))
    return samples


def _copy(store: PhotoStore, relative: str, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(relative).name
    if not target.exists():
        source = store.local_path(relative)  # a file is copied with its times; an object is read
        if source is not None:
            shutil.copy2(source, target)
        else:
            target.write_bytes(store.read(relative))
    return f"photos/{target.name}"


def export_reviews(out: Path, settings: Settings, bundle: Path, since: datetime | None = None,
                   link: bool = False) -> tuple[Path, int]:
    """Write <out>/manifest.csv and <out>/taxonomy.yaml; returns the manifest and item count."""
    taxonomy = read_card(bundle).get_taxonomy()
    engine = make_engine(settings.resolved_database_url)
    upgrade_to_head(engine)
    store = PhotoStore(settings.resolved_photo_store)
    samples: list[Sample] = []
    with session_scope(make_session_factory(engine)) as session:
        rows = reviewed_inspections(session, since)
        for row in tqdm(rows, desc="export reviews", unit="item"):
            samples.extend(samples_for(row, taxonomy, store, out, link))
    engine.dispose()
    if not samples:
        raise InputError("no reviewed inspections to export" + (f" since {since}" if since else ""),
                         "--since" if since else "--database-url")
    out.mkdir(parents=True, exist_ok=True)
    (out / "taxonomy.yaml").write_text(yaml.safe_dump(taxonomy.to_dict(), sort_keys=False))
    manifest = write_manifest(out / MANIFEST_NAME, samples, taxonomy.head_names)
    return manifest, len(rows)


def main(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    for option, name in (("database_url", "database_url"), ("data_dir", "data_dir"),
                         ("photo_dir", "photo_dir"), ("bundle", "bundle_dir")):
        if getattr(args, option) is not None:
            overrides[name] = getattr(args, option)
    settings = Settings(**overrides)
    manifest, items = export_reviews(args.out, settings, settings.bundle_dir, args.since, args.link)
    print(f"{items} reviewed item(s) -> {manifest} (taxonomy: {args.out / 'taxonomy.yaml'})")
    return 0
