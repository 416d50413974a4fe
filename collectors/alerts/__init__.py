"""Alert evaluation in the collector: rules (what is wrong now), engine (fire once,
resolve once, cool down, one evaluator by lease), notify (webhooks and e-mail)."""
