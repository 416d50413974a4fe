"""alerts.clear_since: since when a firing alert's condition has been clear

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 11:00:00

A rule's cooldown kept a key that had just resolved from firing again: a backlog
resolved by a sampling gap, or a beat stopped half a minute after it ran, stayed quiet
for ten minutes (an on-call trial). An alert now resolves only once its condition has
stayed clear for the cooldown, so a return within it is the same, still firing alert.
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('clear_since', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.drop_column('clear_since')
