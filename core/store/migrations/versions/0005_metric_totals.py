"""metric totals: monotonic Prometheus series kept by the collector

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 03:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('metric_totals',
    sa.Column('metric', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.String(length=1024), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('metric', 'labels')
    )
    op.create_table('metric_labels',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'value')
    )


def downgrade() -> None:
    op.drop_table('metric_labels')
    op.drop_table('metric_totals')
