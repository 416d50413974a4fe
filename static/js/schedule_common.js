/*
 * What the Schedules list and entry pages share: status names and order, entry URLs,
 * relative times, the health badge and the strip of recent outcomes. Loaded before
 * schedules.js and schedule_entry.js; everything is built as text (common.js el()).
 */
(function () {
  "use strict";
  var L = window.Lookout;

  // Worst first: the order of the filter chips.
  var STATUS_ORDER = ["missed", "unconsumed", "failing", "running_long", "late", "unknown",
    "expired", "disabled", "ok"];
  var PROBLEMS = ["missed", "unconsumed", "failing", "running_long", "late"];
  var SOURCES = ["app", "django-celery-beat", "redbeat"];

  function statusLabel(status) { return String(status || "unknown").replace(/_/g, " "); }

  /* "/schedules/<source>/<name>": each segment of the name encoded, the slashes kept.
     A name with empty, "." or ".." segments would be rewritten by the browser or the
     server, so it goes as one segment with its slashes encoded instead. */
  function entryPath(source, name) {
    var segments = String(name).split("/");
    var odd = segments.some(function (s) { return s === "" || s === "." || s === ".."; });
    var path = odd ? encodeURIComponent(name) : segments.map(encodeURIComponent).join("/");
    return "/schedules/" + encodeURIComponent(source) + "/" + path;
  }

  function entryKey(item) { return item.source + "/" + item.name; }

  /* 42s, 3m 10s, 5h 2m, 3d 4h */
  function span(seconds) {
    var s = Math.round(Math.abs(seconds));
    if (s < 60) { return s + "s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + "m" + (m < 10 && s % 60 ? " " + (s % 60) + "s" : ""); }
    var h = Math.floor(m / 60);
    if (h < 48) { return h + "h" + (m % 60 ? " " + (m % 60) + "m" : ""); }
    var d = Math.floor(h / 24);
    return d + "d" + (h % 24 ? " " + (h % 24) + "h" : "");
  }

  /* Until `tolerance` s past its due time a run is simply due: beat sends it on its next
     tick and its events take a moment to arrive, so every healthy run would otherwise
     flash red "overdue by 2s". The entry's own late_after is that tolerance. */
  function relative(at, tolerance) {
    var diff = at - Date.now() / 1000;
    if (diff >= 0) { return "in " + span(diff); }
    return -diff <= (tolerance || 0) ? "due now" : "overdue by " + span(diff);
  }

  function ago(at) { return span(Date.now() / 1000 - at) + " ago"; }

  function overdue(node, now) {
    return Number(node.dataset.relAt) + Number(node.dataset.relTolerance || 0) < now;
  }

  /* A span whose text follows the clock: tick() rewrites every [data-rel-at] once a second.
     `tolerance`: seconds past due that still read "due now" (see relative). */
  function relSpan(at, kind, attrs, tolerance) {
    var node = L.el("span", attrs || {}, kind === "ago" ? ago(at) : relative(at, tolerance));
    node.dataset.relAt = String(at);
    node.dataset.relKind = kind || "due";
    node.dataset.relTolerance = String(tolerance || 0);
    if (kind !== "ago") { node.classList.toggle("overdue", overdue(node, Date.now() / 1000)); }
    return node;
  }

  function tick() {
    var now = Date.now() / 1000;
    Array.prototype.forEach.call(document.querySelectorAll("[data-rel-at]"), function (node) {
      var at = Number(node.dataset.relAt);
      if (node.dataset.relKind === "ago") { node.textContent = ago(at); return; }
      node.textContent = relative(at, Number(node.dataset.relTolerance || 0));
      node.classList.toggle("overdue", overdue(node, now));
    });
  }

  function healthBadge(health) {
    var status = (health && health.status) || "unknown";
    return L.el("span", {className: "badge health health-" + status.replace(/[^a-z_]/g, ""),
      title: (health && health.reason) || statusLabel(status)}, statusLabel(status));
  }

  /* Small coloured squares, oldest left and newest right; each one's state as its title. */
  function outcomeStrip(states, attrs) {
    var list = (states || []).slice().reverse();
    var strip = L.el("span", attrs || {}, list.map(function (state) {
      var clean = String(state || "UNKNOWN").replace(/[^A-Z]/g, "");
      return L.el("span", {className: "outcome state-" + clean, title: state || "?"});
    }));
    strip.className = "strip";
    strip.setAttribute("role", "img");
    strip.setAttribute("aria-label", list.length
      ? "Recent outcomes, oldest to newest: " + list.join(", ") : "No runs seen");
    if (!list.length) { L.append(strip, L.el("span", {className: "muted"}, "–")); }
    return strip;
  }

  function scheduleText(schedule) {
    schedule = schedule || {};
    var text = schedule.description || schedule.kind || "–";
    if (schedule.cron) { text += " · " + schedule.cron; }
    return text;
  }

  /* The zone, unless the description already names it. */
  function scheduleZone(schedule) {
    var tz = schedule && schedule.timezone;
    if (!tz || String(schedule.description || "").indexOf(tz) >= 0) { return null; }
    return tz;
  }

  /* The next run as the schedule's own zone reads it (a crontab's, or the app's), or null
     when the schedule has none of its own (intervals) or is an instant (clocked). */
  function ownZoneTime(item) {
    var schedule = item.schedule || {};
    return schedule.timezone && schedule.kind !== "clocked" ? item.next_run_local || null : null;
  }

  function beatRecord(item) {
    var parts = [];
    if (item.beat_last_run_at !== null && item.beat_last_run_at !== undefined) {
      parts.push(L.el("span", {title: "beat's last_run_at as last saved (django-celery-beat " +
        "saves it every few minutes: it can lag the runs)"}, "last sent " +
        L.fmtTime(item.beat_last_run_at)));
    }
    if (item.total_run_count !== null && item.total_run_count !== undefined) {
      if (parts.length) { parts.push(" · "); }
      parts.push(L.el("span", {title: "beat's total_run_count"}, item.total_run_count + (item.total_run_count === 1 ? " run" : " runs")));
    }
    return parts.length ? parts : null;
  }

  window.LookoutSchedules = {
    STATUS_ORDER: STATUS_ORDER, PROBLEMS: PROBLEMS, statusLabel: statusLabel,
    entryPath: entryPath, entryKey: entryKey, span: span, relative: relative, ago: ago,
    relSpan: relSpan, tick: tick, healthBadge: healthBadge, outcomeStrip: outcomeStrip,
    scheduleText: scheduleText, scheduleZone: scheduleZone, beatRecord: beatRecord,
    ownZoneTime: ownZoneTime
  };
}());
