"""metric_labels.last_seen: when each admitted label value was last counted

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 08:00:00

A fleet whose hostnames change with every deploy filled the hostname cap with retired
workers, and every new worker then counted as "other" for good (a trial). With the cap
full, a value unseen for a day now gives its place (collectors/label_caps.py). Values
admitted before this revision have no time: they are the first to give theirs.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('metric_labels', sa.Column('last_seen', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('metric_labels') as batch:
        batch.drop_column('last_seen')
