"""eta/expires as epoch floats, tasks.expired, revoke_requests; no task its own parent

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 05:30:00

The events carry eta and expires as ISO 8601 text with whatever offset the sender used;
they become epoch seconds like every other time. The text is converted in Python, the
same way on SQLite and PostgreSQL (neither parses every ISO form in SQL alike); a value
that does not parse becomes NULL. On SQLite dropping the text columns copies the tasks
table once (Alembic's batch mode).

`expired` is backfilled from the stored task-revoked events, and the parent_id that
Celery's retry of a top-level task points at the task itself is cleared.
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

PAGE = 5000  # rows converted per round trip
MAX_TIMESTAMP = 1e10  # as collectors/events.py: later than 2286 is no real time


def epoch(text):
    """ISO 8601 text (naive = UTC) as epoch seconds, or None. A copy of the collector's
    rule at the time of writing, so this migration keeps doing what it did."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        value = moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return value if 0 <= value < MAX_TIMESTAMP else None


def iso(value):
    return None if value is None else datetime.fromtimestamp(value, timezone.utc).isoformat()


def _convert(source, target, convert):
    """Write convert(source column) into the target columns, page by page in uuid order."""
    conn = op.get_bind()
    tasks = sa.table('tasks', sa.column('uuid'), *(sa.column(c) for c in source + target))
    last = ''
    while True:
        rows = conn.execute(
            sa.select(tasks.c.uuid, *(tasks.c[c] for c in source))
            .where(tasks.c.uuid > last, sa.or_(*(tasks.c[c].is_not(None) for c in source)))
            .order_by(tasks.c.uuid).limit(PAGE)).all()
        if not rows:
            return
        conn.execute(
            tasks.update().where(tasks.c.uuid == sa.bindparam('key'))
            .values({c: sa.bindparam(f'new_{c}') for c in target}),
            [{'key': row[0], **{f'new_{c}': convert(v) for c, v in zip(target, row[1:])}}
             for row in rows])
        last = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table('tasks') as batch:
        batch.add_column(sa.Column('eta_epoch', sa.Float(), nullable=True))
        batch.add_column(sa.Column('expires_epoch', sa.Float(), nullable=True))
        batch.add_column(sa.Column('expired', sa.Boolean(), nullable=True))
    _convert(('eta', 'expires'), ('eta_epoch', 'expires_epoch'), epoch)

    tasks = sa.table('tasks', sa.column('uuid'), sa.column('parent_id'),
                     sa.column('revoked_at'), sa.column('expired', sa.Boolean()))
    events = sa.table('task_events', sa.column('task_uuid'), sa.column('type'),
                      sa.column('info'))
    # The timeline keeps the event's fields as JSON (compact since the first release;
    # spaced as json.dumps writes it by default, to be safe).
    said_expired = sa.exists().where(
        events.c.task_uuid == tasks.c.uuid, events.c.type == 'task-revoked',
        sa.or_(events.c.info.like('%"expired":true%'), events.c.info.like('%"expired": true%')))
    op.execute(tasks.update().where(tasks.c.revoked_at.is_not(None))
               .values(expired=sa.case((said_expired, sa.true()), else_=sa.false())))
    op.execute(tasks.update().where(tasks.c.parent_id == tasks.c.uuid).values(parent_id=None))

    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('eta')
        batch.drop_column('expires')
        batch.alter_column('eta_epoch', new_column_name='eta')
        batch.alter_column('expires_epoch', new_column_name='expires')
    op.create_index('ix_tasks_eta', 'tasks', ['eta'], unique=False,
                    sqlite_where=sa.text('eta IS NOT NULL'),
                    postgresql_where=sa.text('eta IS NOT NULL'))
    op.create_table('revoke_requests',
    sa.Column('task_uuid', sa.String(length=255), nullable=False),
    sa.Column('requested_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('task_uuid')
    )
    op.create_index('ix_revoke_requests_requested_at', 'revoke_requests', ['requested_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_revoke_requests_requested_at', table_name='revoke_requests')
    op.drop_table('revoke_requests')
    op.drop_index('ix_tasks_eta', table_name='tasks')
    with op.batch_alter_table('tasks') as batch:
        batch.add_column(sa.Column('eta_text', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('expires_text', sa.String(length=64), nullable=True))
    _convert(('eta', 'expires'), ('eta_text', 'expires_text'), iso)
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('expired')
        batch.drop_column('eta')
        batch.drop_column('expires')
        batch.alter_column('eta_text', new_column_name='eta')
        batch.alter_column('expires_text', new_column_name='expires')
