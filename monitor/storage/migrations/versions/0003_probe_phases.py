"""probe phases: connection phases, inter-token timing and flags on every probe

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOAT_COLUMNS = (
    "dns_ms",
    "connect_ms",
    "tls_ms",
    "ttfb_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "max_gap_ms",
)


def upgrade() -> None:
    with op.batch_alter_table("probes", schema=None) as batch_op:
        for name in FLOAT_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("flags", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_column("flags")
        for name in reversed(FLOAT_COLUMNS):
            batch_op.drop_column(name)
