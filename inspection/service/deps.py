"""Dependencies as `Annotated` aliases (FastAPI full-stack template style): a route declares
`session: SessionDep, model: EngineDep, caller: OperatorDep` and gets them, checked."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from inspection.decide import Policy
from inspection.loaded_model import LoadedModel
from inspection.service.catalog_rebuild import Rebuilder
from inspection.service.catalog_store import ReferenceCache
from inspection.service.compute import ComputeSlots
from inspection.service.errors import Forbidden, NotReady, Unauthorized
from inspection.service.metrics import ServiceMetrics
from inspection.service.runtime import ModelHolder
from inspection.service.settings import Principal, Settings
from inspection.service.storage import PhotoStore

DEV_PRINCIPAL = Principal(name="dev", role="admin")


@dataclass
class ServiceState:
    """Everything the app holds between requests; built by create_app, filled by lifespan."""

    settings: Settings
    policy: Policy
    principals: dict[str, Principal]
    metrics: ServiceMetrics
    holder: ModelHolder
    store: PhotoStore
    compute: ComputeSlots
    db_engine: Engine | None = None
    sessions: sessionmaker[Session] | None = None
    catalog_cache: ReferenceCache = field(default_factory=ReferenceCache)
    catalog_rebuild: Rebuilder = field(default_factory=Rebuilder)


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    if state.sessions is None:
        raise NotReady("the database is not open yet")
    session = state.sessions()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_model(state: StateDep) -> LoadedModel:
    model = state.holder.current
    if model is None:
        raise NotReady(f"no model is loaded ({state.holder.error or 'still starting'})", "model")
    return model


def get_principal(state: StateDep,
                  api_key: Annotated[str | None, Header(alias="X-API-Key")] = None) -> Principal:
    if not state.principals:
        if state.settings.dev_mode:
            return DEV_PRINCIPAL
        raise Unauthorized("no API keys are configured on this server", "X-API-Key")
    if not api_key:
        raise Unauthorized("send your API key in the X-API-Key header", "X-API-Key")
    for key, principal in state.principals.items():
        if hmac.compare_digest(key.encode(), api_key.encode()):  # constant time: no timing oracle
            return principal
    raise Unauthorized("unknown API key", "X-API-Key")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Principal]:
    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            msg = f"a {principal.role} key cannot do this; it needs one of: {', '.join(roles)}"
            raise Forbidden(msg, "X-API-Key")
        return principal
    return check


SessionDep = Annotated[Session, Depends(get_session)]
EngineDep = Annotated[LoadedModel, Depends(get_model)]
SubmitterDep = Annotated[Principal, Depends(require_roles("station", "customer", "admin"))]
StaffDep = Annotated[Principal, Depends(require_roles("station", "operator", "admin"))]
OperatorDep = Annotated[Principal, Depends(require_roles("operator", "admin"))]
AdminDep = Annotated[Principal, Depends(require_roles("admin"))]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_policy(state: StateDep) -> Policy:
    return state.policy


def get_store(state: StateDep) -> PhotoStore:
    return state.store


def get_metrics(state: StateDep) -> ServiceMetrics:
    return state.metrics


def get_compute(state: StateDep) -> ComputeSlots:
    return state.compute


SettingsDep = Annotated[Settings, Depends(get_settings)]
PolicyDep = Annotated[Policy, Depends(get_policy)]
StoreDep = Annotated[PhotoStore, Depends(get_store)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ComputeDep = Annotated[ComputeSlots, Depends(get_compute)]
