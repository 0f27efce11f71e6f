"""The operator web page at /ui: the review queue, one item's photos with heatmaps and the
model's reasons, and a form to confirm or correct. Server-rendered (Jinja2) over the API's own
queries (`crud`), auth (`ui_auth` -> `deps.get_principal`) and route functions, so the page
and the JSON API cannot disagree; a little JS (static/ui.js) adds overlays and shortcuts.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from inspection.service import crud, ui_views
from inspection.service.deps import ServiceState, SessionDep, StateDep, get_model
from inspection.service.errors import ApiError, Forbidden
from inspection.service.models import Inspection
from inspection.service.routes import catalog, inspections, review
from inspection.service.schemas import ReviewCreate
from inspection.service.settings import Principal
from inspection.service.ui_auth import (
    COOKIE,
    SignInNeeded,
    forget_key,
    principal_for_key,
    remember_session,
    safe_next,
    same_origin,
    session_token,
    signed_in,
)
from inspection.service.ui_lookup import first_error, next_item, refusal, saved_notice, taxonomy_for
from inspection.service.validation import FlagQuery, InspectionId, OffsetQuery, SkuQuery

__all__ = ["COOKIE", "router"]
HERE = Path(__file__).parent
PAGE_SIZE = 25  # rows on one queue page: a screenful at a station
STATIC = {"ui.css": "text/css", "ui.js": "text/javascript", "favicon.svg": "image/svg+xml"}
HEADERS = {
    # Nothing external, no inline script or style: a stored filename or note cannot run code.
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Chromium send `Origin: null`
    "Cache-Control": "no-store",  # customer photos and reviews stay out of shared caches
}

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(human=ui_views.human, when=ui_views.when, pct=ui_views.pct,
                             num=ui_views.num)
Filters = tuple[str | None, str | None, str | None]


def ui_root(request: Request) -> str:
    return request.scope.get("root_path", "") + router.prefix


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    state: ServiceState = request.app.state.service
    page = templates.TemplateResponse(
        request, name, {"ui_root": ui_root(request), "dev_mode": not state.principals, **context},
        status_code=status)
    page.headers.update(HEADERS)
    return page


def login_page(request: Request, error: str | None, status: int) -> HTMLResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(request, "login.html", {"error": error, "next_url": target, "principal": None},
                  status)


def ui_caller(state: ServiceState, request: Request) -> Principal | HTMLResponse:
    """The signed-in operator, or the sign-in page (401/403) to answer instead."""
    try:
        return signed_in(state, request)
    except SignInNeeded as exc:
        return login_page(request, exc.message, exc.status)


@router.get("")
def root(request: Request) -> RedirectResponse:
    return RedirectResponse(ui_root(request) + "/", status_code=307)


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/login")
def login_form(request: Request, state: StateDep) -> Response:
    if not state.principals and state.settings.dev_mode:
        return RedirectResponse(ui_root(request) + "/", status_code=303)
    return login_page(request, None, 200)


@router.post("/login")
def login(request: Request, state: StateDep, api_key: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "") -> Response:
    if not same_origin(request):
        return login_page(request, "Sign in from this page.", 403)
    key = api_key.strip()
    try:
        principal_for_key(state, key)
    except SignInNeeded as exc:
        return login_page(request, exc.message or "Enter your API key.", exc.status)
    response = RedirectResponse(safe_next(next, ui_root(request)), status_code=303)
    remember_session(response, session_token(state, key), ui_root(request),
                     secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse(ui_root(request) + "/login", status_code=303)
    forget_key(response, ui_root(request))
    return response


@router.get("/")
def queue(request: Request, state: StateDep, session: SessionDep, flag: FlagQuery = None,
          source: str | None = None, sku: SkuQuery = None,
          offset: OffsetQuery = 0, saved: str | None = None) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return caller
    flag, source, sku = (flag or None), (source or None), ((sku or "").strip() or None)
    filters = crud.QueueFilters(flag=flag, source=source, sku=sku)
    limit = PAGE_SIZE
    page = crud.review_queue(session, filters, limit=limit, offset=offset)
    root_url = ui_root(request)
    more = offset + len(page["items"]) < page["total"]
    return render(request, "queue.html", {
        "principal": caller, "page": page, "filters": filters,
        "flag_kinds": ui_views.FLAG_KINDS, "sources": ui_views.SOURCES,
        "query": ui_views.filter_query(flag, source, sku),
        "notice": saved_notice(session, caller, saved),
        "prev_url": (root_url + "/" + ui_views.filter_query(flag, source, sku, offset=max(0, offset - limit))
                     if offset > 0 else None),
        "next_url": (root_url + "/" + ui_views.filter_query(flag, source, sku, offset=offset + limit)
                     if more else None),
    })


def item_page(request: Request, state: ServiceState, session: Session, row: Inspection,
              caller: Principal, filters: Filters, error: str | None = None,
              status: int = 200, notice: dict[str, str] | None = None) -> HTMLResponse:
    root_url = ui_root(request)
    query = ui_views.filter_query(*filters)
    result = crud.inspection_public(row)
    overlays = ui_views.overlay_choices(result["flags"])
    following = next_item(session, row, crud.QueueFilters(*filters))
    return render(request, "item.html", {
        "principal": caller, "item": result, "query": query, "error": error, "notice": notice,
        "queue_url": root_url + "/" + query,
        "next_url": f"{root_url}/items/{following}{query}" if following else None,
        "overlays": overlays, "active_overlay": ui_views.first_overlay(overlays, result),
        "photos": ui_views.photo_views(result, f"{root_url}/items/{row.id}", overlays,
                                       catalog_url=f"{root_url}/catalog-photos"),
        "heads": ui_views.head_choices(result, taxonomy_for(state), result["review"]),
        "dispositions": ui_views.dispositions(state.policy, row.disposition),
    }, status)


def error_page(request: Request, caller: Principal, exc: ApiError) -> HTMLResponse:
    return render(request, "error.html", {"principal": caller, "status": exc.status,
                                          "message": exc.message}, exc.status)


@router.get("/items/{inspection_id}")
def item(request: Request, inspection_id: InspectionId, state: StateDep, session: SessionDep,
         flag: FlagQuery = None, source: str | None = None, sku: SkuQuery = None,
         saved: str | None = None) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return caller
    try:
        row = crud.get_inspection_for(session, inspection_id, caller)
    except ApiError as exc:
        return error_page(request, caller, exc)
    return item_page(request, state, session, row, caller, (flag or None, source or None, sku or None),
                     notice=saved_notice(session, caller, saved))


@router.post("/items/{inspection_id}/review")
async def submit_review(request: Request, inspection_id: InspectionId, state: StateDep,
                        session: SessionDep, flag: FlagQuery = None, source: str | None = None,
                        sku: SkuQuery = None) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return caller
    if not same_origin(request):
        return error_page(request, caller, Forbidden("this form can only be sent from the review page"))
    form = await request.form()
    fields = {key: [str(value) for value in form.getlist(key)] for key in form}
    filters = (flag or None, source or None, sku or None)
    return await run_in_threadpool(record, request, state, session, caller, inspection_id, fields, filters)


def record(request: Request, state: ServiceState, session: Session, caller: Principal,
           inspection_id: str, fields: dict[str, list[str]], filters: Filters) -> Response:
    """Store the review through the API's own route function (same checks, same 409), then go
    on to the next item; a refusal is shown on the item's page."""
    try:
        row = crud.get_inspection_for(session, inspection_id, caller)
    except ApiError as exc:
        return error_page(request, caller, exc)
    heads = ui_views.head_choices(row.result, taxonomy_for(state), None)
    try:
        form = ui_views.review_from_form(fields, heads, row.disposition)
        body = ReviewCreate.model_validate(asdict(form))  # the API's own checks (note length…)
        review.review_inspection(inspection_id, body, caller, session, get_model(state), state.policy)
    except ValueError as exc:  # pydantic's ValidationError is one too
        message = first_error(exc) if isinstance(exc, ValidationError) else str(exc)
        return item_page(request, state, session, row, caller, filters, message, 422)
    except ApiError as exc:
        session.rollback()
        session.refresh(row)
        return item_page(request, state, session, row, caller, filters, refusal(exc, row), exc.status)
    following = next_item(session, row, crud.QueueFilters(*filters))
    root_url = ui_root(request)
    query = ui_views.filter_query(*filters, saved=inspection_id)
    target = f"{root_url}/items/{following}{query}" if following else f"{root_url}/{query}"
    return RedirectResponse(target, status_code=303)


@router.get("/items/{inspection_id}/photos/{n}")
def photo(request: Request, inspection_id: InspectionId, n: int, state: StateDep,
          session: SessionDep) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return Response(status_code=caller.status_code)
    return inspections.read_photo(inspection_id, n, caller, session, state.store)


@router.get("/items/{inspection_id}/photos/{n}/heatmap")
def heatmap(request: Request, inspection_id: InspectionId, n: int, label: str, state: StateDep,
            session: SessionDep, peak: Annotated[float | None, Query(allow_inf_nan=False)] = None
            ) -> Response:
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return Response(status_code=caller.status_code)
    return inspections.read_heatmap(inspection_id, n, caller, session, state.store, label, peak)


@router.get("/catalog-photos/{sha256}")
def catalog_photo(request: Request, sha256: str, state: StateDep, session: SessionDep) -> Response:
    """The catalog photo a returned one was compared with, by content: a SKU whose photos were
    replaced since shows nothing rather than another photo."""
    caller = ui_caller(state, request)
    if isinstance(caller, Response):
        return Response(status_code=caller.status_code)
    return catalog.reference_photo_by_sha(sha256, session, state.store)
