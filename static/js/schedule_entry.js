/*
 * One schedule entry: every field, its health and thresholds, its runs, and (for
 * operators outside read-only mode) Run now, Enable/Disable and the thresholds form.
 *
 * The source and name come from the page's data attributes; everything else from
 * /api/v1/schedules/<source>/<name>, shown as text only. Controls confirm in the page's
 * dialog and POST/PUT with the CSRF token through controls.js (window.LookoutControls,
 * which runs after this deferred script, so it is looked up when a form is sent).
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var S = window.LookoutSchedules;
  var root = document.getElementById("entry");
  if (!root || !S) { return; }
  var source = root.dataset.source;
  var name = root.dataset.name;
  var key = source + "/" + name;
  var apiPath = S.entryPath(source, name);  // the API path is the page's, under /api/v1
  var controls = document.getElementById("schedule-controls");
  var RUN_LIMIT = 100;
  var THRESHOLDS = [
    {key: "grace", label: "Grace", seconds: true},
    {key: "late_after", label: "Late after", seconds: true},
    {key: "running_limit", label: "Running limit", seconds: true},
    {key: "failures", label: "Failures in a row", seconds: false}];
  var item = null;
  var formFilled = false;
  var seq = 0;

  function none(value) { return value === null || value === undefined || value === ""; }

  function field(list, label, content, attrs) {
    L.append(list, [L.el("dt", {}, label),
      L.el("dd", attrs || {}, none(content) ? "–" : content)]);
  }

  function seconds(value) {
    if (none(value)) { return "–"; }
    var n = Number(value);
    return (n === Math.round(n) ? String(n) : n.toFixed(1)) + " s" + (n >= 60 ? " (" + S.span(n) + ")" : "");
  }

  function showHeader() {
    var health = item.health || {};
    L.append(L.clear(document.getElementById("entry-health")), S.healthBadge(health));
    root.dataset.status = health.status || "unknown";
    var reason = document.getElementById("health-reason");
    reason.hidden = !health.reason;
    L.setText(reason, health.reason || "");
    var error = document.getElementById("entry-error");
    error.hidden = !item.error;
    L.setText(error, item.error || "");
    var note = document.getElementById("entry-note");
    note.hidden = !item.note;
    L.setText(note, item.note || "");
    var shared = L.clear(document.getElementById("entry-shared"));
    var others = item.shares_runs_with || [];
    shared.hidden = !others.length;
    if (others.length) {
      L.append(shared, "Same task and arguments as ");
      others.forEach(function (other, i) {
        var slash = other.indexOf("/");
        if (i) { L.append(shared, ", "); }
        L.append(shared, L.el("a", {href: S.entryPath(other.slice(0, slash), other.slice(slash + 1))}, other));
      });
      L.append(shared, ": the events cannot tell their runs apart, so each shows them all.");
    }
  }

  function showFields() {
    var list = L.clear(document.getElementById("fields"));
    var schedule = item.schedule || {};
    field(list, "source", item.source);
    field(list, "name", item.name, {className: "mono pre"});
    field(list, "task", item.task ? L.el("a", {href: "/tasks?" + new URLSearchParams({name: item.task}),
      className: "mono"}, item.task) : null);
    field(list, "args", item.args, {className: "mono pre"});
    field(list, "kwargs", item.kwargs, {className: "mono pre"});
    var options = Object.keys(item.options || {});
    field(list, "options", options.length ? options.map(function (k) {
      return L.el("span", {className: "block"}, k + ": " + item.options[k]);
    }) : null, {className: "mono pre"});
    field(list, "schedule", [S.scheduleText(schedule),
      schedule.kind ? L.el("span", {className: "muted"}, " (" + schedule.kind + ")") : null],
    {"data-testid": "schedule"});
    field(list, "time zone", schedule.timezone || (schedule.kind === "interval"
      ? "none (counted from the last run)" : null));
    field(list, "enabled", (item.enabled ? "yes" : "no") + (item.one_off ? " · one-off" : ""),
      {"data-testid": "enabled"});
    if (item.description) { field(list, "description", item.description, {className: "pre"}); }
    if (!none(item.start_time)) { field(list, "start time", L.fmtTime(item.start_time)); }
    if (!none(item.expires_at)) { field(list, "expires", L.fmtTime(item.expires_at)); }
    // The header's zone first, as the page's other times; the schedule's own beside it.
    var own = S.ownZoneTime(item);
    field(list, "next run", none(item.next_run_at) ? null : [
      L.fmtTime(item.next_run_at), " ", S.relSpan(item.next_run_at, "due", {className: "small rel"},
      (item.thresholds || {}).late_after),
      own ? L.el("span", {className: "muted small block", "data-testid": "next-run-own-zone"},
        "in its schedule's zone: " + own) : null],
    {"data-testid": "next-run"});
    var last = item.last_run;
    field(list, "last run", last ? [L.el("a", {href: L.taskUrl(last.uuid)}, L.fmtTime(last.at)), " ",
      L.stateBadge(last.state), " ", S.relSpan(last.at, "ago", {className: "muted small"})]
      : L.el("span", {className: "muted"}, "none seen"), {"data-testid": "last-run"});
    field(list, "beat's record", S.beatRecord(item) ||
      L.el("span", {className: "muted"}, "none (this scheduler keeps no record Lookout can read)"),
    {"data-testid": "beat-record"});
  }

  function showThresholds() {
    var limits = item.thresholds || {};
    var custom = limits.custom || [];
    L.append(L.clear(document.getElementById("thresholds-body")), THRESHOLDS.map(function (t) {
      var own = custom.indexOf(t.key) >= 0;
      return L.el("tr", {"data-threshold": t.key, "data-custom": own ? "true" : "false"}, [
        L.el("td", {}, t.label),
        L.el("td", {}, t.seconds ? seconds(limits[t.key]) : (none(limits[t.key]) ? "–" : String(limits[t.key]))),
        L.el("td", {}, own ? L.el("strong", {}, "operator") : L.el("span", {className: "muted"}, "default"))]);
    }));
  }

  function showRuns(runs) {
    runs = runs || [];
    L.setText("runs-count", runs.length ? "(" + runs.length + (runs.length >= RUN_LIMIT ? ", newest" : "") + ")" : "");
    L.append(L.clear(document.getElementById("runs-strip")),
      S.outcomeStrip(runs.map(function (r) { return r.state; })));
    document.getElementById("runs-empty").hidden = runs.length > 0;
    document.getElementById("runs-table").hidden = !runs.length;
    L.append(L.clear(document.getElementById("runs-body")), runs.map(function (r) {
      return L.el("tr", {"data-uuid": r.uuid, "data-state": r.state}, [
        L.el("td", {}, L.fmtTime(r.at)),
        L.el("td", {}, L.stateBadge(r.state)),
        L.el("td", {}, L.fmtDuration(r.runtime)),
        L.el("td", {}, r.worker ? L.el("a", {href: "/workers/" + encodeURIComponent(r.worker)}, r.worker) : "–"),
        L.el("td", {}, L.el("a", {href: L.taskUrl(r.uuid), className: "mono"}, r.uuid)),
        L.el("td", {className: "mono clip", title: r.exception || null}, r.exception || "")]);
    }));
  }

  function showControls() {
    if (!controls) { return; }
    controls.hidden = false;
    var toggle = document.getElementById("toggle-form");
    var na = document.getElementById("toggle-na");
    toggle.hidden = !item.can_toggle;
    na.hidden = !!item.can_toggle;
    L.setText(na, item.can_toggle ? "" : "Enable/disable: change this entry where it is defined (" +
      item.source + "); Lookout cannot switch it.");
    var button = document.getElementById("toggle-button");
    L.setText(button, item.enabled ? "Disable" : "Enable");
    button.dataset.action = item.enabled ? "disable" : "enable";
    document.getElementById("run-button").disabled = !item.task;
    if (!formFilled) { fillThresholds(); }
  }

  /* The form holds only the operator's own values; an empty input means the default. */
  function fillThresholds() {
    var form = document.getElementById("thresholds-form");
    var limits = item.thresholds || {};
    var custom = limits.custom || [];
    THRESHOLDS.forEach(function (t) {
      var input = form.elements[t.key];
      var own = custom.indexOf(t.key) >= 0;
      input.value = own && !none(limits[t.key]) ? String(limits[t.key]) : "";
      input.placeholder = own ? "default" : "default: " + (none(limits[t.key]) ? "–" : limits[t.key]);
    });
    formFilled = true;
  }

  function load() {
    var mine = ++seq;
    return L.api(apiPath, {limit: RUN_LIMIT}).then(function (data) {
      if (mine !== seq) { return; }
      item = data;
      L.showError(null);
      showHeader();
      showFields();
      showThresholds();
      showRuns(data.runs);
      showControls();
      root.dataset.loaded = "true";
    }).catch(function (error) {
      if (mine !== seq) { return; }
      L.showError(error);
      root.dataset.loaded = error.status === 404 ? "missing" : "error";
      if (error.status === 404 && controls) { controls.hidden = true; }
    });
  }

  /* ---- controls ---- */
  function result(id, status, content) {
    var out = L.clear(document.getElementById(id));
    out.dataset.status = String(status);
    L.append(out, status >= 400 || status === 0
      ? L.el("p", {className: "error", role: "alert"}, content)
      : L.el("p", {className: "control-done"}, content));
  }

  function message(res) {
    return (res.data && res.data.error && res.data.error.message) || ("HTTP " + res.status);
  }

  function act(method, suffix, payload, title, lines, resultId, done) {
    var C = window.LookoutControls;
    if (!C) { result(resultId, 0, "Controls did not load; reload the page."); return; }
    C.confirmAction(title, lines).then(function (yes) {
      if (!yes) { return; }
      L.clear(document.getElementById(resultId));
      C.send(method, apiPath + suffix, payload).then(function (res) {
        if (res.status >= 400) { result(resultId, res.status, message(res)); return; }
        done(res.data);
        load();
      }).catch(function (error) { result(resultId, 0, String(error.message || error)); });
    });
  }

  if (controls) {
    document.getElementById("run-form").addEventListener("submit", function (event) {
      event.preventDefault();
      if (!item) { return; }
      act("POST", "/run", undefined, "Run " + item.name + " now?", [
        "Sends " + item.task + " once, now, with the entry's arguments:",
        L.el("p", {className: "mono pre"}, "args: " + item.args + "\nkwargs: " + item.kwargs),
        "Beat's own schedule is not changed."], "run-result", function (data) {
        var out = L.clear(document.getElementById("run-result"));
        out.dataset.status = "200";
        L.append(out, L.el("p", {className: "control-done"}, ["Sent ", L.el("span", {className: "mono"}, data.task),
          ": task ", L.el("a", {href: L.taskUrl(data.task_id), className: "mono",
            "data-testid": "run-task-link"}, data.task_id)]));
      });
    });

    document.getElementById("toggle-form").addEventListener("submit", function (event) {
      event.preventDefault();
      if (!item || !item.can_toggle) { return; }
      var action = item.enabled ? "disable" : "enable";
      var lines = action === "disable"
        ? ["Beat stops sending " + item.task + " for this entry (its scheduler reloads the change within seconds).",
          "django-celery-beat also clears the entry's last run time, as its admin does."]
        : ["Beat starts sending " + item.task + " for this entry again."];
      act("POST", "/" + action, undefined, (action === "disable" ? "Disable " : "Enable ") + item.name + "?",
        lines, "toggle-result", function (data) {
          result("toggle-result", 200, data.enabled ? "Enabled." : "Disabled.");
        });
    });

    document.getElementById("thresholds-form").addEventListener("submit", function (event) {
      event.preventDefault();
      if (!item) { return; }
      var form = event.target;
      var payload = {};
      var lines = [];
      var bad = null;
      THRESHOLDS.forEach(function (t) {
        var raw = form.elements[t.key].value.trim();
        var value = raw === "" ? null : Number(raw);
        if (value !== null && !isFinite(value)) { bad = t.label + ": not a number"; }
        payload[t.key] = value;
        lines.push(t.label + ": " + (value === null ? "default" : value + (t.seconds ? " s" : "")));
      });
      if (bad) { result("thresholds-result", 400, bad); return; }
      act("PUT", "/thresholds", payload, "Set this entry's thresholds?", lines, "thresholds-result",
        function () {
          formFilled = false;  // refilled from the saved values by the reload
          result("thresholds-result", 200, "Saved.");
        });
    });
  }

  load();
  var pushed = L.throttle(load, 1000);
  L.live(["schedules"], {schedules: function (message) {
    var changed = (message && message.changed) || {};
    var removed = (message && message.removed) || [];
    if (Object.prototype.hasOwnProperty.call(changed, key) || removed.indexOf(key) >= 0) { pushed(); }
  }}, load);
  setInterval(function () { if (!document.hidden) { load(); } }, Number(root.dataset.refreshMs) || 10000);
  setInterval(S.tick, 1000);
}());
