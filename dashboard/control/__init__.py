"""Remote control of workers and tasks: revoke, limits, pool and consumer commands."""
