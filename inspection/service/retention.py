"""`returns-inspect purge`: delete inspections older than the retention period, and the photo
files only they used. Customer photos show homes and faces; they are kept no longer than needed.

Rows go in one transaction (flags, reviews, photo rows and idempotency keys follow by ON DELETE
CASCADE); files go after the commit, and only those no remaining inspection refers to (photos
are stored by content, so one file may serve several inspections). Files older than the cutoff
that no row refers to at all (a purge killed between commit and removal) go as well.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from inspection.errors import InputError
from inspection.service.db import make_engine, make_session_factory, upgrade_to_head
from inspection.service.models import Inspection, Photo
from inspection.service.settings import Settings
from inspection.service.storage import PhotoStore

ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class PurgeReport:
    cutoff: datetime
    inspections: int
    photo_files: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--older-than-days", type=float,
                        help="retention period (default: RETURNS_RETENTION_DAYS)")
    parser.add_argument("--data-dir", type=Path, help="database and photos (RETURNS_DATA_DIR)")
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")


def purge(session: Session, store: PhotoStore, cutoff: datetime, dry_run: bool = False) -> PurgeReport:
    old = select(Inspection.id).where(Inspection.created_at < cutoff)
    ids = list(session.scalars(old))
    paths = set(session.scalars(select(Photo.path).where(Photo.inspection_id.in_(old))))
    if dry_run:
        return PurgeReport(cutoff, len(ids), len(paths))
    session.execute(delete(Inspection).where(Inspection.id.in_(ids)))
    session.commit()
    still_used = set(session.scalars(select(Photo.path).where(Photo.path.in_(paths))))
    removed = 0
    for path in sorted(paths - still_used):
        if store.exists(path):
            store.remove(path)
            removed += 1
    return PurgeReport(cutoff, len(ids), removed + remove_orphans(session, store, cutoff))


def remove_orphans(session: Session, store: PhotoStore, cutoff: datetime) -> int:
    # A running server writes a photo just before committing its row: leave young files alone.
    before = min(cutoff, datetime.now(UTC) - ORPHAN_GRACE)
    referenced = set(session.scalars(select(Photo.path)))
    removed = 0
    for path in store.files():
        if path not in referenced and store.modified(path) < before:
            store.remove(path)
            removed += 1
    return removed


def main(args: argparse.Namespace) -> int:
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    days = args.older_than_days if args.older_than_days is not None else settings.retention_days
    if days is None or days < 0:
        raise InputError("give a retention period of 0 days or more (or set RETURNS_RETENTION_DAYS)",
                         "--older-than-days")
    engine = make_engine(settings.resolved_database_url)
    upgrade_to_head(engine)
    cutoff = datetime.now(UTC) - timedelta(days=days)
    with make_session_factory(engine)() as session:
        report = purge(session, PhotoStore(settings.resolved_photo_store), cutoff, args.dry_run)
    engine.dispose()
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {report.inspections} inspection(s) created before {cutoff.isoformat()} and "
          f"{report.photo_files} photo file(s) only they used")
    return 0
