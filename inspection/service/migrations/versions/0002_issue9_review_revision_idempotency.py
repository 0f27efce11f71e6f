"""One review per inspection in the database, idempotency keys.

A review's `revision` is 1 for the first review and +1 for each admin override; a unique
(inspection_id, revision) lets exactly one of two concurrent reviews in, whatever the
isolation level. `idempotency_keys` remembers which inspection a client's Idempotency-Key made.

Revision ID: 0002_issue9
Revises: 0003_issue12
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_issue9"
down_revision = "0003_issue12"  # re-chained after issues 8 and 12 landed first
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviews", sa.Column("revision", sa.Integer(), nullable=True))
    # Existing reviews are numbered in the order they were written.
    op.execute("UPDATE reviews SET revision = (SELECT COUNT(*) FROM reviews AS earlier "
               "WHERE earlier.inspection_id = reviews.inspection_id AND earlier.id <= reviews.id)")
    with op.batch_alter_table("reviews") as batch:
        batch.alter_column("revision", existing_type=sa.Integer(), nullable=False)
        batch.create_unique_constraint("uq_reviews_inspection_revision", ["inspection_id", "revision"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("inspection_id", sa.String(32),
                  sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "key", name="uq_idempotency_keys_owner_key"),
    )
    op.create_index("ix_idempotency_keys_inspection_id", "idempotency_keys", ["inspection_id"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_constraint("uq_reviews_inspection_revision", type_="unique")
        batch.drop_column("revision")
