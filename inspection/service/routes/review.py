"""The review queue: flagged items an operator has not reviewed yet, oldest first, and the
operator's decision on one of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from inspection.service import crud
from inspection.service.deps import EngineDep, OperatorDep, PolicyDep, SessionDep
from inspection.service.errors import Unprocessable
from inspection.service.schemas import InspectionPublic, QueuePage, ReviewCreate, Source
from inspection.service.validation import (
    CursorQuery,
    FlagQuery,
    InspectionId,
    OffsetQuery,
    SkuQuery,
    check_disposition,
    check_note,
)
from inspection.taxonomy import Taxonomy

router = APIRouter(tags=["review"])


@router.get("/v1/review-queue", response_model=QueuePage, summary="Flagged items to review")
def read_review_queue(
    caller: OperatorDep, session: SessionDep,
    flag: FlagQuery = None,
    source: Annotated[Source | None, Query()] = None,
    sku: SkuQuery = None,
    limit: Annotated[int, Query(ge=1, le=crud.MAX_PAGE)] = 50,
    offset: OffsetQuery = 0,
    cursor: CursorQuery = None,
) -> dict[str, object]:
    filters = crud.QueueFilters(flag=flag, source=source, sku=sku)
    return crud.review_queue(session, filters, limit=limit, offset=offset, cursor=cursor)


@router.post("/v1/inspections/{inspection_id}/review", response_model=InspectionPublic,
             status_code=201, summary="Confirm or correct the model's answer",
             responses={409: {"description": "already reviewed (an admin may override)"}})
def review_inspection(inspection_id: InspectionId, review: ReviewCreate, caller: OperatorDep,
                      session: SessionDep, model: EngineDep, policy: PolicyDep) -> dict[str, object]:
    row = crud.get_inspection_for(session, inspection_id, caller)
    labels = review.labels if review.decision == "correct" else {}
    check_review_labels(labels, model.engine.taxonomy)
    check_disposition(review.disposition, policy, row.disposition)
    check_note(review.note)
    crud.record_review(session, row, caller, decision=review.decision, labels=labels,
                       disposition=review.disposition, note=review.note, override=review.override)
    session.commit()
    return crud.inspection_public(row)


def check_review_labels(labels: dict[str, list[str]], taxonomy: Taxonomy) -> None:
    """Every corrected label must be one the taxonomy knows; one label for a single head."""
    for head_name, values in labels.items():
        field = f"labels.{head_name}"
        if not taxonomy.has_head(head_name):
            raise Unprocessable(f"unknown head {head_name!r}; heads: {taxonomy.head_names}", field)
        head = taxonomy.head(head_name)
        if len(set(values)) != len(values):
            raise Unprocessable(f"{head_name} lists a label more than once: {values}", field)
        unknown = [value for value in values if value not in head.labels]
        if unknown:
            raise Unprocessable(f"unknown {head_name} label(s) {unknown}; known: {list(head.labels)}",
                                field)
        if head.type == "single" and len(values) != 1:
            raise Unprocessable(f"{head_name} takes exactly one label, got {values}", field)
