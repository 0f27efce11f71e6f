"""`returns-inspect catalog add|list|remove`: the catalog from the command line, on the same
database and photo store as the service (RETURNS_DATA_DIR, RETURNS_DATABASE_URL, ...) and through
the same code (inspection/service/catalog_store.py), so a SKU added here serves at once.

    returns-inspect catalog add --sku PHONE-X --category phone photos/phone-x/   (or files)
    returns-inspect catalog list
    returns-inspect catalog remove --sku PHONE-X
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inspection.decide import load_policy
from inspection.errors import InputError
from inspection.loaded_model import LoadedModel
from inspection.pipeline import Upload
from inspection.score_sources import PHOTO_SUFFIXES
from inspection.service import catalog_store
from inspection.service.db import make_engine, make_session_factory, session_scope, upgrade_to_head
from inspection.service.errors import ApiError
from inspection.service.routes.catalog import parse_kit
from inspection.service.settings import Settings
from inspection.service.storage import PhotoStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One module serves add, list and remove; the parser's name says which is being built."""
    parser.add_argument("--data-dir", type=Path, help="default: RETURNS_DATA_DIR or ./data")
    action = parser.prog.split()[-1]
    if action in ("add", "remove"):
        parser.add_argument("--sku", required=True)
    if action == "add":
        parser.add_argument("--bundle", type=Path, help="default: RETURNS_BUNDLE_DIR or models/default")
        parser.add_argument("--category", help="one of the model's categories (optional)")
        parser.add_argument("--display-name")
        parser.add_argument("--kit", help="comma-separated accessories; replaces the category's kit")
        parser.add_argument("photos", nargs="+", type=Path, help="photo files or folders of photos")


def photo_files(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their photos (sorted); a missing path is an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise InputError(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in the folder", path)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError("no such file or folder", path)
    return files


@contextmanager
def opened(settings: Settings) -> Iterator[tuple[object, PhotoStore]]:
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade_to_head(engine)
        with session_scope(make_session_factory(engine)) as session:
            yield session, PhotoStore(settings.resolved_photo_dir)
    finally:
        engine.dispose()


def main(args: argparse.Namespace) -> int:
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    if getattr(args, "bundle", None):
        overrides["bundle_dir"] = args.bundle
    settings = Settings(**overrides)
    try:
        return {"add": add, "list": show, "remove": remove}[args.subcommand](args, settings)
    except ApiError as exc:  # the same refusals the API answers with a 4xx
        raise InputError(exc.message, exc.field) from None


def add(args: argparse.Namespace, settings: Settings) -> int:
    files = photo_files(args.photos)
    uploads = [Upload(path.read_bytes(), str(path)) for path in files]
    model = LoadedModel.load(settings.bundle_dir)
    details = catalog_store.SkuDetails(args.sku, args.category, args.display_name, parse_kit(args.kit))
    with opened(settings) as (session, store):
        row, left_out = catalog_store.register(session, store, model, load_policy(settings.policy_file),
                                               details, uploads, settings.max_pixels)
        catalog_store.commit(session, row.sku)
        reference = catalog_store.current_reference(row, model.card.model_id)
        assert reference is not None  # register() always builds one
        limits = reference.thresholds
        print(f"{row.sku}: {len(row.photos)} reference photo(s), revision {row.revision}, built "
              f"by {model.card.model_id} in {reference.build_ms:.0f} ms; similarity >= "
              f"{limits['similarity']:.3f}, anomaly < {limits['anomaly']:.2f} "
              f"({limits['method']}, {limits['false_flag_target']:.0%} false-flag target)")
    for refused in left_out:
        print(f"  left out {refused['photo']}: {' '.join(refused['reasons'])}")
    return 0


def show(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as (session, _):
        rows = catalog_store.list_skus(session)
        for row in rows:
            models = ", ".join(f"{r.model_id}{'' if r.revision == row.revision else ' (old)'}"
                               for r in row.references) or "none yet"
            print(f"{row.sku:<24} {row.category or '-':<12} {len(row.photos):>3} photo(s)  "
                  f"revision {row.revision}  built by: {models}")
    if not rows:
        print("the catalog is empty")
    return 0


def remove(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as (session, _):
        catalog_store.remove(session, args.sku)
    print(f"removed {args.sku}; its inspections fall back to the category")
    return 0
