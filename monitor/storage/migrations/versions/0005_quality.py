"""quality: the verdict of a quality workload's probe on its answer (tool call or structured),
and the hourly rollups' counts of those verdicts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quality", sa.String(length=24), nullable=True))
    with op.batch_alter_table("rollups_hourly", schema=None) as batch_op:
        batch_op.add_column(sa.Column("qualities", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollups_hourly", schema=None) as batch_op:
        batch_op.drop_column("qualities")
    with op.batch_alter_table("probes", schema=None) as batch_op:
        batch_op.drop_column("quality")
