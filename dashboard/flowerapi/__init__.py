"""Flower 2.x's REST API (/api/...) answered from Lookout, so Flower scripts keep working."""
