"""A return as one case: GET /v1/returns/{return_id} (every inspection of the return, oldest
first, with the customer <-> dock comparison and a timeline) and the evidence packets, one per
inspection and one per return (self-contained HTML)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from inspection.service import crud, evidence
from inspection.service.case_schemas import ReturnCasePublic
from inspection.service.case_view import readable_inspections, return_case, visible_inspections
from inspection.service.deps import OperatorDep, PolicyDep, PrincipalDep, SessionDep, StateDep

router = APIRouter(tags=["returns"])
ReturnId = Annotated[str, Path(min_length=1, max_length=200, description="as sent with the photos")]
PACKET_HEADERS = {
    # The packet is a document to keep and forward: no script may run in it, nothing is fetched.
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@router.get("/v1/returns/{return_id:path}/evidence", response_class=HTMLResponse,
            summary="Evidence packet of a whole return (self-contained HTML)")
def return_evidence(return_id: ReturnId, caller: OperatorDep, session: SessionDep, state: StateDep,
                    policy: PolicyDep) -> HTMLResponse:
    rows = visible_inspections(session, return_id, caller)
    html = evidence.return_packet(return_id, rows, state.store, state.holder.current, policy, session)
    return HTMLResponse(html, headers=PACKET_HEADERS)


@router.get("/v1/returns/{return_id:path}", response_model=ReturnCasePublic,
            summary="A return as one case: its inspections, comparison and timeline",
            responses={404: {"description": "no such return, or none of its inspections is yours"}})
def read_return(return_id: ReturnId, caller: PrincipalDep, session: SessionDep) -> dict[str, object]:
    return return_case(return_id, visible_inspections(session, return_id, caller))


@router.get("/v1/inspections/{inspection_id}/evidence", response_class=HTMLResponse,
            summary="Evidence packet of one inspection (self-contained HTML)")
def inspection_evidence(inspection_id: str, caller: OperatorDep, session: SessionDep,
                        state: StateDep, policy: PolicyDep) -> HTMLResponse:
    row = crud.get_inspection_for(session, inspection_id, caller)
    rows = readable_inspections(session, row.return_id, caller)
    html = evidence.inspection_packet(row, rows, state.store, state.holder.current, policy, session)
    return HTMLResponse(html, headers=PACKET_HEADERS)
