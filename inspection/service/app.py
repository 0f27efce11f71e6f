"""The FastAPI application: `create_app(settings)` only wires; `lifespan` opens the database
(migrated to the latest revision) and loads the model."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from inspection import __version__
from inspection.decide import load_policy
from inspection.errors import InspectionError
from inspection.loaded_model import LoadedModel
from inspection.service import ui, ui_case
from inspection.service.compute import ComputeSlots
from inspection.service.db import make_engine, make_session_factory, upgrade_to_head
from inspection.service.deps import ServiceState
from inspection.service.errors import install_error_handlers
from inspection.service.fleet import ModelFollower
from inspection.service.limits import BodySizeLimit
from inspection.service.metrics import ServiceMetrics
from inspection.service.middleware import ServiceMiddleware
from inspection.service.openapi import install_openapi
from inspection.service.routes import catalog, health, inspections, models, returns, review
from inspection.service.runtime import ModelHolder
from inspection.service.settings import Settings
from inspection.service.storage import PhotoStore

log = logging.getLogger(__name__)


def build_state(settings: Settings, model: LoadedModel | None = None) -> ServiceState:
    compute = ComputeSlots(settings.workers)
    return ServiceState(
        settings=settings, policy=load_policy(settings.policy_file),
        principals=settings.principals(), metrics=ServiceMetrics(),
        holder=ModelHolder(model, settings.bundle_dir, precision=settings.precision,
                           policy_file=settings.policy_file),
        store=PhotoStore(settings.resolved_photo_store), compute=compute,
    )


def _switched(state: ServiceState, model: LoadedModel) -> None:
    """What follows a model coming into service here: its metrics, its catalog references."""
    state.metrics.set_model(model.card.name, model.card.version, model.card.model_id)
    if state.sessions is not None:
        state.catalog_rebuild.start(state.sessions, state.store, model)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.service
    state.db_engine = make_engine(state.settings.resolved_database_url)
    if state.settings.migrate_on_start:
        upgrade_to_head(state.db_engine)
    state.sessions = make_session_factory(state.db_engine)
    if removed := state.store.clean_partials():
        log.warning("removed %d half-written photo file(s) left by an earlier process", removed)
    if state.holder.current is None:
        try:
            state.holder.reload()
        except InspectionError as exc:  # keep serving /healthz; /readyz says why (never a crash)
            state.holder.error = str(exc)
            log.error("no model loaded: %s", exc)
    if model := state.holder.current:
        _switched(state, model)
    # Serve the fleet's model, then follow it (inspection/service/fleet.py); a model taken
    # from the fleet gets its catalog references built like one loaded here.
    follower = ModelFollower(state.holder, state.sessions, partial(_switched, state),
                             state.settings.model_sync_seconds)
    follower.sync_once()
    follower.start()
    yield
    follower.stop()
    state.catalog_rebuild.stop()
    state.db_engine.dispose()


def create_app(settings: Settings | None = None, model: LoadedModel | None = None) -> FastAPI:
    """`model` lets tests and embedders hand over an already loaded model."""
    settings = settings or Settings()
    app = FastAPI(title="returns-inspection", version=__version__, lifespan=lifespan,
                  description="Score photos of returned items, flag what operators must see, "
                              "and run the review queue.")
    app.state.service = build_state(settings, model)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_total_bytes)
    # Outermost: counts what BodySizeLimit refuses too, and catches what escapes everything.
    app.add_middleware(ServiceMiddleware, metrics=app.state.service.metrics)
    for router in (health.router, inspections.router, review.router, models.router,
                   catalog.router, returns.router, ui_case.router, ui.router):
        app.include_router(router)
    install_openapi(app)
    return app
