"""Health of the pipeline (/healthz), judged from the collectors' status rows."""
