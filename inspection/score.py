"""`returns-inspect score DIR|MANIFEST|--from-db URL --bundle models/default --out OUT`

Scores photos offline through the service's own code path (`inspect_item`: same decoding,
quality checks, model, flags and decision), one record per item. A folder is scored photo
by photo, each photo one item of `--category`; a manifest groups its rows by `item_id`, with
each item's category and sku; `--from-db` re-scores the service's stored inspections, reading
their photos from its photo store. A photo that cannot be read becomes an `error` record, so
one bad file does not stop a backlog. With `--catalog DATA_DIR`, an item whose sku is in that
service's catalog is compared with the SKU's reference photos, as the API would.

`--out results.jsonl` writes one JSON file; `--out FOLDER` writes Parquet + JSONL parts and
resumes after a kill (inspection/score_output.py). `--engine ray` spreads the same work over
a Ray cluster (inspection/score_ray.py); without it everything runs in this process.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from inspection.atomic import replacing
from inspection.card import verify_bundle
from inspection.catalog import SkuEntry
from inspection.decide import Policy, load_policy
from inspection.errors import InputError
from inspection.loaded_model import LoadedModel
from inspection.pipeline import Upload, inspect_item
from inspection.score_output import PartWriter, check_model, plan_parts, written_item_ids
from inspection.score_sources import Item, items_from, items_from_database, read_location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, nargs="?",
                        help="a folder of photos or a manifest (CSV/JSONL); or use --from-db")
    parser.add_argument("--from-db", metavar="DATABASE_URL",
                        help="re-score the service's stored inspections in this database")
    parser.add_argument("--photo-store", help="with --from-db: the service's photo folder or "
                        "URL (default: RETURNS_PHOTO_STORE / RETURNS_PHOTO_DIR / data/photos)")
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--out", type=Path, default=Path("results.jsonl"),
                        help="a .jsonl file, or a folder of resumable Parquet + JSONL parts")
    parser.add_argument("--category", help="product category of a folder's photos")
    parser.add_argument("--policy", type=Path, help="decision policy YAML (default: packaged)")
    parser.add_argument("--catalog", type=Path, metavar="DATA_DIR",
                        help="a service's data folder: compare items with their SKU's catalog photos")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process; ray: Ray Data actors (pip install -e '.[ray]')")
    parser.add_argument("--address", help="Ray cluster to join: auto, ray://host:10001 "
                        "(default: start a local Ray)")
    parser.add_argument("--actors", type=_positive, default=2, help="Ray actors, one model each")
    parser.add_argument("--batch-size", type=_positive, default=16, help="items per Ray batch")
    parser.add_argument("--threads-per-actor", type=_positive, default=1,
                        help="ONNX Runtime threads (and reserved CPUs) per Ray actor")
    parser.add_argument("--part-size", type=_positive, default=1000,
                        help="items per output part (a folder --out)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be at least 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


SkuLookup = Callable[[str], SkuEntry]


def catalog_database_url(data_dir: Path) -> str:
    """The database of the service whose catalog `--catalog` names (checked before scoring)."""
    from inspection.service.settings import Settings

    settings = Settings(data_dir=data_dir)  # RETURNS_DATABASE_URL, when set, wins as in the service
    if settings.database_url is None and not (data_dir / "inspection.db").is_file():
        raise InputError("no service database (inspection.db) in this folder", data_dir)
    return settings.resolved_database_url


def catalog_lookup(data_dir: Path, model: LoadedModel) -> SkuLookup:
    """sku -> what the service would compare it with, read from its database and store."""
    from inspection.service.catalog_store import ReferenceCache, entry_for
    from inspection.service.db import make_engine, make_session_factory

    sessions = make_session_factory(make_engine(catalog_database_url(data_dir)))
    cache = ReferenceCache()

    def lookup(sku: str) -> SkuEntry:
        with sessions() as session:
            return entry_for(session, sku, model, cache)
    return lookup


def score_item(model: LoadedModel, policy: Policy, item: Item,
               catalog: SkuLookup | None = None) -> dict[str, Any]:
    """One item's record: its answer, or an `error` naming the photo that could not be used."""
    head = {"item_id": item.item_id, "images": list(item.images), "sku": item.sku}
    try:
        uploads = [Upload(read_location(location), Path(location).name) for location in item.images]
        entry = catalog(item.sku) if catalog is not None and item.sku else None
        score = inspect_item(model, policy, uploads, item.category, sku=entry)
    except OSError as exc:
        return {**head, "error": f"cannot read a photo ({exc.strerror or exc}: {exc.filename})"}
    except InputError as exc:
        return {**head, "error": str(exc)}
    return {**head, **score.result}


