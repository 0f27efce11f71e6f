"""Idempotency-Key on POST /v1/inspections: a client that retries after a timeout gets the
answer of its first attempt instead of a second inspection.

The key is remembered per caller in `idempotency_keys` (unique owner + key), in the same
transaction as the inspection it made, beside a fingerprint of the request (form fields and
each photo's sha256). Same key, same request: the stored answer again. Same key, another
request: 422. Two attempts racing with one key: the database lets one in and the other is
answered with the winner's inspection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from inspection.pipeline import Upload
from inspection.service.errors import Unprocessable
from inspection.service.models import IdempotencyKey
from inspection.service.settings import Principal

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def request_fingerprint(fields: dict[str, str | None], uploads: Sequence[Upload]) -> str:
    photos = [[upload.filename, hashlib.sha256(upload.data).hexdigest()] for upload in uploads]
    canonical = json.dumps({"fields": fields, "photos": photos}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def earlier_inspection(session: Session, caller: Principal, key: str, fingerprint: str) -> str | None:
    """The inspection this key already made for this caller; 422 if it was another request."""
    entry = session.scalar(select(IdempotencyKey).where(IdempotencyKey.owner == caller.name,
                                                        IdempotencyKey.key == key))
    if entry is None:
        return None
    if entry.request_sha256 != fingerprint:
        msg = (f"{HEADER} {key!r} was used for a different request (inspection "
               f"{entry.inspection_id}); use a new key for a new request")
        raise Unprocessable(msg, HEADER, code="idempotency_key_reused")
    return entry.inspection_id


def remember(session: Session, caller: Principal, key: str, fingerprint: str,
             inspection_id: str) -> None:
    session.add(IdempotencyKey(owner=caller.name, key=key, request_sha256=fingerprint,
                               inspection_id=inspection_id))
