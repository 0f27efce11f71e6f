"""Initial schema: inspections, photos, flags, reviews.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("return_id", sa.String(200), nullable=False),
        sa.Column("sku", sa.String(200), nullable=True),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("disposition", sa.String(50), nullable=False),
        sa.Column("refund", sa.String(50), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
    )
    for column in ("created_at", "return_id", "sku", "source", "owner", "flagged"):
        op.create_index(f"ix_inspections_{column}", "inspections", [column])
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.String(32),
                  sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("filename", sa.String(300), nullable=True),
        sa.Column("predictions", sa.JSON(), nullable=False),
    )
    op.create_index("ix_photos_inspection_id", "photos", ["inspection_id"])
    op.create_index("ix_photos_sha256", "photos", ["sha256"])
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.String(32),
                  sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("photo_index", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_flags_inspection_id", "flags", ["inspection_id"])
    op.create_index("ix_flags_kind", "flags", ["kind"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.String(32),
                  sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("disposition", sa.String(50), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("override", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_reviews_inspection_id", "reviews", ["inspection_id"])
    op.create_index("ix_reviews_created_at", "reviews", ["created_at"])


def downgrade() -> None:
    for table in ("reviews", "flags", "photos", "inspections"):
        op.drop_table(table)
