"""Replicas agree on the model they serve.

Each replica holds its model in memory, and a hot reload goes to one replica behind the load
balancer; alone, the replicas would then answer with different models. So a reload also writes
the `served_model` row (bundle path, model id) in the shared database, and every replica
follows it: at start (a replica that joins later serves the fleet's model, not its
RETURNS_BUNDLE_DIR) and every `RETURNS_MODEL_SYNC_SECONDS` after. The bundle path must be one
every replica reaches (a shared folder, or the same path baked into every image).

A replica that cannot load the recorded bundle keeps serving its model and says why in the log
once; the next reload tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from inspection.errors import InspectionError
from inspection.loaded_model import LoadedModel
from inspection.service.db import session_scope
from inspection.service.models import ServedModel, utcnow
from inspection.service.runtime import ModelHolder

log = logging.getLogger(__name__)
FLEET_ROW = 1  # one fleet, one row


def record_served(sessions: sessionmaker[Session], model: LoadedModel, bundle: Path,
                  by: str) -> None:
    """Make `model` the fleet's model (after it has loaded here)."""
    values = {"bundle": str(Path(bundle).resolve()), "model_id": model.card.model_id,
              "name": model.card.name, "version": model.card.version, "updated_at": utcnow(),
              "updated_by": by}
    for _ in range(2):  # two first reloads at once: the loser's insert fails, it then updates
        try:
            with session_scope(sessions) as session:
                row = session.get(ServedModel, FLEET_ROW)
                if row is None:
                    session.add(ServedModel(id=FLEET_ROW, **values))
                else:
                    for key, value in values.items():
                        setattr(row, key, value)
            return
        except IntegrityError:
            continue


def fleet_model(sessions: sessionmaker[Session]) -> ServedModel | None:
    with sessions() as session:
        return session.get(ServedModel, FLEET_ROW)


class ModelFollower:
    """Loads the fleet's model whenever this replica serves another one."""

    def __init__(self, holder: ModelHolder, sessions: sessionmaker[Session],
                 switched: Callable[[LoadedModel], None], interval_s: float):
        self.holder, self.sessions = holder, sessions
        self.switched = switched  # what a reload here does after the swap (metrics, catalog)
        self.interval_s = interval_s
        self._refused: str | None = None  # a model id whose bundle did not load here
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync_once(self) -> bool:
        """True when this replica switched models."""
        try:
            wanted = fleet_model(self.sessions)
        except SQLAlchemyError as exc:
            log.warning("cannot read the fleet's model: %s", str(exc).splitlines()[0])
            return False
        current = self.holder.current
        if wanted is None or wanted.model_id == self._refused or (
                current is not None and current.card.model_id == wanted.model_id):
            return False
        try:
            model = self.holder.reload(wanted.bundle)
        except InspectionError as exc:
            self._refused = wanted.model_id
            log.error("the fleet serves %s from %s, but it does not load here (%s); this replica "
                      "keeps its model", wanted.model_id, wanted.bundle, exc)
            return False
        self.switched(model)
        log.info("following the fleet: now serving %s %s", model.card.name, model.card.version)
        return True

    def start(self) -> None:
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="model-follower", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync_once()
            except Exception:  # noqa: BLE001 - the follower must outlive any one failure
                log.exception("model follower")
