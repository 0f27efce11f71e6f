"""A return as one case: every inspection of a return the caller may see, oldest first, with
photos, decisions, reviews and the customer <-> dock comparison, plus a timeline of what
happened when (schemas: case_schemas.ReturnCasePublic). Used by GET /v1/returns/{id}, the
operator page's timeline and the evidence packet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from inspection.service import crud
from inspection.service.case_photos import return_inspections
from inspection.service.errors import NotFound
from inspection.service.models import Inspection, Review
from inspection.service.settings import Principal


def readable_inspections(session: Session, return_id: str, principal: Principal) -> list[Inspection]:
    """Operators read every inspection of the return; anyone else only their own."""
    rows = return_inspections(session, return_id)
    return rows if principal.reads_all else [row for row in rows if row.owner == principal.name]


def visible_inspections(session: Session, return_id: str, principal: Principal) -> list[Inspection]:
    """The readable inspections of a return; a return with none of them is a 404 (its existence
    never leaks)."""
    rows = readable_inspections(session, return_id, principal)
    if not rows:
        raise NotFound(f"no return {return_id!r}", "return_id")
    return rows


def return_case(return_id: str, rows: list[Inspection]) -> dict[str, Any]:
    inspections = [{**crud.inspection_public(row),
                    "reviews": [crud.review_public(review) for review in row.reviews]}
                   for row in rows]
    return {"return_id": return_id,
            "sources": {source: sum(row.source == source for row in rows)
                        for source in ("customer", "station")},
            "comparison": case_comparison(rows),
            "events": timeline(rows),
            "inspections": inspections}


def case_comparison(rows: list[Inspection]) -> dict[str, Any]:
    """The latest comparison made, or why there is none."""
    compared = [row for row in rows
                if (row.result.get("case_comparison") or {}).get("status") == "compared"]
    if compared:
        return {"inspection_id": compared[-1].id, **compared[-1].result["case_comparison"]}
    sides = {row.source for row in rows}
    latest = next((row.result["case_comparison"] for row in reversed(rows)
                   if row.result.get("case_comparison")), None)
    if len(sides) < 2:
        (side,) = sides
        reason = (f"photos from one side only ({side}): nothing to compare until the "
                  f"{'station' if side == 'customer' else 'customer'} photographs the item")
    else:
        reason = (latest or {}).get("reason") or "these inspections were made before comparisons existed"
    return {"inspection_id": None, "status": "not_compared", "reason": reason, "checks": []}


def timeline(rows: list[Inspection]) -> list[dict[str, Any]]:
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    for row in rows:
        flags = [flag["kind"] for flag in row.result.get("flags", [])]
        summary = (f"{row.source} inspection, {len(row.photos)} photo(s): "
                   f"{row.disposition.replace('_', ' ')}, refund {row.refund.replace('_', ' ')}"
                   + (f"; flags: {', '.join(sorted(set(flags)))}" if flags else "; no flags"))
        events.append((crud.as_utc(row.created_at), 0, {
            "at": crud.as_utc(row.created_at), "kind": "inspection", "source": row.source,
            "inspection_id": row.id, "summary": summary}))
        for review in row.reviews:
            events.append((crud.as_utc(review.created_at), 1, {
                "at": crud.as_utc(review.created_at), "kind": "review", "source": row.source,
                "inspection_id": row.id, "summary": review_summary(row, review)}))
    return [event for _, _, event in sorted(events, key=lambda entry: (entry[0], entry[1]))]


def review_summary(row: Inspection, review: Review) -> str:
    verb = "confirmed" if review.decision == "confirm" else "corrected"
    parts = [f"{review.reviewer} {verb} the {row.source} inspection"]
    if review.disposition:
        parts.append(f", disposition {review.disposition.replace('_', ' ')}")
    if review.override:
        parts.append(" (admin override)")
    if review.note:
        parts.append(f": {review.note}")
    return "".join(parts)
