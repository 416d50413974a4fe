"""The audit trail for operators: the Audit page and /api/v1/audit."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from lookout.dashboard.audit.recorder import audit_service
from lookout.dashboard.audit.service import OUTCOMES
from lookout.dashboard.web.params import row_id
from lookout.dashboard.web.roles import require_role

bp = Blueprint("audit", __name__)


@bp.before_request
def operators_only():
    require_role("operator")


@bp.get("/api/v1/audit")
def list_audit():
    return jsonify(audit_service().list(request.args))


@bp.get("/api/v1/audit/<int:record_id>")
def get_audit(record_id: int):
    """One record; bulk revokes update theirs as they progress, so pages poll this."""
    return jsonify(audit_service().get(row_id(record_id, "audit record")))


@bp.get("/audit")
def audit_page():
    return render_template("audit/audit.html", page="audit", outcomes=OUTCOMES)
