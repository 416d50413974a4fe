/*
 * Schedules: every beat entry from every source Lookout reads (the app's beat_schedule,
 * django-celery-beat, RedBeat), with its health, next and last runs and recent outcomes.
 *
 * Entry names, tasks, args and errors come from the user's config and are shown as text
 * only. The list re-reads /api/v1/schedules when the "schedules" room says a status
 * changed, and every 10 s anyway (runs arrive without changing any status; relative
 * times move). Shared helpers: schedule_common.js (window.LookoutSchedules).
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var S = window.LookoutSchedules;
  /* ------------------------------------------------------------------ the list page */
  var root = document.getElementById("schedules");
  if (!root) { return; }
  var tbody = document.getElementById("schedules-body");
  var chips = document.getElementById("status-chips");
  var form = document.getElementById("schedule-filters");
  var filters = readFilters();
  var seq = 0;
  var shownAlerts = null;

  function readFilters() {
    var params = new URLSearchParams(window.location.search);
    var statuses = (params.get("status") || "").split(",").map(function (s) { return s.trim(); })
      .filter(Boolean);
    return {status: statuses, source: params.get("source") || "", task: params.get("task") || "",
      q: params.get("q") || ""};
  }

  function apiParams() {
    var params = {};
    if (filters.status.length) { params.status = filters.status.join(","); }
    ["source", "task", "q"].forEach(function (key) { if (filters[key]) { params[key] = filters[key]; } });
    return params;
  }

  function filtering() { return Object.keys(apiParams()).length > 0; }

  /* The page's own URL carries the filters, so a filtered view can be shared. */
  function syncUrl() {
    var query = String(new URLSearchParams(apiParams())).replace(/%2C/g, ",");
    window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
  }

  function setFilters(change) {
    Object.keys(change).forEach(function (key) { filters[key] = change[key]; });
    syncUrl();
    showChips(lastCounts);
    refresh();
  }

  /* ---- header: app, scheduler, sources read, errors and warnings ---- */
  function showHeader(data) {
    L.setText("app-name", data.app ? "app " + data.app : "");
    var scheduler = document.getElementById("scheduler-line");
    scheduler.hidden = !data.scheduler;
    L.setText("scheduler", data.scheduler || "");
    var sources = data.sources || [];
    var list = L.clear(document.getElementById("sources-list"));
    document.getElementById("sources-read").hidden = !sources.length;
    sources.forEach(function (s) {
      L.append(list, L.el("li", {"data-source": s.name, className: s.error ? "source-error" : null}, [
        L.el("strong", {}, s.name), " ", L.el("span", {className: "mono"}, s.detail || ""),
        " ", L.el("span", {className: "muted"}, s.error ? "(not read)"
          : "(" + s.entries + " entr" + (s.entries === 1 ? "y" : "ies") + ")")]));
    });
    showAlerts(data);
  }

  /* Entries of one source missed together point at beat itself, which the page never
     said: it listed them turning missed one by one (an on-call trial). Three or more, or
     every enabled one of at least two, as the missed_schedule alert groups them. */
  function beatDown(items) {
    var bySource = {};
    items.forEach(function (i) {
      var s = bySource[i.source] = bySource[i.source] || {missed: [], enabled: 0};
      var status = (i.health || {}).status;
      if (status !== "disabled" && status !== "expired") { s.enabled += 1; }
      if (status === "missed") { s.missed.push(i.name); }
    });
    // A filtered list holds only some entries: "every enabled one" cannot be told then.
    var whole = !filtering();
    return Object.keys(bySource).filter(function (source) {
      var s = bySource[source];
      return s.missed.length >= 3 ||
        (whole && s.missed.length >= 2 && s.missed.length === s.enabled);
    }).map(function (source) {
      var s = bySource[source];
      return {kind: "error", source: source, beat: true, text: s.missed.length +
        (whole ? " of " + s.enabled : "") + " " + source +
        " entries missed at once: is beat itself running? (" +
        s.missed.slice(0, 5).join(", ") + (s.missed.length > 5 ? ", ..." : "") + ")"};
    });
  }

  /* Errors and warnings, rebuilt only when they change, so a screen reader hears an
     alert once rather than at every refresh. */
  function showAlerts(data) {
    var lines = [];
    if (data.error) { lines.push({kind: "error", text: String(data.error)}); }
    (data.sources || []).forEach(function (s) {
      if (s.error) { lines.push({kind: "error", text: s.name + ": " + s.error, source: s.name}); }
    });
    (data.warnings || []).forEach(function (w) { lines.push({kind: "warning", text: String(w)}); });
    beatDown(data.items || []).forEach(function (line) { lines.push(line); });
    var key = JSON.stringify(lines);
    if (key === shownAlerts) { return; }
    shownAlerts = key;
    var box = L.clear(document.getElementById("schedule-alerts"));
    box.hidden = !lines.length;
    lines.forEach(function (line) {
      L.append(box, L.el("p", {className: line.kind === "error" ? "error" : "notice",
        "data-testid": line.beat ? "beat-down" : line.kind === "error" ? "schedule-error"
          : "schedule-warning",
        "data-source": line.source || null}, line.text));
    });
  }

  /* ---- status chips ---- */
  var lastCounts = {};
  function showChips(counts) {
    lastCounts = counts || {};
    var statuses = S.STATUS_ORDER.filter(function (s) { return s in lastCounts; });
    Object.keys(lastCounts).forEach(function (s) { if (statuses.indexOf(s) < 0) { statuses.push(s); } });
    L.clear(chips);
    chips.hidden = !statuses.length;
    var total = statuses.reduce(function (sum, s) { return sum + (lastCounts[s] || 0); }, 0);
    L.append(chips, L.el("button", {type: "button", className: "chip chip-all",
      "aria-pressed": filters.status.length ? "false" : "true", "data-status": "",
      "data-testid": "chip-all"}, "all " + total));
    statuses.forEach(function (status) {
      var count = lastCounts[status] || 0;
      var on = filters.status.indexOf(status) >= 0;
      L.append(chips, L.el("button", {type: "button",
        className: "chip chip-" + status + (count && S.PROBLEMS.indexOf(status) >= 0 ? " chip-alarm" : "") +
          (count ? "" : " chip-zero"),
        "aria-pressed": on ? "true" : "false", "data-status": status,
        "data-testid": "chip-" + status, "data-count": String(count),
        title: on ? "Stop filtering on " + S.statusLabel(status) : "Show only " + S.statusLabel(status)
          + " (click more to add)"},
        [S.statusLabel(status) + " ", L.el("span", {className: "chip-count"}, String(count))]));
    });
  }

  chips.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-status]");
    if (!button) { return; }
    var status = button.dataset.status;
    var next = filters.status.slice();
    if (!status) { next = []; }
    else if (next.indexOf(status) >= 0) { next.splice(next.indexOf(status), 1); }
    else { next.push(status); }
    setFilters({status: next});
  });

  /* ---- source, task and text filters ---- */
  function showFilterInputs() {
    form.elements.source.value = filters.source;
    form.elements.q.value = filters.q;
    form.elements.task.value = filters.task;
  }

  var typing = null;
  form.addEventListener("input", function (event) {
    if (event.target.name !== "q" && event.target.name !== "task") { return; }
    clearTimeout(typing);
    typing = setTimeout(function () {
      setFilters({q: form.elements.q.value.trim(), task: form.elements.task.value.trim()});
    }, 300);
  });
  form.addEventListener("change", function (event) {
    if (event.target.name === "source") { setFilters({source: event.target.value}); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(typing);
    setFilters({q: form.elements.q.value.trim(), task: form.elements.task.value.trim(),
      source: form.elements.source.value});
  });
  document.getElementById("clear-filters").addEventListener("click", function () {
    clearTimeout(typing);
    setFilters({status: [], source: "", task: "", q: ""});
    showFilterInputs();
  });

  /* ---- the table ---- */
  function cell(value, attrs) {
    return L.el("td", attrs || {}, value === null || value === undefined || value === "" ? "–" : value);
  }

  function argsCell(item) {
    var parts = [L.el("span", {className: "mono clip", title: item.args}, item.args)];
    if (item.kwargs && item.kwargs !== "{}") {
      parts.push(L.el("br"), L.el("span", {className: "mono clip", title: item.kwargs}, item.kwargs));
    }
    return cell(parts);
  }

  function scheduleCell(item) {
    var schedule = item.schedule || {};
    var zone = S.scheduleZone(schedule);
    return cell([L.el("span", {title: schedule.kind || ""}, S.scheduleText(schedule)),
      zone ? L.el("span", {className: "muted small block"}, zone) : null,
      item.one_off ? L.el("span", {className: "muted small block"}, "one-off") : null],
    {"data-testid": "schedule", className: schedule.kind === "invalid" ? "cell-error" : null});
  }

  function nextRunCell(item) {
    if (item.next_run_at === null || item.next_run_at === undefined) {
      return cell(item.enabled ? null : L.el("span", {className: "muted"}, "not scheduled"),
        {"data-testid": "next-run"});
    }
    // In the zone chosen in the header, as every other time in the row (a trial read one
    // row in three zones); a schedule with a zone of its own (a crontab) also gets its
    // wall time there, which is what its definition says.
    var own = S.ownZoneTime(item);
    return cell([L.el("span", {title: "in the zone you chose (" + L.tzLabel() + ")"},
      L.fmtTime(item.next_run_at)),
    own ? L.el("span", {className: "muted small block", "data-testid": "next-run-own-zone"},
      "= " + own) : null,
    S.relSpan(item.next_run_at, "due", {className: "small rel block"},
      (item.thresholds || {}).late_after)],
    {"data-testid": "next-run"});
  }

  function lastRunCell(item) {
    var last = item.last_run;
    if (!last) { return cell(L.el("span", {className: "muted"}, "none seen"), {"data-testid": "last-run"}); }
    return cell([L.el("a", {href: L.taskUrl(last.uuid), title: last.uuid}, L.fmtTime(last.at)),
      " ", L.stateBadge(last.state), L.el("br"),
      S.relSpan(last.at, "ago", {className: "muted small"})], {"data-testid": "last-run"});
  }

  function row(item) {
    var status = (item.health && item.health.status) || "unknown";
    var reason = item.health && item.health.reason;
    return L.el("tr", {"data-entry": S.entryKey(item), "data-status": status,
      "data-source": item.source, "data-name": item.name,
      className: item.enabled ? null : "entry-disabled"}, [
      cell([S.healthBadge(item.health), reason ? L.el("span", {className: "small muted block reason"}, reason) : null],
        {"data-testid": "health", title: reason || null}),
      cell([L.el("a", {href: S.entryPath(item.source, item.name), "data-testid": "entry-link"}, item.name),
        item.error && item.schedule && item.schedule.kind !== "invalid"
          ? L.el("span", {className: "small cell-error block"}, item.error) : null,
        item.shares_runs_with && item.shares_runs_with.length
          ? L.el("span", {className: "small muted block", title: item.shares_runs_with.join(", ")},
            "shares runs with " + item.shares_runs_with.length + " other entr" +
            (item.shares_runs_with.length === 1 ? "y" : "ies")) : null]),
      cell(item.source, {className: "small"}),
      cell(item.task ? L.el("a", {href: "/tasks?" + new URLSearchParams({name: item.task}),
        className: "mono"}, item.task) : null),
      argsCell(item),
      scheduleCell(item),
      nextRunCell(item),
      lastRunCell(item),
      cell(S.outcomeStrip(item.recent_states), {"data-testid": "outcomes"}),
      cell(S.beatRecord(item), {className: "small", "data-testid": "beat-record"}),
      cell(item.enabled ? "yes" : "no", {"data-testid": "enabled"})
    ]);
  }

  /* Never an empty table without saying why. */
  function emptyReason(data) {
    if (data.configured === false) { return "No Celery app given, so there is no schedule to show (see above)."; }
    if (data.error) { return "The schedule could not be read (see the error above)."; }
    var total = Object.keys(data.counts || {}).reduce(function (sum, s) { return sum + data.counts[s]; }, 0);
    if (filtering() && total) { return "No entry matches these filters (" + total + " entries in all)."; }
    var broken = (data.sources || []).filter(function (s) { return s.error; });
    if (broken.length) { return "No entries: " + broken.length + " source(s) could not be read (see above)."; }
    return "No entries: the sources read (listed above) hold no schedule entries.";
  }

  function showTable(data) {
    var items = data.items || [];
    L.clear(tbody);
    items.forEach(function (item) { tbody.appendChild(row(item)); });
    var empty = document.getElementById("schedules-empty");
    empty.hidden = items.length > 0;
    if (!items.length) { L.setText(empty, emptyReason(data)); }
    document.getElementById("schedules-table-panel").hidden = !items.length;
    var total = Object.keys(data.counts || {}).reduce(function (sum, s) { return sum + data.counts[s]; }, 0);
    L.setText("shown-count", items.length ? (filtering() ? items.length + " of " + total + " entries"
      : items.length + " entries") : "");
  }

  function refresh() {
    var mine = ++seq;  // a slower, older answer never overwrites a newer one
    return L.api("/schedules", apiParams()).then(function (data) {
      if (mine !== seq) { return; }
      L.showError(null);
      document.getElementById("how-to").hidden = data.configured !== false;
      if (data.configured === false && data.message) { L.setText("how-to", data.message); }
      showHeader(data);
      showChips(data.counts);
      showTable(data);
      root.dataset.loaded = data.configured ? "configured" : "unconfigured";
    }).catch(function (error) {
      if (mine !== seq) { return; }
      L.showError(error);
      root.dataset.loaded = "error";
    });
  }

  showFilterInputs();
  refresh();
  var pushed = L.throttle(refresh, 2000);
  L.live(["schedules"], {schedules: function () { pushed(); }}, refresh);
  setInterval(function () { if (!document.hidden) { refresh(); } },
    Number(root.dataset.refreshMs) || 10000);
  setInterval(S.tick, 1000);
}());
