"""Every error the API answers, mapped to an HTTP status and one JSON shape in ONE place:

    {"error": {"code": "photo_too_large", "message": "...", "field": "photos[2]"}}

Domain code raises `ApiError` subclasses or `inspection.errors` errors; nothing else in the
service builds an error response. An unexpected exception is logged with its traceback and
answered as a JSON 500 without one (middleware.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from inspection.errors import BundleError, InputError

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class Unprocessable(ApiError):
    status, code = 422, "invalid_input"


class NotReady(ApiError):
    status, code = 503, "not_ready"


def error_body(code: str, message: str, field: str | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(status: int, code: str, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "X-API-Key"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, exc.field, headers)


async def _input_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return error_response(422, "invalid_input", exc.detail, exc.where)


async def _bundle_error(_: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "bundle_rejected", str(exc), "bundle")


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path",
                                                                              "header", "form")]
    field = ".".join(location) or None
    message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return error_response(422, "invalid_request", message, field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
                          headers=headers)


def leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Routes with a path, also inside included routers (recent FastAPI keeps an included router
    as one entry; the app includes its routers without an extra prefix)."""
    for route in routes:
        if hasattr(route, "path"):
            yield route
            continue
        nested = getattr(route, "routes", None) or getattr(getattr(route, "original_router", None),
                                                           "routes", None)
        yield from leaf_routes(nested or ())


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110 15.5.6). Starlette names only the
    first route that matched the path, and one path may have a route per method."""
    methods: set[str] = set()
    for route in leaf_routes(request.app.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")  # middleware.ServiceMiddleware answers HEAD wherever GET is served
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(BundleError, _bundle_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Anything else is answered (and logged once) by middleware.ServiceMiddleware.
