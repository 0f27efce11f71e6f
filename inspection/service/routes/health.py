"""Liveness, readiness and Prometheus metrics: no API key needed (the load balancer and the
scraper call them)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from inspection.service.db import database_reachable
from inspection.service.deps import StateDep
from inspection.service.errors import error_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Model loaded and database reachable (503 otherwise)")
def readyz(state: StateDep) -> Response:
    model = state.holder.current
    database = state.db_engine is not None and database_reachable(state.db_engine)
    checks = {"model": model is not None, "database": database}
    if model is None or not database:
        missing = [name for name, ok in checks.items() if not ok]
        reason = state.holder.error if model is None and state.holder.error else "not ready"
        return error_response(503, "not_ready", f"{', '.join(missing)}: {reason}", missing[0])
    return Response(content=f'{{"status": "ready", "model_id": "{model.card.model_id}"}}',
                    media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: StateDep) -> Response:
    return state.metrics.exposition()
