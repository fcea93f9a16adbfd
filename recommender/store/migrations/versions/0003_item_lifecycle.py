"""Items: ``active`` (retired items are never recommended) and ``created`` (the "new" list).

* ``active``: false once the item is retired (``DELETE /v1/items/{id}`` or ``"active": false``).
  Existing rows become active. An item that is only rated and never registered has no row and
  counts as active. A partial index keeps the retired set (what every serving process polls)
  one small index scan, however large the catalogue.
* ``created``: unix seconds the client gave for the item, if any; the "new" list falls back to
  the item's first rating, then to when it was registered.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RETIRED = sa.text("NOT active")


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(
            sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("created", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_items_retired",
        "items",
        ["item_id"],
        sqlite_where=RETIRED,
        postgresql_where=RETIRED,
    )


def downgrade() -> None:
    op.drop_index("ix_items_retired", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("created")
        batch.drop_column("active")
