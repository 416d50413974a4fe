"""deployment id

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 23:40:00
"""
import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('deployment',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(table, [{'id': uuid.uuid4().hex, 'created_at': time.time()}])


def downgrade() -> None:
    op.drop_table('deployment')
