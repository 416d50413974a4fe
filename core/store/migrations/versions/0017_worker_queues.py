"""worker_queues: the queues each worker last said it consumes

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 11:35:00

A queue whose only worker died showed "0 consumers" and nothing else, and the dead
worker's page answered "no reply" on every tab: nobody could tell which worker to bring
back (an on-call trial). The collector's queue sampler already asks the workers which
queues they consume; it now keeps the answers, per worker and queue, with when.
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'worker_queues',
        sa.Column('hostname', sa.String(length=255), nullable=False),
        sa.Column('queue', sa.String(length=255), nullable=False),
        sa.Column('seen_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('hostname', 'queue'),
    )
    op.create_index('ix_worker_queues_queue', 'worker_queues', ['queue'])


def downgrade() -> None:
    op.drop_index('ix_worker_queues_queue', table_name='worker_queues')
    op.drop_table('worker_queues')
