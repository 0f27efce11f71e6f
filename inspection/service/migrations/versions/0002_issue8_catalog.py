"""Catalog: SKUs, their reference photos and the references each model built from them.

Revision ID: 0002_issue8
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_issue8"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_skus",
        sa.Column("sku", sa.String(200), primary_key=True),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("display_name", sa.String(300), nullable=True),
        sa.Column("accessory_kit", sa.JSON(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "catalog_photos",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sku", sa.String(200), sa.ForeignKey("catalog_skus.sku", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(300), nullable=True),
        sa.UniqueConstraint("sku", "index", name="uq_catalog_photos_sku_index"),
    )
    op.create_index("ix_catalog_photos_sku", "catalog_photos", ["sku"])
    op.create_table(
        "catalog_references",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sku", sa.String(200), sa.ForeignKey("catalog_skus.sku", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("build_ms", sa.Float(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("bank_size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("sku", "model_id", name="uq_catalog_references_sku_model"),
    )
    op.create_index("ix_catalog_references_sku", "catalog_references", ["sku"])
    op.create_index("ix_catalog_references_model_id", "catalog_references", ["model_id"])


def downgrade() -> None:
    for table in ("catalog_references", "catalog_photos", "catalog_skus"):
        op.drop_table(table)
