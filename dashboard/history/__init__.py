"""Task history: lists, details, stats and retry rates, read from the store."""
