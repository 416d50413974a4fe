"""Server-rendered HTML pages (placeholder until the live dashboard lands)."""
from flask import Blueprint

bp = Blueprint("pages", __name__)
