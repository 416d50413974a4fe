"""The fleet: workers (liveness, inspect) and queues (depth now and over time)."""
