"""The Lookout collector: consumes Celery events and records task history in SQL."""
