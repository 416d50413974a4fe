"""Failure groups: the /failures page and /api/v1/failures."""
