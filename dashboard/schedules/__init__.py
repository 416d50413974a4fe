"""Beat schedules: entries, their next runs and last runs."""
