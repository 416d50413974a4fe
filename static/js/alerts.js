/*
 * Alerts: what is firing, what resolved, and the rules (admins add and delete them).
 * Messages, rule names and channels are user data: shown as text only.
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var root = document.getElementById("alerts");
  var canEdit = root.dataset.canEdit === "true";
  var kinds = {};

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function call(method, path, body) {
    return fetch("/api/v1" + path, {method: method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRF-Token": csrf()},
      body: body === undefined ? undefined : JSON.stringify(body)})
      .then(function (r) { return r.json().catch(function () { return {}; })
        .then(function (data) { return {status: r.status, data: data}; }); });
  }

  function delivered(alert) {
    if (!(alert.deliveries || []).length) {
      // A rule without channels uses the collector's defaults; with none set, nobody was
      // told, and an empty cell did not say so (an on-call trial).
      return L.el("span", {className: "error", "data-testid": "notified-nobody",
        title: "The rule names no channel and the collector that evaluates it has no " +
          "default: set LOOKOUT_ALERT_WEBHOOK_URL or LOOKOUT_ALERT_EMAIL_TO for it, or " +
          "give the rule a channel"}, "nobody (no channel)");
    }
    return (alert.deliveries || []).map(function (d) {
      return L.el("div", {className: d.ok ? "" : "error", title: d.error || ""},
        d.event + " → " + d.channel + (d.ok ? "" : " (failed)"));
    });
  }

  function alertRow(alert, resolved) {
    var cells = [L.el("td", {}, L.fmtTime(alert.fired_at))];
    if (resolved) { cells.push(L.el("td", {}, L.fmtTime(alert.resolved_at))); }
    // A resolution says why (a failure rate back under, or no run left to judge), not
    // only "cleared": a task that stopped running is not one that recovered (a trial).
    var what = resolved ? [alert.message, L.el("div", {className: "muted",
      "data-testid": "resolution"}, "Resolved: " + (alert.resolution || "cleared"))]
      : alert.message;
    if (!resolved && alert.clear_since) {  // resolves once clear for the rule's cooldown
      what = [alert.message, L.el("div", {className: "muted", "data-testid": "clear-since"},
        "Clear since " + L.fmtTime(alert.clear_since) + ": resolves once clear for its " +
        "rule's cooldown; back before that, it stays this alert")];
    }
    cells.push(L.el("td", {}, alert.rule_name), L.el("td", {className: "mono"}, alert.key),
      L.el("td", {}, what));
    if (!resolved) { cells.push(L.el("td", {}, delivered(alert))); }
    return L.el("tr", {"data-alert": String(alert.id), "data-status": alert.status}, cells);
  }

  function ruleRow(rule) {
    var remove = null;
    if (canEdit && rule.source !== "file") {
      remove = L.el("button", {type: "button", className: "rule-delete",
        "data-rule": String(rule.id)}, "Delete");
    }
    return L.el("tr", {"data-rule": rule.name}, [
      L.el("td", {}, rule.name), L.el("td", {}, rule.kind),
      L.el("td", {className: "mono"}, JSON.stringify(rule.params)),
      L.el("td", {className: "mono"}, rule.notify.length ? rule.notify.join("\n") : "defaults"),
      L.el("td", {}, L.fmtDuration(rule.cooldown)), L.el("td", {}, rule.enabled ? "yes" : "no"),
      L.el("td", {}, rule.source === "file" ? "rules file" : (rule.updated_by || "api")),
      L.el("td", {}, remove)]);
  }

  function showKinds() {
    var select = document.getElementById("rule-kind");
    if (!select || select.options.length) { return; }
    Object.keys(kinds).forEach(function (kind) { select.appendChild(L.el("option", {value: kind}, kind)); });
    select.addEventListener("change", explain);
    explain();
  }

  function explain() {
    var kind = document.getElementById("rule-kind").value;
    var spec = kinds[kind] || {};
    L.setText("kind-help", Object.keys(spec).map(function (field) {
      return field + " (" + spec[field].type + ", default " + JSON.stringify(spec[field].default) +
        "): " + spec[field].help;
    }).join(" · ") || "no parameters");
  }

  function refresh() {
    return Promise.all([L.api("/alerts", {limit: 200}), L.api("/alert-rules")]).then(function (got) {
      var list = got[0], rules = got[1];
      L.showError(null);
      kinds = rules.kinds || {};
      L.setText("firing-count", list.firing);
      var firing = list.items.filter(function (a) { return a.status === "firing"; });
      var resolved = list.items.filter(function (a) { return a.status === "resolved"; });
      L.append(L.clear(document.getElementById("firing-body")), firing.map(function (a) { return alertRow(a, false); }));
      document.getElementById("firing-empty").hidden = firing.length > 0;
      L.append(L.clear(document.getElementById("resolved-body")), resolved.map(function (a) { return alertRow(a, true); }));
      L.append(L.clear(document.getElementById("rules-body")), rules.items.map(ruleRow));
      showKinds();
      root.dataset.loaded = "true";
    }).catch(L.showError);
  }

  function show(result) {
    var out = L.clear(document.getElementById("rule-result"));
    out.dataset.status = String(result.status);
    L.append(out, L.el("p", {className: result.status >= 400 ? "error" : "control-done",
      role: result.status >= 400 ? "alert" : null},
      result.status >= 400 ? ((result.data.error && result.data.error.message) || "HTTP " + result.status)
        : "Saved."));
  }

  var form = document.getElementById("rule-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var params;
      try { params = JSON.parse(document.getElementById("rule-params").value || "{}"); }
      catch (e) { show({status: 400, data: {error: {message: "params: not valid JSON"}}}); return; }
      var notify = document.getElementById("rule-notify").value.split("\n")
        .map(function (s) { return s.trim(); }).filter(Boolean);
      call("POST", "/alert-rules", {name: document.getElementById("rule-name").value,
        kind: document.getElementById("rule-kind").value, params: params, notify: notify,
        cooldown: document.getElementById("rule-cooldown").value})
        .then(function (result) { show(result); if (result.status < 400) { refresh(); } });
    });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".rule-delete");
    if (!button) { return; }
    call("DELETE", "/alert-rules/" + button.dataset.rule).then(function (result) {
      if (result.status >= 400) { L.showError({message: result.data.error.message}); }
      refresh();
    });
  });

  refresh();
  L.live([], {});
  setInterval(refresh, 10000);
}());
