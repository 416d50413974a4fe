"""workers.online_since: when a worker last (re)started, for lost-task detection

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 04:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.add_column(sa.Column('online_since', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workers') as batch:
        batch.drop_column('online_since')
