"""The alerts API: rules checked like the collector checks them, admins only, audited;
rules from the file are the file's."""
from __future__ import annotations

import time

from sqlalchemy import insert

from helpers.control import app_with_users, audit_records, login
from lookout.core.store.models import Alert, AlertRule


def test_admins_create_update_and_delete_rules(sqlite_url):
    app = app_with_users(sqlite_url, "memory://")
    client = app.test_client()
    headers = {"X-CSRF-Token": login(client, "ada")}
    rule = {"name": "reports failing", "kind": "failure_rate",
            "params": {"task": "proj.report", "threshold": 0.3, "window": "15m"},
            "notify": ["https://hooks.example.com/x"]}
    created = client.post("/api/v1/alert-rules", json=rule, headers=headers)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["params"] == {"task": "proj.report", "threshold": 0.3, "window": 900.0,
                              "min_runs": 5}
    assert body["updated_by"] == "ada" and body["source"] == "api"
    again = client.post("/api/v1/alert-rules", json=rule, headers=headers)
    assert again.status_code == 400 and again.get_json()["error"]["parameter"] == "name"
    for bad, field in (({**rule, "name": "b", "kind": "x"}, "kind"),
                       ({**rule, "name": "b", "params": {"threshold": "lots"}},
                        "params.threshold"),
                       ({**rule, "name": "b", "params": {"tsak": "x"}}, "params.tsak"),
                       ({**rule, "name": "b", "cooldown": -1}, "cooldown")):
        response = client.post("/api/v1/alert-rules", json=bad, headers=headers)
        assert response.status_code == 400 and \
            response.get_json()["error"]["parameter"] == field, bad
    rule_id = body["id"]
    changed = client.put(f"/api/v1/alert-rules/{rule_id}", headers=headers,
                         json={**rule, "enabled": False})
    assert changed.status_code == 200 and changed.get_json()["enabled"] is False
    listed = client.get("/api/v1/alert-rules").get_json()
    assert [r["name"] for r in listed["items"]] == ["reports failing"]
    assert "missed_schedule" in listed["kinds"]
    assert client.delete(f"/api/v1/alert-rules/{rule_id}", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/alert-rules/{rule_id}", headers=headers).status_code == 404
    assert [r["outcome"] for r in audit_records(app, action="alert_rule.create")] == \
        ["invalid"] * 5 + ["ok"]


def test_viewers_and_operators_cannot_edit_rules_and_file_rules_stay(sqlite_url):
    app = app_with_users(sqlite_url, "memory://")
    with app.extensions["lookout.engine"].begin() as conn:
        conn.execute(insert(AlertRule).values(name="from file", kind="lost_tasks",
                                              params="{}", notify="[]", cooldown=600,
                                              enabled=True, source="file",
                                              updated_at=time.time()))
        conn.execute(insert(Alert).values(rule_id=1, rule_name="from file", kind="lost_tasks",
                                          key="*", status="firing", message="2 lost",
                                          value=2, fired_at=time.time(),
                                          updated_at=time.time(), deliveries="[]"))
    for user in ("vic", "otto"):
        client = app.test_client()
        headers = {"X-CSRF-Token": login(client, user)}
        denied = client.post("/api/v1/alert-rules", headers=headers,
                             json={"name": "x", "kind": "lost_tasks"})
        assert denied.status_code == 403
        firing = client.get("/api/v1/alerts?status=firing").get_json()
        assert firing["firing"] == 1 and firing["items"][0]["message"] == "2 lost"
    admin = app.test_client()
    headers = {"X-CSRF-Token": login(admin, "ada")}
    assert admin.put("/api/v1/alert-rules/1", headers=headers,
                     json={"name": "from file", "kind": "lost_tasks"}).status_code == 409
    assert admin.get("/api/v1/alerts?status=maybe").status_code == 400
