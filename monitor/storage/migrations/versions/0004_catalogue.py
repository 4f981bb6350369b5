"""catalogue: snapshots of OpenRouter's endpoints listings and the changes between them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.storage.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = monitor.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalogue_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", UTC_TS, nullable=False),
        sa.Column("vantage", sa.String(length=64), nullable=False),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.Column("endpoints", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "slot", name="uq_catalogue_snapshots_slot"),
    )
    with op.batch_alter_table("catalogue_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_catalogue_snapshots_model_observed", ["model", "observed_at"], unique=False
        )
    op.create_table(
        "catalogue_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("observed_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("catalogue_events", schema=None) as batch_op:
        batch_op.create_index("ix_catalogue_events_observed", ["observed_at"], unique=False)
        batch_op.create_index(
            "ix_catalogue_events_model_observed", ["model", "observed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("catalogue_events", schema=None) as batch_op:
        batch_op.drop_index("ix_catalogue_events_model_observed")
        batch_op.drop_index("ix_catalogue_events_observed")
    op.drop_table("catalogue_events")
    with op.batch_alter_table("catalogue_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_catalogue_snapshots_model_observed")
    op.drop_table("catalogue_snapshots")
