"""The history API under /api/v1 (placeholder until the history API lands)."""
from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")
