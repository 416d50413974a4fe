"""schedule_status.due_at: when each beat entry was due, as last judged

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 07:00:00

A stopped beat turns its entries `missed` one by one, each after its own grace, so the
first one or two paged alone before the grouped "is beat itself running?" alert formed
(a trial). Entries already past their due time with nothing received (still within
their grace) are evidence too: the alert rule groups them from the first miss.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('schedule_status', sa.Column('due_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('schedule_status') as batch:
        batch.drop_column('due_at')
