"""Database tables (SQLAlchemy 2 typed ORM). The schema is owned by the Alembic migrations in
`migrations/versions/`; keep both in step (tests/test_service_db.py compares them).

An inspection keeps its whole answer as JSON (`result`), so GET returns exactly what POST
answered; the columns beside it exist to filter and sort the review queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Inspection(Base):
    __tablename__ = "inspections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    return_id: Mapped[str] = mapped_column(String(200), index=True)
    sku: Mapped[str | None] = mapped_column(String(200), index=True)
    category: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20), index=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[str] = mapped_column(String(200))
    disposition: Mapped[str] = mapped_column(String(50))
    refund: Mapped[str] = mapped_column(String(50))
    flagged: Mapped[bool] = mapped_column(Boolean, index=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)

    photos: Mapped[list[Photo]] = relationship(back_populates="inspection", order_by="Photo.index",
                                               cascade="all, delete-orphan")
    flags: Mapped[list[FlagRow]] = relationship(back_populates="inspection",
                                                cascade="all, delete-orphan")
    reviews: Mapped[list[Review]] = relationship(back_populates="inspection", order_by="Review.id",
                                                 cascade="all, delete-orphan")


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"),
                                               index=True)
    index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(300))  # relative to the photo store's root
    size_bytes: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str | None] = mapped_column(String(300))
    predictions: Mapped[dict[str, Any]] = mapped_column(JSON)  # probabilities + cams, for heatmaps

    inspection: Mapped[Inspection] = relationship(back_populates="photos")


class FlagRow(Base):
    __tablename__ = "flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"),
                                               index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    label: Mapped[str | None] = mapped_column(String(100))
    photo_index: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)

    inspection: Mapped[Inspection] = relationship(back_populates="flags")


class Review(Base):
    """`revision` 1 is the review; each admin override adds one. The unique pair is the
    one-review rule itself: of two concurrent reviews the database lets one in."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("inspection_id", "revision",
                                       name="uq_reviews_inspection_revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"),
                                               index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(20))  # confirm | correct
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)  # head -> labels (the truth after review)
    disposition: Mapped[str | None] = mapped_column(String(50))
    note: Mapped[str | None] = mapped_column(Text)
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    revision: Mapped[int] = mapped_column(Integer)

    inspection: Mapped[Inspection] = relationship(back_populates="reviews")


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the inspection it made: a retry gets that answer back."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner", "key", name="uq_idempotency_keys_owner_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"),
                                               index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServedModel(Base):
    """The bundle every replica serves: one row, written by a reload through any replica and
    followed by the others (inspection/service/fleet.py)."""

    __tablename__ = "served_model"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    bundle: Mapped[str] = mapped_column(String(1000))  # a path every replica reaches
    model_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))


class CatalogSku(Base):
    """A SKU's catalog entry (issue 8). `revision` grows with every new set of reference photos;
    a built reference counts only for the revision it was built from."""

    __tablename__ = "catalog_skus"

    sku: Mapped[str] = mapped_column(String(200), primary_key=True)
    category: Mapped[str | None] = mapped_column(String(100))
    display_name: Mapped[str | None] = mapped_column(String(300))
    accessory_kit: Mapped[list[str] | None] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    photos: Mapped[list[CatalogPhoto]] = relationship(order_by="CatalogPhoto.index",
                                                      cascade="all, delete-orphan")
    references: Mapped[list[CatalogReference]] = relationship(cascade="all, delete-orphan")


class CatalogPhoto(Base):
    __tablename__ = "catalog_photos"
    __table_args__ = (UniqueConstraint("sku", "index", name="uq_catalog_photos_sku_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(ForeignKey("catalog_skus.sku", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(300))  # in the photo store
    size_bytes: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(300))


class CatalogReference(Base):
    """A SKU's reference as built by one model (inspection.catalog.SkuReference, serialised)."""

    __tablename__ = "catalog_references"
    __table_args__ = (UniqueConstraint("sku", "model_id", name="uq_catalog_references_sku_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(ForeignKey("catalog_skus.sku", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(200), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    build_ms: Mapped[float] = mapped_column(Float)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON)
    bank_size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)  # read only to build the cache
