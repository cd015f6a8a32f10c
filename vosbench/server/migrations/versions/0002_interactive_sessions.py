"""Interactive track: sessions of the DAVIS interactive client and their interactions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interactive_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_key", sa.String(128), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("state_json", sa.Text, nullable=False),
        sa.Column("summary_json", sa.Text, nullable=True),
        sa.Column("auc", sa.Float, nullable=True),
        sa.Column("jf_at_threshold", sa.Float, nullable=True),
        sa.Column("n_interactions", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_interactive_sessions_user_id", "interactive_sessions", ["user_id"])
    op.create_table(
        "interactive_interactions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("interactive_sessions.id"), nullable=False),
        sa.Column("sequence", sa.String(128), nullable=False),
        sa.Column("scribble_idx", sa.Integer, nullable=False),
        sa.Column("interaction", sa.Integer, nullable=False),
        sa.Column("client_timing", sa.Float, nullable=False),
        sa.Column("server_timing", sa.Float, nullable=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("dropped", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("next_frame", sa.Integer, nullable=True),
        sa.Column("scores_json", sa.Text, nullable=False),
        sa.UniqueConstraint("session_id", "sequence", "scribble_idx", "interaction", name="uq_interaction_once"),
    )
    op.create_index("ix_interactive_interactions_session_id", "interactive_interactions", ["session_id"])


def downgrade() -> None:
    op.drop_table("interactive_interactions")
    op.drop_table("interactive_sessions")
