"""Alerts: the /alerts page, /api/v1/alerts and the admin API for alert rules."""
