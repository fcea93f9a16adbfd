"""The catalogue version: one row, one counter, bumped by every item write.

Serving processes poll a fingerprint of the items table to know when to re-read the retired
set and the metadata. It was ``(rows, latest updated_at)``, but ``updated_at`` is taken from
the writer's clock before its statement runs, and on PostgreSQL two writers can commit in
the other order: the later commit, stamped earlier, changed neither figure and was missed
until some other item write. Every item write now bumps this counter in its own
transaction; the row lock orders the bumps as the commits, so each commit shows a new value.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "catalogue_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("catalogue_version")