def score_items(model: LoadedModel, items: list[Item], policy_path: Path | None,
                catalog: SkuLookup | None = None) -> Iterator[dict[str, Any]]:
    policy = load_policy(policy_path)
    for item in items:
        yield score_item(model, policy, item, catalog)


def load_items(args: argparse.Namespace) -> list[Item]:
    if args.from_db:
        if args.source is not None:
            raise InputError("give a folder/manifest or --from-db, not both", "--from-db")
        from inspection.service.settings import Settings

        store = args.photo_store or Settings().resolved_photo_store
        return items_from_database(args.from_db, str(store))
    if args.source is None:
        raise InputError("nothing to score: give a folder, a manifest or --from-db", "source")
    return items_from(args.source, args.category)


def main(args: argparse.Namespace) -> int:
    if args.address and args.engine != "ray":
        raise InputError("a Ray cluster address needs --engine ray", "--address")
    card = verify_bundle(args.bundle)  # a bad bundle fails here, not in every Ray actor
    if args.catalog is not None:
        catalog_database_url(args.catalog)  # likewise a catalog folder without a database
    items = load_items(args)
    if args.out.suffix == ".jsonl":
        if args.engine == "ray":
            raise InputError("--engine ray writes a folder of parts; give --out a folder", "--out")
        return _write_jsonl(args, items, f"{card.name} {card.version}")
    check_model(args.out, card.model_id, f"{card.name} {card.version}")
    done = written_item_ids(args.out)
    pending = [item for item in items if item.item_id not in done]
    writer = PartWriter(args.out, plan_parts(args.out, pending, args.part_size))
    counts = _count(_through(writer, _records(args, pending)))
    print(f"scored {counts['items']} item(s) with {card.name} {card.version} "
          f"({len(items) - len(pending)} already in {args.out}): {counts['flagged']} flagged, "
          f"{counts['errors']} unreadable -> {writer.written} new part(s) in {args.out}")
    return 0


def _records(args: argparse.Namespace, items: list[Item]) -> Iterator[dict[str, Any]]:
    if not items:  # a resumed backlog that is already complete starts no engine
        return
    if args.engine == "ray":
        from inspection.score_ray import RayOptions, score_on_ray

        options = RayOptions(args.address, args.actors, args.batch_size, args.threads_per_actor)
        records = score_on_ray(items, args.bundle, args.policy, options, args.catalog)
    else:
        model = LoadedModel.load(args.bundle)
        catalog = catalog_lookup(args.catalog, model) if args.catalog is not None else None
        records = score_items(model, items, args.policy, catalog)
    yield from tqdm(records, total=len(items), desc=f"score ({args.engine})", unit="item")


def _write_jsonl(args: argparse.Namespace, items: list[Item], model: str) -> int:
    with replacing(args.out) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        counts = _count(_lines(handle, _records(args, items)))
    print(f"scored {counts['items']} item(s) with {model}: {counts['flagged']} flagged, "
          f"{counts['errors']} unreadable -> {args.out}")
    return 0


def _through(writer: PartWriter, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for record in records:
        writer.add(record)
        yield record


def _lines(handle: Any, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for record in records:
        handle.write(json.dumps(record) + "\n")
        yield record


def _count(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = {"items": 0, "flagged": 0, "errors": 0}
    for record in records:
        counts["items"] += 1
        counts["errors"] += "error" in record
        counts["flagged"] += bool(record.get("flags"))
    return counts
