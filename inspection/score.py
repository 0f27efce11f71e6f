"""`returns-inspect score DIR|MANIFEST --bundle models/default --out results.jsonl`

Scores photos offline through the service's own code path (`inspect_item`: same decoding,
quality checks, model, flags and decision), one JSON line per item. A folder is scored photo
by photo, each photo one item of `--category`; a manifest groups its rows by `item_id`, with
each item's category and sku. A photo that cannot be read becomes an `error` line, so one bad
file does not stop a backlog. With `--catalog DATA_DIR`, an item whose sku is in that service's
catalog is compared with the SKU's reference photos, as the API would.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from inspection.catalog import SkuEntry
from inspection.decide import load_policy
from inspection.errors import InputError
from inspection.loaded_model import LoadedModel
from inspection.manifest import read_manifest
from inspection.pipeline import Upload, inspect_item

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif"}


@dataclass(frozen=True)
class Item:
    item_id: str
    images: list[Path]
    category: str | None
    sku: str | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="a folder of photos or a manifest (CSV/JSONL)")
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--out", type=Path, default=Path("results.jsonl"))
    parser.add_argument("--category", help="product category of a folder's photos")
    parser.add_argument("--policy", type=Path, help="decision policy YAML (default: packaged)")
    parser.add_argument("--catalog", type=Path, metavar="DATA_DIR",
                        help="a service's data folder: compare items with their SKU's catalog photos")


def items_from(source: Path, category: str | None) -> list[Item]:
    if source.is_dir():
        photos = sorted(p for p in source.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        if not photos:
            raise InputError(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in the folder", source)
        return [Item(str(p.relative_to(source)), [p], category, None) for p in photos]
    manifest = read_manifest(source)
    grouped: dict[str, Item] = {}
    for sample in manifest.samples:
        item = grouped.setdefault(sample.item_id, Item(sample.item_id, [], sample.category or category,
                                                       sample.sku or None))
        item.images.append(manifest.image_path(sample))
    return list(grouped.values())


SkuLookup = Callable[[str], SkuEntry]


def catalog_lookup(data_dir: Path, model: LoadedModel) -> SkuLookup:
    """sku -> what the service would compare it with, read from its database and store."""
    from inspection.service.catalog_store import ReferenceCache, entry_for
    from inspection.service.db import make_engine, make_session_factory
    from inspection.service.settings import Settings

    settings = Settings(data_dir=data_dir)  # RETURNS_DATABASE_URL, when set, wins as in the service
    if settings.database_url is None and not (data_dir / "inspection.db").is_file():
        raise InputError("no service database (inspection.db) in this folder", data_dir)
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    cache = ReferenceCache()

    def lookup(sku: str) -> SkuEntry:
        with sessions() as session:
            return entry_for(session, sku, model, cache)
    return lookup


def score_items(model: LoadedModel, items: list[Item], policy_path: Path | None,
                catalog: SkuLookup | None = None) -> Iterator[dict[str, Any]]:
    policy = load_policy(policy_path)
    for item in tqdm(items, desc="score", unit="item"):
        head = {"item_id": item.item_id, "images": [str(p) for p in item.images],
                "sku": item.sku}
        try:
            uploads = [Upload(path.read_bytes(), path.name) for path in item.images]
            entry = catalog(item.sku) if catalog is not None and item.sku else None
            score = inspect_item(model, policy, uploads, item.category, sku=entry)
        except OSError as exc:
            yield {**head, "error": f"cannot read a photo ({exc.strerror}: {exc.filename})"}
            continue
        except InputError as exc:
            yield {**head, "error": str(exc)}
            continue
        yield {**head, **score.result}


def main(args: argparse.Namespace) -> int:
    if not args.source.exists():
        raise InputError("no such folder or manifest", args.source)
    model = LoadedModel.load(args.bundle)
    items = items_from(args.source, args.category)
    catalog = catalog_lookup(args.catalog, model) if args.catalog is not None else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".partial")
    counts = {"items": 0, "flagged": 0, "errors": 0}
    with open(temporary, "w", encoding="utf-8") as handle:
        for record in score_items(model, items, args.policy, catalog):
            handle.write(json.dumps(record) + "\n")
            counts["items"] += 1
            counts["errors"] += "error" in record
            counts["flagged"] += bool(record.get("flags"))
    temporary.replace(args.out)
    print(f"scored {counts['items']} item(s) with {model.card.name} {model.card.version}: "
          f"{counts['flagged']} flagged, {counts['errors']} unreadable -> {args.out}")
    return 0
