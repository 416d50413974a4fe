"""GET /metrics: Prometheus exposition from the store (see service.py)."""
