"""The catalog in the database and the photo store, shared by the API (routes/catalog.py), the
CLI (`returns-inspect catalog`) and the rebuild after a model reload.

A new set of reference photos is decoded, checked and built into a reference completely before
anything is written; then one transaction swaps the SKU's photos and references. Until that
commit the previous references keep serving, and a refused set leaves nothing behind in the
database.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from threading import Lock
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from inspection.catalog import (
    MAX_REFERENCE_PHOTOS,
    CatalogUnavailable,
    SkuEntry,
    SkuReference,
    build_reference,
)
from inspection.catalog_fit import TooUniform
from inspection.decide import Policy
from inspection.images import DEFAULT_MAX_PIXELS, DecodedPhoto
from inspection.loaded_model import LoadedModel
from inspection.pipeline import Upload, decode_uploads, photo_where
from inspection.quality import assess_quality
from inspection.service.crud import as_utc
from inspection.service.errors import Conflict, NotFound, Unprocessable
from inspection.service.models import CatalogPhoto, CatalogReference, CatalogSku, utcnow
from inspection.service.storage import PhotoStore

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
SKU_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}")  # safe in a URL path and a file name


@dataclass(frozen=True)
class SkuDetails:
    sku: str
    category: str | None = None
    display_name: str | None = None
    accessory_kit: tuple[str, ...] | None = None


def check_details(details: SkuDetails, model: LoadedModel) -> None:
    """A SKU name, a category and a kit the model knows (a category is optional: a SKU outside
    the taxonomy still gets the catalog's checks)."""
    if not SKU_PATTERN.fullmatch(details.sku):
        raise Unprocessable(f"SKU {details.sku!r} must be 1-200 letters, digits, '.', '_' or '-', "
                            "starting with a letter or digit", "sku")
    taxonomy = model.engine.taxonomy
    if details.category is not None and details.category not in taxonomy.categories:
        raise Unprocessable(f"unknown category {details.category!r}; known: {taxonomy.categories}",
                            "category")
    if details.accessory_kit is not None and taxonomy.has_head("accessories"):
        known = taxonomy.head("accessories").labels
        unknown = sorted(set(details.accessory_kit) - set(known))
        if unknown:
            raise Unprocessable(f"unknown accessories {unknown}; known: {list(known)}",
                                "accessory_kit")


def usable_photos(uploads: Sequence[Upload], model: LoadedModel, policy: Policy,
                  max_pixels: int = DEFAULT_MAX_PIXELS
                  ) -> tuple[list[int], list[DecodedPhoto], list[dict[str, Any]]]:
    """Decode every upload (an unreadable one is a 422 naming it) and keep those the quality
    checks accept: (kept indexes, their decoded photos, the refused ones with reasons)."""
    if not 1 <= len(uploads) <= MAX_REFERENCE_PHOTOS:
        raise Unprocessable(f"send 1 to {MAX_REFERENCE_PHOTOS} reference photos, got "
                            f"{len(uploads)}", "photos")
    decoded = decode_uploads(uploads, model.engine.input_size, max_pixels)
    kept, refused = [], []
    for index, photo in enumerate(decoded):
        quality = assess_quality(photo.rgb, photo.original_size, policy.quality)
        if quality.usable:
            kept.append(index)
        else:
            refused.append({"photo": photo_where(index, uploads[index].filename),
                            "reasons": [check.reason for check in quality.problems]})
    if not kept:
        detail = "; ".join(f"{r['photo']}: {' '.join(r['reasons'])}" for r in refused)
        raise Unprocessable(f"no usable reference photo ({detail})", "photos", code="no_usable_photo")
    return kept, [decoded[i] for i in kept], refused


def build(model: LoadedModel, photos: Sequence[DecodedPhoto]) -> tuple[SkuReference, float]:
    """The reference and how long it took (ms); refusals become 422s."""
    started = time.perf_counter()
    try:
        reference = build_reference(model.engine, [photo.rgb for photo in photos])
    except TooUniform as exc:
        raise Unprocessable(str(exc), "photos", code="too_uniform") from None
    except CatalogUnavailable as exc:
        raise Unprocessable(str(exc), "model", code="catalog_unavailable") from None
    return reference, round((time.perf_counter() - started) * 1000.0, 1)


def reference_row(sku: str, revision: int, reference: SkuReference, build_ms: float
                  ) -> CatalogReference:
    return CatalogReference(sku=sku, model_id=reference.model_id, revision=revision,
                            build_ms=build_ms, thresholds=reference.thresholds.to_dict(),
                            bank_size=len(reference.bank), data=reference.to_bytes())


def register(session: Session, store: PhotoStore, model: LoadedModel, policy: Policy,
             details: SkuDetails, uploads: Sequence[Upload],
             max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[CatalogSku, list[dict[str, Any]]]:
    """Check, build, then swap the SKU's photos and reference in the session (the caller
    commits). Returns the row and the photos left out as unusable."""
    check_details(details, model)
    kept, decoded, refused = usable_photos(uploads, model, policy, max_pixels)
    reference, build_ms = build(model, decoded)
    stored = [store.put(uploads[i].data, photo.format) for i, photo in zip(kept, decoded, strict=True)]
    row = session.get(CatalogSku, details.sku, with_for_update=True)
    if row is None:
        row = CatalogSku(sku=details.sku, revision=0)
        session.add(row)
    row.category, row.display_name = details.category, details.display_name
    row.accessory_kit = list(details.accessory_kit) if details.accessory_kit is not None else None
    row.revision += 1
    row.updated_at = utcnow()
    row.photos.clear()
    row.references.clear()
    session.flush()  # the old photo indexes and references go before the new ones arrive
    row.photos.extend(CatalogPhoto(index=n, sha256=photo.sha256, path=photo.path,
                                   size_bytes=photo.size_bytes, filename=uploads[i].filename)
                      for n, (i, photo) in enumerate(zip(kept, stored, strict=True)))
    row.references.append(reference_row(row.sku, row.revision, reference, build_ms))
    session.flush()
    return row, refused


def commit(session: Session, sku: str) -> None:
    """Commit a registration; two first registrations of one SKU at once: the second is a 409."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"SKU {sku!r} was registered by another request at the same moment; "
                       "send it again to replace that set", "sku") from None


def get_sku(session: Session, sku: str) -> CatalogSku:
    if not SKU_PATTERN.fullmatch(sku):  # no such SKU can exist; never sent to the database
        raise NotFound(f"no SKU {sku[:40]!r} in the catalog", "sku")
    row = session.get(CatalogSku, sku, options=[selectinload(CatalogSku.photos),
                                                selectinload(CatalogSku.references)])
    if row is None:
        raise NotFound(f"no SKU {sku!r} in the catalog", "sku")
    return row


def remove(session: Session, sku: str) -> None:
    session.delete(get_sku(session, sku))
    session.flush()


def list_skus(session: Session) -> list[CatalogSku]:
    query = (select(CatalogSku).options(selectinload(CatalogSku.photos),
                                        selectinload(CatalogSku.references))
             .order_by(CatalogSku.sku))
    return list(session.scalars(query))


def current_reference(row: CatalogSku, model_id: str) -> CatalogReference | None:
    """The reference this model built from the SKU's current photos, if it exists yet."""
    return next((r for r in row.references if r.model_id == model_id and r.revision == row.revision),
                None)


class ReferenceCache:
    """Parsed references, so an inspection does not unpack a bank from the database each time.
    A row never changes (a new set is a new row); the key adds the SKU and build time to the id
    because SQLite may hand a deleted row's id to the next row."""

    def __init__(self, size: int = 256):
        self._size = size
        self._items: OrderedDict[tuple[int, str, str], SkuReference] = OrderedDict()
        self._lock = Lock()

    def get(self, row: CatalogReference) -> SkuReference:
        key = (row.id, row.sku, as_utc(row.built_at).isoformat())
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        reference = SkuReference.from_bytes(row.data)
        with self._lock:
            self._items[key] = reference
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return reference


def entry_for(session: Session, sku: str, model: LoadedModel, cache: ReferenceCache) -> SkuEntry:
    """What an inspection declared as `sku` is compared with; a SKU not in the catalog (or not
    rebuilt for this model yet) falls back to the category, and the note says so."""
    row = session.get(CatalogSku, sku)
    if row is None:
        return SkuEntry(sku, note=f"SKU {sku!r} is not in the catalog; compared with the category")
    kit = tuple(row.accessory_kit) if row.accessory_kit is not None else None
    found = session.scalars(select(CatalogReference).where(
        CatalogReference.sku == sku, CatalogReference.model_id == model.card.model_id,
        CatalogReference.revision == row.revision)).first()
    if found is None:
        note = (f"SKU {sku!r}'s reference for model {model.card.model_id} is still being built; "
                "compared with the category")
        return SkuEntry(sku, row.category, kit, None, registered=True, note=note)
    return SkuEntry(sku, row.category, kit, cache.get(found), registered=True,
                    photo_sha256=tuple(photo.sha256 for photo in row.photos))


def photo_path_by_sha(session: Session, sha256: str) -> str | None:
    """Where a reference photo with this content is stored, if any SKU still lists it."""
    if not SHA256_PATTERN.fullmatch(sha256):
        return None
    return session.scalars(select(CatalogPhoto.path).where(CatalogPhoto.sha256 == sha256)).first()


def sku_public(row: CatalogSku, model_id: str | None, photo_url: str) -> dict[str, Any]:
    """schemas.CatalogSkuPublic; `photo_url` is a format string taking sku and n."""
    current = current_reference(row, model_id) if model_id else None
    return {
        "sku": row.sku, "category": row.category, "display_name": row.display_name,
        "accessory_kit": row.accessory_kit, "revision": row.revision,
        "created_at": as_utc(row.created_at), "updated_at": as_utc(row.updated_at),
        "status": "ready" if current else "building",
        "photo_count": len(row.photos),
        "photos": [{"index": p.index, "filename": p.filename, "sha256": p.sha256,
                    "url": photo_url.format(sku=row.sku, n=p.index)} for p in row.photos],
        "references": [{"model_id": r.model_id, "revision": r.revision, "built_at": as_utc(r.built_at),
                        "build_ms": r.build_ms, "bank_size": r.bank_size,
                        "thresholds": r.thresholds,
                        "current": r is current} for r in row.references],
        "thresholds": current.thresholds if current else None,
    }


def reference_photo_path(row: CatalogSku, index: int) -> str:
    for photo in row.photos:
        if photo.index == index:
            return photo.path
    raise NotFound(f"SKU {row.sku} has {len(row.photos)} reference photo(s); no photo {index}", "n")

