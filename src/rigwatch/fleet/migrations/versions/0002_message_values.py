"""A message's metric values move into its row (``status_messages.metric_values``, JSON);
the one-row-per-value table ``metric_samples`` is folded in and dropped.

Each sample is matched to its message by (machine, timestamp); samples without a message row
(none are written that way) are dropped with the table.

Revision ID: f0002
Revises: f0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "f0002"
down_revision: str | None = "f0001"
branch_labels: str | None = None
depends_on: str | None = None

_CHUNK = 10_000

# the two tables as this revision sees them (never the models: they move on)
_SAMPLES = sa.table(
    "metric_samples",
    sa.column("machine_id", sa.String()),
    sa.column("metric", sa.String()),
    sa.column("ts_ns", sa.BigInteger()),
    sa.column("value", sa.Float()),
    sa.column("backfill", sa.Boolean()),
)
_MESSAGES = sa.table(
    "status_messages",
    sa.column("machine_id", sa.String()),
    sa.column("ts_ns", sa.BigInteger()),
    sa.column("backfill", sa.Boolean()),
    sa.column("metric_values", sa.JSON()),
)


def upgrade() -> None:
    op.add_column(
        "status_messages",
        sa.Column("metric_values", sa.JSON(), server_default=sa.text("'{}'"), nullable=False),
    )
    conn = op.get_bind()
    samples, messages = _SAMPLES, _MESSAGES
    fill = (
        sa.update(messages)
        .where(
            messages.c.machine_id == sa.bindparam("m"),
            messages.c.ts_ns == sa.bindparam("t"),
        )
        .values(metric_values=sa.bindparam("v", type_=sa.JSON()))
    )
    rows = conn.execute(
        sa.select(
            samples.c.machine_id, samples.c.ts_ns, samples.c.metric, samples.c.value
        ).order_by(samples.c.machine_id, samples.c.ts_ns)
    )
    pending: list[dict[str, object]] = []
    current: tuple[str, int] | None = None
    values: dict[str, float] = {}
    for machine_id, ts_ns, metric, value in rows:
        if (machine_id, ts_ns) != current:
            if current is not None:
                pending.append({"m": current[0], "t": current[1], "v": values})
                if len(pending) >= _CHUNK:
                    conn.execute(fill, pending)
                    pending = []
            current, values = (machine_id, ts_ns), {}
        values[metric] = float(value)
    if current is not None:
        pending.append({"m": current[0], "t": current[1], "v": values})
    if pending:
        conn.execute(fill, pending)
    op.drop_index("ix_metric_samples_machine_id_metric_ts_ns", table_name="metric_samples")
    op.drop_table("metric_samples")


def downgrade() -> None:
    op.create_table(
        "metric_samples",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("machine_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("backfill", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metric_samples"),
    )
    op.create_index(
        "ix_metric_samples_machine_id_metric_ts_ns",
        "metric_samples",
        ["machine_id", "metric", "ts_ns"],
    )
    conn = op.get_bind()
    messages, samples = _MESSAGES, _SAMPLES
    rows = conn.execute(
        sa.select(
            messages.c.machine_id,
            messages.c.ts_ns,
            messages.c.backfill,
            messages.c.metric_values,
        )
    ).all()
    out = [
        {"machine_id": m, "metric": k, "ts_ns": t, "value": float(v), "backfill": b}
        for m, t, b, values in rows
        for k, v in (values or {}).items()
    ]
    for i in range(0, len(out), _CHUNK):
        conn.execute(sa.insert(samples), out[i : i + _CHUNK])
    with op.batch_alter_table("status_messages") as batch:
        batch.drop_column("metric_values")
