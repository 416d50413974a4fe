"""task links: retries sent by Lookout, linked to their original

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 04:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('task_links',
    sa.Column('task_uuid', sa.String(length=255), nullable=False),
    sa.Column('retry_of', sa.String(length=255), nullable=False),
    sa.Column('created_by', sa.String(length=150), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('task_uuid')
    )
    op.create_index('ix_task_links_retry_of', 'task_links', ['retry_of'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_task_links_retry_of', table_name='task_links')
    op.drop_table('task_links')
