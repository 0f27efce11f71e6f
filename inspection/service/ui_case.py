"""The operator page's view of a return as one case (/ui/returns/{return_id}): a timeline of
inspections and reviews, the customer <-> dock comparison with each flag's pair of photos side
by side and their heatmaps, and the evidence packets. Same queries as the API (case_view), same
sign-in as the review queue (ui.ui_caller)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from inspection.case_compare import CHANGED
from inspection.service import crud, evidence
from inspection.service.case_view import readable_inspections, return_case, visible_inspections
from inspection.service.deps import SessionDep, StateDep
from inspection.service.errors import ApiError
from inspection.service.routes.returns import PACKET_HEADERS
from inspection.service.ui import error_page, render, ui_caller, ui_root

router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class PairPhoto:
    side: str  # station | customer
    inspection_id: str
    number: int  # 1-based
    url: str
    heatmap_url: str | None
    heatmap_title: str


@dataclass(frozen=True)
class PairView:
    kind: str
    label: str | None
    flagged: bool
    score: float
    threshold: float | None
    reason: str
    photos: tuple[PairPhoto, PairPhoto]


def pair_views(comparison: Mapping[str, Any], root_url: str,
               peaks: Mapping[str, float] | None = None) -> list[PairView]:
    """Each comparison check with its two photos and the heatmap that explains it: the patches
    the customer never showed (changed item) or the damage label's map on both (new damage),
    both drawn on one colour scale (`peaks`: label -> top of the scale)."""
    views = []
    for check in comparison.get("checks", []):
        photos = []
        for side in ("station", "customer"):
            place = check[side]
            url = f"{root_url}/items/{place['inspection_id']}/photos/{place['photo']}"
            if check["kind"] == CHANGED:
                label = "unmatched" if side == "station" else None
                title = "patches the customer's photos never showed"
            else:
                label, title = check.get("label"), f"{check.get('label')} map"
            query = {"label": label} if label else {}
            if label and (peaks or {}).get(label) is not None:
                query["peak"] = f"{peaks[label]:.4f}"  # type: ignore[index]
            heat = f"{url}/heatmap?{urlencode(query)}" if label else None
            photos.append(PairPhoto(side, place["inspection_id"], place["photo"] + 1, url, heat,
                                    str(title)))
        views.append(PairView(check["kind"], check.get("label"), check["flagged"], check["score"],
                              check.get("threshold"), check["reason"], (photos[0], photos[1])))
    return views


@router.get("/returns/{return_id:path}/evidence")
def case_evidence(request: Request, return_id: str, state: StateDep, session: SessionDep) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return caller
    try:
        rows = visible_inspections(session, return_id, caller)
    except ApiError as exc:
        return error_page(request, caller, exc)
    html = evidence.return_packet(return_id, rows, state.store, state.holder.current, state.policy,
                                  session)
    return HTMLResponse(html, headers=PACKET_HEADERS)


@router.get("/returns/{return_id:path}")
def case_page(request: Request, return_id: str, state: StateDep, session: SessionDep) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return caller
    try:
        rows = visible_inspections(session, return_id, caller)
    except ApiError as exc:
        return error_page(request, caller, exc)
    case = return_case(return_id, rows)
    root_url = ui_root(request)
    peaks = evidence.pair_peaks(rows, case["comparison"])
    return render(request, "case.html", {
        "principal": caller, "case": case, "pairs": pair_views(case["comparison"], root_url, peaks),
        "evidence_url": f"{root_url}/returns/{quote(return_id, safe='')}/evidence",
    })


@router.get("/items/{inspection_id}/evidence")
def item_evidence(request: Request, inspection_id: str, state: StateDep,
                  session: SessionDep) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return caller
    try:
        row = crud.get_inspection_for(session, inspection_id, caller)
    except ApiError as exc:
        return error_page(request, caller, exc)
    rows = readable_inspections(session, row.return_id, caller)
    html = evidence.inspection_packet(row, rows, state.store, state.holder.current, state.policy, session)
    return HTMLResponse(html, headers=PACKET_HEADERS)
