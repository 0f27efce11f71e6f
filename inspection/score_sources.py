"""What `returns-inspect score` reads: items (the photos of one returned product, with its
category and sku) from a folder, a manifest, or the service database's stored inspections.

An item names its photos by location (a local path or an fsspec URL such as
`s3://bucket/photos/ab/cd….jpg`), not by bytes: with `--engine ray` the workers read the photos
themselves, so the driver never carries a backlog's bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inspection.errors import InputError
from inspection.manifest import read_manifest

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".heic", ".heif"}


@dataclass(frozen=True)
class Item:
    item_id: str
    images: list[str]  # local paths or fsspec URLs
    category: str | None
    sku: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Item:
        return cls(**json.loads(text))


def read_location(location: str) -> bytes:
    """The bytes of a photo at a path or a URL (s3://, gs://, … through fsspec)."""
    if "://" not in location:
        return Path(location).read_bytes()
    import fsspec  # only URLs need it

    with fsspec.open(location, "rb") as handle:
        return handle.read()


def items_from(source: Path, category: str | None) -> list[Item]:
    """A folder: one item per photo (of `category`); a manifest: photos grouped by item_id."""
    if not source.exists():
        raise InputError("no such folder or manifest", source)
    if source.is_dir():
        photos = sorted(p for p in source.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
        if not photos:
            raise InputError(f"no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in the folder", source)
        return [Item(str(p.relative_to(source)), [str(p)], category, None) for p in photos]
    manifest = read_manifest(source)
    grouped: dict[str, Item] = {}
    for sample in manifest.samples:
        item = grouped.setdefault(sample.item_id, Item(sample.item_id, [], sample.category or category,
                                                       sample.sku or None))
        item.images.append(str(manifest.image_path(sample)))
    return list(grouped.values())


def items_from_database(database_url: str, photo_store: str) -> list[Item]:
    """Every stored inspection, oldest first, its photos read from the service's photo store."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import selectinload

    from inspection.service.db import make_engine, make_session_factory
    from inspection.service.models import Inspection
    from inspection.service.storage import PhotoStore

    store = PhotoStore(photo_store)
    try:
        engine = make_engine(database_url)
        with make_session_factory(engine)() as session:
            rows = session.scalars(select(Inspection).options(selectinload(Inspection.photos))
                                   .order_by(Inspection.created_at, Inspection.id)).all()
            items = [_database_item(row, store.location) for row in rows]
        engine.dispose()
    except SQLAlchemyError as exc:
        raise InputError(f"cannot read stored inspections ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]})", "--from-db") from None
    return items


def _database_item(row: Any, location: Any) -> Item:
    return Item(row.id, [location(photo.path) for photo in row.photos], row.category, row.sku)
