"""Queries and writes, one function each, used by the routes, the operator page (`/ui`) and
`dataset export-reviews`. Functions take a Session and return ORM rows or public dicts; they
raise `ApiError`s (404 / 409) where the answer depends on who asks."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from inspection.pipeline import ItemScore
from inspection.service.errors import Conflict, Forbidden, NotFound, Unprocessable
from inspection.service.models import FlagRow, Inspection, Photo, Review
from inspection.service.settings import Principal
from inspection.service.storage import StoredPhoto
from inspection.service.validation import INSPECTION_ID_PATTERN

MAX_PAGE = 200
INSPECTION_ID = re.compile(INSPECTION_ID_PATTERN)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def save_inspection(session: Session, *, inspection_id: str, return_id: str, sku: str | None,
                    source: str, owner: str, score: ItemScore, stored: Sequence[StoredPhoto],
                    filenames: Sequence[str | None]) -> Inspection:
    result = score.result
    row = Inspection(
        id=inspection_id, return_id=return_id, sku=sku, category=result["category"],
        source=source, owner=owner, model_name=result["model"]["name"],
        model_version=result["model"]["version"], model_id=result["model"]["model_id"],
        disposition=result["decision"]["disposition"], refund=result["decision"]["refund"],
        flagged=bool(score.flags), result=result,
    )
    row.photos = [Photo(index=i, sha256=photo.sha256, path=photo.path, size_bytes=photo.size_bytes,
                        source=source, filename=filenames[i], predictions=score.photo_maps[i])
                  for i, photo in enumerate(stored)]
    row.flags = [FlagRow(kind=f.kind, label=f.label, photo_index=f.photo, score=f.score,
                         threshold=f.threshold, reason=f.reason) for f in score.flags]
    session.add(row)
    session.flush()
    return row


def photo_in_use(session: Session, sha256: str) -> bool:
    return session.scalar(select(exists().where(Photo.sha256 == sha256))) or False


def get_inspection_for(session: Session, inspection_id: str, principal: Principal) -> Inspection:
    """The inspection if this caller may see it; 404 otherwise, so its existence never leaks.
    A string that cannot be an id never reaches the database (a NUL byte was a 500 there)."""
    if not INSPECTION_ID.fullmatch(inspection_id):
        raise NotFound(f"no inspection {inspection_id[:40]!r}", "inspection_id")
    row = session.get(Inspection, inspection_id, options=[selectinload(Inspection.reviews)])
    if row is None or (not principal.reads_all and row.owner != principal.name):
        raise NotFound(f"no inspection {inspection_id!r}", "inspection_id")
    return row


def get_photo(inspection: Inspection, index: int) -> Photo:
    for photo in inspection.photos:
        if photo.index == index:
            return photo
    msg = f"inspection {inspection.id} has {len(inspection.photos)} photo(s); no photo {index}"
    raise NotFound(msg, "n")


def status_of(row: Inspection) -> str:
    return "reviewed" if row.reviews else ("flagged" if row.flagged else "clear")


def review_public(review: Review, viewer: Principal | None = None) -> dict[str, Any]:
    """A customer sees the outcome of the review on their own inspection, not who the
    operator was nor their internal note."""
    staff = viewer is None or viewer.role != "customer"
    return {"id": review.id, "reviewer": review.reviewer if staff else None,
            "decision": review.decision, "labels": review.labels,
            "disposition": review.disposition, "note": review.note if staff else None,
            "override": review.override, "created_at": as_utc(review.created_at)}


def inspection_public(row: Inspection, viewer: Principal | None = None) -> dict[str, Any]:
    """The stored answer plus its metadata and latest review (schemas.InspectionPublic)."""
    latest = row.reviews[-1] if row.reviews else None
    return {**row.result, "id": row.id, "created_at": as_utc(row.created_at),
            "return_id": row.return_id, "sku": row.sku, "source": row.source,
            "status": status_of(row), "review": review_public(latest, viewer) if latest else None}


@dataclass(frozen=True)
class QueueFilters:
    flag: str | None = None
    source: str | None = None
    sku: str | None = None


def _queue_conditions(filters: QueueFilters) -> list[Any]:
    conditions: list[Any] = [Inspection.flagged.is_(True),
                             ~exists().where(Review.inspection_id == Inspection.id)]
    if filters.flag:
        conditions.append(exists().where(and_(FlagRow.inspection_id == Inspection.id,
                                              FlagRow.kind == filters.flag)))
    if filters.source:
        conditions.append(Inspection.source == filters.source)
    if filters.sku:
        conditions.append(Inspection.sku == filters.sku)
    return conditions


def encode_cursor(row: Inspection) -> str:
    raw = f"{as_utc(row.created_at).isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, inspection_id = raw.split("|", 1)
        return datetime.fromisoformat(moment), inspection_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable("not a cursor this service issued", "cursor") from None


def review_queue(session: Session, filters: QueueFilters, limit: int = 50, offset: int = 0,
                 cursor: str | None = None) -> dict[str, Any]:
    """Flagged, unreviewed inspections, oldest first (schemas.QueuePage). A cursor (from the
    previous page's `next_cursor`) pages stably while new items arrive; offset also works."""
    limit = max(1, min(limit, MAX_PAGE))
    conditions = _queue_conditions(filters)
    total = session.scalar(select(func.count()).select_from(Inspection).where(*conditions)) or 0
    query = (select(Inspection).where(*conditions).options(selectinload(Inspection.flags),
                                                           selectinload(Inspection.photos))
             .order_by(Inspection.created_at, Inspection.id))
    if cursor:
        moment, last_id = decode_cursor(cursor)
        query = query.where(or_(Inspection.created_at > moment,
                                and_(Inspection.created_at == moment, Inspection.id > last_id)))
    else:
        query = query.offset(offset)
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [queue_item(row) for row in rows], "total": total, "limit": limit,
            "offset": 0 if cursor else offset,
            "next_cursor": encode_cursor(rows[-1]) if more and rows else None}


