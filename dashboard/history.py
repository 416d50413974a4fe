"""Read-side service over the history store (placeholder until the history API lands)."""
from sqlalchemy import Engine


class HistoryService:
    def __init__(self, engine: Engine):
        self.engine = engine
