/*
 * Worker detail: liveness from the history API (polled), and what the worker answers to
 * `inspect` (asked less often: each ask is a broadcast that may wait for a timeout).
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var root = document.getElementById("worker");
  var hostname = root.dataset.hostname;
  var path = "/workers/" + encodeURIComponent(hostname);
  var HEALTH = {"online": "online", "offline": "offline", "heartbeat-missed": "heartbeat missed"};

  function text(value) {
    return value === null || value === undefined || value === "" ? "–" : String(value);
  }

  function fill(id, rows, columns, empty) {
    var tbody = L.clear(document.getElementById(id));
    if (!rows || !rows.length) {
      tbody.appendChild(L.el("tr", {}, L.el("td", {colspan: String(columns.length), className: "muted"},
        rows ? (empty || "none") : "no answer")));
      return;
    }
    rows.forEach(function (item) {
      tbody.appendChild(L.el("tr", {}, columns.map(function (column) {
        var value = column(item);
        return L.el("td", {}, typeof value === "object" && value !== null ? value : text(value));
      })));
    });
  }

  function taskLink(id) { return id ? L.el("a", {href: L.taskUrl(id)}, id) : "–"; }

  function loadSummary() {
    return L.api(path).then(function (w) {
      var health = document.getElementById("health");
      health.textContent = HEALTH[w.status] || w.status;
      health.className = "badge health-" + w.status;
      health.dataset.status = w.status;
      L.setText("heartbeat", L.fmtDuration(w.heartbeat_age) + " ago (" + L.fmtTime(w.last_heartbeat) + ")");
      L.setText("loadavg", Array.isArray(w.loadavg) ? w.loadavg.join(" ") : "–");
      L.setText("active-count", w.active);
      L.setText("processed", w.processed);
      L.setText("software", text(w.sw_ident) + " " + text(w.sw_ver));
      L.setText("system", w.sw_sys);
      L.showError(null);
    }).catch(function (error) {
      if (error.status === 404) { L.setText("health", "never seen by the collector"); return; }
      L.showError(error);
    });
  }

  function showInspect(r) {
    var errors = L.clear(document.getElementById("inspect-errors"));
    Object.keys(r.errors || {}).forEach(function (call) {
      errors.appendChild(L.el("li", {}, call + ": " + r.errors[call]));
    });
    errors.hidden = !errors.firstChild;
    var pool = r.pool || {};
    var stats = r.stats || {};
    L.setText("pool", pool.implementation);
    L.setText("concurrency", pool.concurrency);
    L.setText("processes", Array.isArray(pool.processes) ? pool.processes.join(", ") : pool.processes);
    L.setText("prefetch", stats.prefetch_count);
    L.setText("uptime", stats.uptime === undefined ? null : L.fmtDuration(stats.uptime));
    fill("queues-body", r.queues, [
      function (q) { return q.name; },
      function (q) { return q.exchange && q.exchange.name; },
      function (q) { return q.routing_key; }]);
    fill("active-body", r.active, [
      function (t) { return taskLink(t.id); }, function (t) { return t.name; },
      function (t) { return t.args; },
      function (t) { return t.worker_pid; }]);
    fill("reserved-body", r.reserved, [
      function (t) { return taskLink(t.id); }, function (t) { return t.name; },
      function (t) { return t.args; }]);
    fill("scheduled-body", r.scheduled, [
      function (s) { return taskLink(s.request && s.request.id); },
      function (s) { return s.request && s.request.name; },
      function (s) { return s.eta; }, function (s) { return s.priority; }]);
    fill("registered-body", r.registered, [
      function (t) { return t.name; }, function (t) { return t.rate_limit; },
      function (t) { return t.time_limit; }, function (t) { return t.soft_time_limit; },
      function (t) { return t.max_retries; }, function (t) { return t.acks_late; }]);
    L.setText("conf", r.conf ? JSON.stringify(r.conf, null, 2) : null);
    L.setText("stats", r.stats ? JSON.stringify(r.stats, null, 2) : null);
    L.setText("inspect-status", r.responded ? "answered at " + L.fmtTime(Date.now() / 1000)
      : "no answer within " + r.timeout + " s");
    root.dataset.inspected = r.responded ? "answered" : "silent";
  }

  function loadInspect() {
    L.setText("inspect-status", "asking…");
    return L.api(path + "/inspect").then(showInspect).catch(function (error) {
      L.setText("inspect-status", error.message);
      root.dataset.inspected = "error";
    });
  }

  document.getElementById("inspect-refresh").addEventListener("click", loadInspect);
  loadSummary();
  loadInspect();
  L.live(["worker:" + hostname], {worker: L.throttle(loadSummary, 1000)}, loadSummary);
  setInterval(loadSummary, Number(root.dataset.refreshMs) || 3000);
  setInterval(loadInspect, Number(root.dataset.inspectMs) || 10000);
}());
