"""The served model: what it is, and a hot reload (admin). The new bundle is loaded and checked
completely before it replaces the old one; a bundle whose card and ONNX file do not match is
refused (409) and the previous model keeps serving. A reload is recorded in the database, and the
other replicas load the same bundle within RETURNS_MODEL_SYNC_SECONDS (inspection/service/fleet.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from inspection.decide import Policy, policy_notes
from inspection.errors import BundleError
from inspection.loaded_model import LoadedModel
from inspection.service.deps import AdminDep, EngineDep, StateDep
from inspection.service.fleet import record_served
from inspection.service.schemas import ModelStatus, ReloadRequest

router = APIRouter(prefix="/v1/models", tags=["models"])


def model_status(model: LoadedModel, bundle: object, policy: Policy) -> dict[str, object]:
    card = model.card
    return {"name": card.name, "version": card.version, "model_id": card.model_id,
            "bundle": str(bundle), "checks_unavailable": model.unavailable,
            "policy_notes": policy_notes(policy, model.engine.taxonomy)}


@router.get("/current", response_model=ModelStatus, summary="The model being served (admin)")
def current_model(caller: AdminDep, model: EngineDep, state: StateDep) -> dict[str, object]:
    return model_status(model, state.holder.bundle_dir, state.policy)


@router.post("/reload", response_model=ModelStatus, summary="Load a bundle and swap it in",
             responses={409: {"description": "bundle refused; the previous model keeps serving"}})
def reload_model(caller: AdminDep, state: StateDep,
                 request: Annotated[ReloadRequest | None, Body()] = None) -> dict[str, object]:
    bundle = request.bundle if request else None
    try:
        model = state.holder.reload(bundle)
    except BundleError:
        state.metrics.reloads.labels("refused").inc()
        raise
    state.metrics.reloads.labels("ok").inc()
    state.metrics.set_model(model.card.name, model.card.version, model.card.model_id)
    if state.sessions is not None:  # the catalog follows the model (catalog_rebuild.py)
        state.catalog_rebuild.start(state.sessions, state.store, model)
    if state.sessions is not None and state.holder.bundle_dir is not None:
        record_served(state.sessions, model, state.holder.bundle_dir, caller.name)  # the fleet follows
    return model_status(model, state.holder.bundle_dir, state.policy)
