"""Rebuild the catalog for a newly loaded model, in the background, with progress in the log.

A reference built by one model is never compared with another model's photos, so after a load
every SKU without a reference for the new `model_id` is rebuilt from its stored photos. Until a
SKU's turn comes its inspections fall back to the category (the answer says so); the SKUs are
done one at a time, each in its own transaction, so a finished one serves at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from inspection.errors import InspectionError
from inspection.images import decode_photo
from inspection.loaded_model import LoadedModel
from inspection.service.catalog_store import build, current_reference, list_skus, reference_row
from inspection.service.db import session_scope
from inspection.service.errors import ApiError
from inspection.service.models import CatalogSku
from inspection.service.storage import PhotoStore

log = logging.getLogger(__name__)


@dataclass
class RebuildReport:
    model_id: str
    todo: int = 0
    built: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # sku -> why


def rebuild_missing(sessions: sessionmaker[Session], store: PhotoStore, model: LoadedModel,
                    stop: threading.Event | None = None) -> RebuildReport:
    """Build, for `model`, every SKU reference it lacks; returns what happened."""
    model_id = model.card.model_id
    with session_scope(sessions) as session:
        todo = [(row.sku, row.revision, [p.path for p in row.photos])
                for row in list_skus(session) if current_reference(row, model_id) is None]
    report = RebuildReport(model_id, todo=len(todo))
    if todo:
        log.info("catalog: building %d SKU reference(s) for model %s", len(todo), model_id)
    for number, (sku, revision, paths) in enumerate(todo, start=1):
        if stop is not None and stop.is_set():
            break
        try:
            photos = [decode_photo(store.read(path), min_side=model.engine.input_size, where=path)
                      for path in paths]
            reference, build_ms = build(model, photos)
            saved = _save(sessions, sku, revision, reference_row(sku, revision, reference, build_ms))
        except (ApiError, InspectionError, OSError) as exc:
            report.failed[sku] = str(exc)
            log.warning("catalog: SKU %s not rebuilt for model %s: %s", sku, model_id, exc)
            continue
        report.built += saved
        log.info("catalog: SKU %s %s for model %s (%d/%d, %.0f ms)", sku,
                 "rebuilt" if saved else "changed meanwhile, skipped", model_id, number,
                 len(todo), build_ms)
    return report


def _save(sessions: sessionmaker[Session], sku: str, revision: int, row: object) -> bool:
    """Store unless the SKU got new photos (or a reference) while this one was being built."""
    try:
        with session_scope(sessions) as session:
            current = session.get(CatalogSku, sku)
            if current is None or current.revision != revision:
                return False
            session.add(row)
    except IntegrityError:  # a PUT stored this model's reference first: it wins
        return False
    return True


class Rebuilder:
    """One background rebuild at a time; a newer model's rebuild replaces an older one."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last: RebuildReport | None = None

    def start(self, sessions: sessionmaker[Session], store: PhotoStore, model: LoadedModel) -> None:
        self.stop()
        self._stop = threading.Event()
        stop = self._stop

        def run() -> None:
            self.last = rebuild_missing(sessions, store, model, stop)

        self._thread = threading.Thread(target=run, name="catalog-rebuild", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
