"""The catalog: a SKU's reference photos, so a returned item is compared with the product that
was sold, from day one and without training (inspection/catalog.py). Writes are the admin's;
stations and operators may read. A refused set of photos changes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import FileResponse

from inspection.catalog import MAX_REFERENCE_PHOTOS
from inspection.service import catalog_store
from inspection.service.deps import (
    AdminDep,
    EngineDep,
    PolicyDep,
    SessionDep,
    SettingsDep,
    StaffDep,
    StoreDep,
)
from inspection.service.errors import NotFound
from inspection.service.routes.inspections import MEDIA_TYPES, _read_uploads
from inspection.service.schemas import CatalogList, CatalogRegistered, CatalogSkuPublic
from inspection.service.validation import LINE_PATTERN

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])
PHOTO_URL = "/v1/catalog/{sku}/photos/{n}"


def parse_kit(text: str | None) -> tuple[str, ...] | None:
    """`charger, cable` -> ('charger', 'cable'); absent -> None (the category's kit); an empty
    string -> () (this SKU comes with nothing)."""
    if text is None:
        return None
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


@router.put("/{sku}", response_model=CatalogRegistered, summary="Register or replace a SKU's "
            "reference photos", responses={422: {"description": "no usable photo, not an image, "
                                                 "too many, unknown category, too uniform"},
                                           409: {"description": "registered concurrently"}})
def put_sku(
    sku: str, caller: AdminDep, model: EngineDep, session: SessionDep, settings: SettingsDep,
    policy: PolicyDep, store: StoreDep,
    photos: Annotated[list[UploadFile], File(description=f"1-{MAX_REFERENCE_PHOTOS} photos of "
                                                         "good units of the SKU")],
    category: Annotated[str | None, Form(max_length=100, pattern=LINE_PATTERN)] = None,
    display_name: Annotated[str | None, Form(max_length=300, pattern=LINE_PATTERN)] = None,
    accessory_kit: Annotated[str | None, Form(max_length=2000, pattern=LINE_PATTERN, description=(
        "comma-separated accessories that come with this SKU; replaces the category's kit"))] = None,
) -> dict[str, object]:
    details = catalog_store.SkuDetails(sku, category or None, display_name or None,
                                       parse_kit(accessory_kit))
    catalog_store.check_details(details, model)  # before reading 50 photos
    uploads = _read_uploads(photos, settings, model.engine.input_size,
                            max_photos=MAX_REFERENCE_PHOTOS)
    row, left_out = catalog_store.register(session, store, model, policy, details, uploads,
                                           settings.max_pixels)
    catalog_store.commit(session, sku)
    return {**catalog_store.sku_public(row, model.card.model_id, PHOTO_URL), "left_out": left_out}


@router.get("", response_model=CatalogList, summary="Every SKU in the catalog")
def list_catalog(caller: StaffDep, model: EngineDep, session: SessionDep) -> dict[str, object]:
    return {"items": [catalog_store.sku_public(row, model.card.model_id, PHOTO_URL)
                      for row in catalog_store.list_skus(session)]}


@router.get("/{sku}", response_model=CatalogSkuPublic, summary="A SKU: photos, thresholds, "
            "when and by which model its reference was built")
def read_sku(sku: str, caller: StaffDep, model: EngineDep, session: SessionDep) -> dict[str, object]:
    return catalog_store.sku_public(catalog_store.get_sku(session, sku), model.card.model_id,
                                    PHOTO_URL)


@router.delete("/{sku}", status_code=204, summary="Remove a SKU; its inspections fall back to "
               "the category")
def delete_sku(sku: str, caller: AdminDep, session: SessionDep) -> Response:
    catalog_store.remove(session, sku)
    session.commit()
    return Response(status_code=204)


@router.get("/{sku}/photos/{n}", response_class=FileResponse, summary="A reference photo")
def read_reference_photo(sku: str, n: int, caller: StaffDep, session: SessionDep,
                         store: StoreDep) -> FileResponse:
    path = store.path(catalog_store.reference_photo_path(catalog_store.get_sku(session, sku), n))
    if not path.is_file():
        raise NotFound(f"reference photo {n} of SKU {sku} is no longer stored", "n")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))


def reference_photo_by_sha(sha256: str, session: SessionDep, store: StoreDep) -> FileResponse:
    """A reference photo by its content, while some SKU still lists it (for /ui)."""
    relative = catalog_store.photo_path_by_sha(session, sha256)
    path = store.path(relative) if relative else None
    if path is None or not path.is_file():
        raise NotFound("that catalog photo is no longer in the catalog", "sha256")
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))
