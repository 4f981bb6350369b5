"""alerting: rule memory, incident vantage and detection time, outbox claims

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import monitor.storage.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = monitor.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "consecutive_client_errors",
                sa.Integer(),
                server_default=sa.text("0"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("failing_since", UTC_TS, nullable=True))
        batch_op.add_column(sa.Column("succeeding_since", UTC_TS, nullable=True))
        batch_op.add_column(sa.Column("last_seen_at", UTC_TS, nullable=True))
        batch_op.add_column(sa.Column("evaluated_through", UTC_TS, nullable=True))
        batch_op.add_column(sa.Column("config_incident_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vantage", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("detected_at", UTC_TS, nullable=True))
        batch_op.create_index("ix_incidents_ended", ["ended_at"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", UTC_TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_ended")
        batch_op.drop_column("detected_at")
        batch_op.drop_column("vantage")
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.drop_column("config_incident_id")
        batch_op.drop_column("evaluated_through")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("succeeding_since")
        batch_op.drop_column("failing_since")
        batch_op.drop_column("consecutive_client_errors")
