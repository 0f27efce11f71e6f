"""What the operator page looks up beyond what the JSON API answers: the queue's next item, the
notice after a saved review, the taxonomy the correction form offers, and the words for a
refused review. Each reads through `crud`, so the page and the API see the same queue."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.orm import Session

from inspection.service import crud
from inspection.service.deps import ServiceState
from inspection.service.errors import ApiError
from inspection.service.models import Inspection
from inspection.service.settings import Principal
from inspection.service.ui_views import when
from inspection.taxonomy import Taxonomy, load_taxonomy


def saved_notice(session: Session, caller: Principal, saved: str | None) -> dict[str, str] | None:
    if not saved:
        return None
    try:
        row = crud.get_inspection_for(session, saved, caller)
    except ApiError:
        return None
    if not row.reviews:
        return None
    return {"kind": "ok", "text": f"Review of return {row.return_id} saved."}


def taxonomy_for(state: ServiceState) -> Taxonomy:
    model = state.holder.current
    return model.engine.taxonomy if model is not None else load_taxonomy()


def next_item(session: Session, row: Inspection, filters: crud.QueueFilters) -> str | None:
    """The queue's item after this one (same filters); from the oldest again at the end."""
    after = crud.review_queue(session, filters, limit=1, cursor=crud.encode_cursor(row))["items"]
    if after:
        return after[0]["id"]
    first = crud.review_queue(session, filters, limit=2)["items"]
    others = [item["id"] for item in first if item["id"] != row.id]
    return others[0] if others else None


def refusal(exc: ApiError, row: Inspection) -> str:
    """What the operator reads when the API refuses the review: for a 409, who was first."""
    if exc.status != 409 or not row.reviews:
        return f"Not saved: {exc.message}"
    first = row.reviews[-1]
    return (f"Not saved: this item was already reviewed by {first.reviewer} at "
            f"{when(crud.as_utc(first.created_at))} (shown below); an admin can override it through the API.")


def first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ()))
    return f"{field}: {first['msg']}" if field else str(first["msg"])
