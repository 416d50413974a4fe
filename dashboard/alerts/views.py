"""The Alerts page, GET /api/v1/alerts, and /api/v1/alert-rules (admins edit; audited)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from lookout.dashboard.alerts.service import AlertService
from lookout.dashboard.audit.recorder import audited, note, record_request
from lookout.dashboard.web.params import json_body, parse_limit, reject_unknown, row_id
from lookout.dashboard.web.errors import bad_parameter
from lookout.dashboard.web.roles import require_role

bp = Blueprint("alerts", __name__)
bp.after_request(record_request)


def alerts() -> AlertService:
    return current_app.extensions["lookout.alerts"]


@bp.get("/alerts")
def alerts_page():
    return render_template("alerts/alerts.html", page="alerts")


@bp.get("/api/v1/alerts")
def list_alerts():
    reject_unknown(request.args, frozenset({"status", "limit"}))
    status = request.args.get("status") or None
    if status not in (None, "firing", "resolved"):
        raise bad_parameter("status", "firing or resolved")
    return jsonify(alerts().alerts(status, parse_limit(request.args.get("limit"), 100, 1000)))


@bp.get("/api/v1/alert-rules")
def list_rules():
    reject_unknown(request.args, frozenset())
    return jsonify(alerts().rules())


def _admin(action: str, target: str | None = None) -> str | None:
    note(action=action, targets=[target] if target else [])
    return require_role("admin", control=True).name


@bp.post("/api/v1/alert-rules")
@audited("alert_rule.create")
def create_rule():
    actor = _admin("alert_rule.create")
    body = json_body()
    note(targets=[str(body.get("name"))[:150]], parameters=body)
    return jsonify(alerts().create(body, actor)), 201


@bp.put("/api/v1/alert-rules/<int:rule_id>")
@audited("alert_rule.update")
def update_rule(rule_id: int):
    actor = _admin("alert_rule.update", str(rule_id))
    body = json_body()
    note(parameters=body)
    return jsonify(alerts().update(row_id(rule_id, "alert rule"), body, actor))


@bp.delete("/api/v1/alert-rules/<int:rule_id>")
@audited("alert_rule.delete")
def delete_rule(rule_id: int):
    _admin("alert_rule.delete", str(rule_id))
    return jsonify(alerts().delete(row_id(rule_id, "alert rule")))
