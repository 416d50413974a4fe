"""`celery -A proj lookout ...`: the lookout command group as a Celery sub-command.

Registered under Celery's `celery.commands` entry point; Celery puts its CLI context
(with the loaded app) on the root click context, which `cli.build_settings` reads.
"""
from lookout.dashboard.cli import lookout

__all__ = ["lookout"]
