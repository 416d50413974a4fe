"""alerts.resolution: why an alert resolved, in words

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:30:00

Every resolution read "cleared", also that of a failure-rate alert whose task simply
stopped running: its failing runs left the window, nothing succeeded (a trial). The
resolution now says what was found: back under the threshold, or no run left to judge.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('resolution', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.drop_column('resolution')
