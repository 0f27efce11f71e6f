"""The model the whole fleet serves: one row that a reload through any replica writes.

Revision ID: 0003_issue12
Revises: 0002_issue8
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_issue12"
down_revision = "0002_issue8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "served_model",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("bundle", sa.String(1000), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("served_model")