def queue_item(row: Inspection) -> dict[str, Any]:
    return {"id": row.id, "created_at": as_utc(row.created_at), "return_id": row.return_id,
            "sku": row.sku, "category": row.category, "source": row.source,
            "flags": row.result.get("flags", []), "disposition": row.disposition,
            "refund": row.refund, "photo_count": len(row.photos)}


def record_review(session: Session, row: Inspection, reviewer: Principal, *, decision: str,
                  labels: dict[str, list[str]], disposition: str | None, note: str | None,
                  override: bool = False) -> Review:
    """One review per inspection; a second one is a 409 unless an admin overrides.

    The check below answers the common case with a clear message; the database's unique
    (inspection_id, revision) is what holds when two reviews race past it together."""
    if row.reviews and not override:
        raise _already_reviewed(row.id, row.reviews[-1])
    if override and reviewer.role != "admin":
        raise Forbidden("only an admin key may override a review", "override")
    revision = max((r.revision for r in row.reviews), default=0) + 1
    review = Review(inspection_id=row.id, reviewer=reviewer.name, decision=decision,
                    labels=labels, disposition=disposition, note=note,
                    override=bool(row.reviews) and override, revision=revision)
    session.add(review)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        msg = (f"inspection {row.id} was reviewed by someone else at the same moment; "
               "reload it to see that review (an admin can override)")
        raise Conflict(msg, "inspection_id", code="already_reviewed") from None
    row.reviews.append(review)
    return review


def _already_reviewed(inspection_id: str, latest: Review) -> Conflict:
    msg = (f"inspection {inspection_id} was already reviewed by {latest.reviewer} at "
           f"{as_utc(latest.created_at).isoformat()}; an admin can override")
    return Conflict(msg, "inspection_id", code="already_reviewed")


def reviewed_inspections(session: Session, since: datetime | None = None) -> list[Inspection]:
    """Every inspection with a review (latest review newer than `since`), oldest first."""
    query = (select(Inspection).where(exists().where(Review.inspection_id == Inspection.id))
             .options(selectinload(Inspection.photos), selectinload(Inspection.reviews))
             .order_by(Inspection.created_at, Inspection.id))
    rows = list(session.scalars(query))
    if since is not None:
        rows = [row for row in rows if as_utc(row.reviews[-1].created_at) >= as_utc(since)]
    return rows
