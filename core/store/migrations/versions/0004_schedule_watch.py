"""schedule watch: first sight and thresholds of beat entries

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedule_watch',
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('first_seen_at', sa.Float(), nullable=False),
    sa.Column('grace', sa.Float(), nullable=True),
    sa.Column('late_after', sa.Float(), nullable=True),
    sa.Column('running_limit', sa.Float(), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=True),
    sa.Column('updated_by', sa.String(length=150), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('source', 'name')
    )


def downgrade() -> None:
    op.drop_table('schedule_watch')
