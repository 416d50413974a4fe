"""The audit trail: one record per control or admin request, allowed or refused."""
