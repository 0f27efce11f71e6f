"""The OpenAPI document says what the API really answers: every error status a route can give,
each with the one error body (`errors.error_body`), instead of FastAPI's default 422 shape.

Which statuses: every API route can answer 401/403 (keys and roles), 422 (validation) and 503
(no model or no database yet); a route with an id in its path 404; a route with a body 400
(unparseable multipart) and 413 (BodySizeLimit). Route decorators keep their own descriptions.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {
        "type": "object", "required": ["code", "message", "field"], "additionalProperties": False,
        "properties": {"code": {"type": "string", "description": "machine-readable, e.g. not_found"},
                       "message": {"type": "string", "description": "what is wrong, for a person"},
                       "field": {"type": ["string", "null"],
                                 "description": "the field, header or photo it is about"}}}},
}
DESCRIPTIONS = {
    "400": "the body could not be parsed", "401": "no API key, or an unknown one",
    "403": "this key's role may not do this", "404": "no such resource for this caller",
    "405": "method not allowed here", "409": "conflict with the current state",
    "413": "the upload, a photo or its pixel count is too large",
    "422": "a field, header or photo is invalid; `field` names it",
    "500": "an unexpected error (logged); never expected", "503": "no model loaded or no database",
}
OPEN_ROUTES = {"/healthz", "/readyz", "/metrics"}  # no key needed


def statuses_for(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    if path in OPEN_ROUTES:
        return {"503"} if path == "/readyz" else set()
    statuses = {"401", "403", "422", "500", "503"}
    if "{" in path:
        statuses.add("404")
    if method in ("post", "put", "patch"):
        statuses |= {"400", "413"}
    return statuses


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in statuses_for(path, method, operation) | (set(responses) & set(DESCRIPTIONS)):
                entry = responses.setdefault(status, {"description": DESCRIPTIONS[status]})
                entry["content"] = reference
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    for name, component in schema["components"]["schemas"].items():
        if name.startswith("Body_"):
            document_form_fields(component)
    return schema


def document_form_fields(component: dict[str, Any]) -> None:
    """A multipart field is sent or left out: it cannot be JSON null, so `X | None` is just X,
    and a required list of zero parts is no field at all, so it has at least one item."""
    required = set(component.get("required", []))
    for name, field in component.get("properties", {}).items():
        variants = field.get("anyOf", [])
        kept = [variant for variant in variants if variant.get("type") != "null"]
        if variants and len(kept) == 1:
            del field["anyOf"]
            field.update(kept[0])
        if name in required and field.get("type") == "array":
            field.setdefault("minItems", 1)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
