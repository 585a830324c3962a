"""The manifest: artifacts, per-stage status with leases, results.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LEASED = sa.text("status = 'leased'")
_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("captured_ns", sa.BigInteger(), nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.UniqueConstraint("path", name="uq_artifacts_path"),
    )
    op.create_index("ix_artifacts_kind_created_ns", "artifacts", ["kind", "created_ns"])
    op.create_table(
        "stage_status",
        sa.Column("artifact_id", _ID, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ns", sa.BigInteger(), nullable=False),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name="fk_stage_status_artifact_id_artifacts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "stage", name="pk_stage_status"),
    )
    op.create_index(
        "ix_stage_status_pending",
        "stage_status",
        ["stage", "next_attempt_ns"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    op.create_index(
        "ix_stage_status_leased",
        "stage_status",
        ["stage", "lease_expires_ns"],
        sqlite_where=_LEASED,
        postgresql_where=_LEASED,
    )
    op.create_index(
        "ix_stage_status_owner",
        "stage_status",
        ["lease_owner"],
        sqlite_where=_LEASED,
        postgresql_where=_LEASED,
    )
    op.create_index("ix_stage_status_stage_status", "stage_status", ["stage", "status"])
    op.create_table(
        "results",
        sa.Column("seq", _ID, autoincrement=True, nullable=False),
        sa.Column("artifact_id", _ID, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("recorded_ns", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name="fk_results_artifact_id_artifacts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_results"),
    )
    op.create_index(
        "ix_results_artifact_id_stage", "results", ["artifact_id", "stage"], unique=True
    )


def downgrade() -> None:
    op.drop_table("results")
    op.drop_table("stage_status")
    op.drop_table("artifacts")
