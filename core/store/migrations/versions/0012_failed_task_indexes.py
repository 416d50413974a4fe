"""Two partial indexes of the failed tasks: by worker and time, and by runtime

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 16:30:00

Failures are what an on-call engineer lists first, and at 1M tasks the two slowest list
queries were about them (SQLite, cold):
- `worker=X&state=FAILURE` read every row of the worker (its (worker, timestamp) index,
  then the row for its state) to count and list its few failures: 84-124 ms.
- `state=FAILURE&sort=-runtime` fetched and sorted every failure: 110-160 ms.
Indexes of the failed rows only answer both from their first entries. They cost the writer
an entry per failed task, not one per state change of every task as (worker, state, ...)
or (state, runtime) indexes over all tasks would.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

WHERE = sa.text("state = 'FAILURE'")


def upgrade() -> None:
    op.create_index('ix_tasks_failed_worker_timestamp', 'tasks', ['worker', 'timestamp'],
                    unique=False, sqlite_where=WHERE, postgresql_where=WHERE)
    op.create_index('ix_tasks_failed_runtime', 'tasks', ['runtime', 'uuid'],
                    unique=False, sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade() -> None:
    op.drop_index('ix_tasks_failed_runtime', table_name='tasks')
    op.drop_index('ix_tasks_failed_worker_timestamp', table_name='tasks')
