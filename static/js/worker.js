/*
 * Worker detail: liveness from the history API (polled, and pushed on the worker's room),
 * and what the worker answers to `inspect` (asked less often: each ask is a broadcast that
 * may wait for a timeout), spread over the page's tabs (tabs.js switches them). Every value
 * comes from the worker and is put in the page as text only.
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var root = document.getElementById("worker");
  var hostname = root.dataset.hostname;
  var path = "/workers/" + encodeURIComponent(hostname);
  var HEALTH = {"online": "online", "offline": "offline", "heartbeat-missed": "heartbeat missed",
    "unknown": "unknown (no collector listening)"};
  // Worker-wide settings that limit work, shown on the Limits tab when changed.
  var WORKER_LIMITS = [["worker_concurrency", "Concurrency"],
    ["worker_prefetch_multiplier", "Prefetch multiplier"],
    ["worker_max_tasks_per_child", "Max tasks per child"],
    ["worker_max_memory_per_child", "Max memory per child (KiB)"],
    ["task_time_limit", "Time limit (s)"], ["task_soft_time_limit", "Soft time limit (s)"],
    ["task_default_rate_limit", "Default rate limit"],
    ["worker_disable_rate_limits", "Rate limits disabled"], ["task_acks_late", "Acks late"]];
  // getrusage fields worth a name; the others are listed under their own.
  var RUSAGE = {utime: ["User CPU time", "seconds"], stime: ["System CPU time", "seconds"],
    maxrss: ["Peak resident memory", "kib"], minflt: ["Minor page faults"],
    majflt: ["Major page faults"], inblock: ["Block reads"], oublock: ["Block writes"],
    nvcsw: ["Voluntary context switches"], nivcsw: ["Involuntary context switches"],
    nsignals: ["Signals received"], nswap: ["Swaps"]};

  function text(value) {
    if (value === null || value === undefined || value === "") { return "–"; }
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function mono(value) {
    var shown = text(value);
    return L.el("span", {className: "mono clip", title: shown}, shown);
  }

  /* Rows into a tbody: a cell per column function (a node, or a value shown as text). */
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
        return L.el("td", {}, value instanceof Node ? value : text(value));
      })));
    });
  }

  function facts(id, pairs) {
    var list = L.clear(document.getElementById(id));
    pairs.forEach(function (pair) { L.append(list, [L.el("dt", {}, pair[0]), L.el("dd", {}, pair[1])]); });
  }

  function count(name, value) { L.setText("tab-count-" + name, value ? String(value) : ""); }

  function taskLink(id) { return id ? L.el("a", {href: L.taskUrl(id), className: "mono"}, id) : "–"; }

  function bytes(kib) {
    if (typeof kib !== "number") { return text(kib); }
    return kib >= 1024 ? (kib / 1024).toFixed(1) + " MiB" : kib + " KiB";
  }

  function loadSummary() {
    return L.api(path).then(function (w) {
      var health = document.getElementById("health");
      health.textContent = HEALTH[w.status] || w.status;
      health.className = "badge health-" + w.status;
      health.dataset.status = w.status;
      health.title = L.revealBidi(w.status_reason || "");
      L.setText("heartbeat", L.fmtDuration(w.heartbeat_age) + " ago");
      L.setText("loadavg", Array.isArray(w.loadavg) ? w.loadavg.join(" ") : "–");
      // A dead worker runs nothing, whatever its last heartbeat said.
      L.setText("active-count", w.status === "offline" && w.active
        ? "none now (" + w.active + " at its last heartbeat)" : w.active);
      L.setText("processed", w.processed);
      L.setText("software", text(w.sw_ident) + " " + text(w.sw_ver));
      L.setText("system", w.sw_sys);
      L.setText("freq", w.freq ? w.freq + " s" : null);
      [["heartbeat-at", w.last_heartbeat], ["online-since", w.online_since],
        ["first-seen", w.first_seen]].forEach(function (pair) {
        L.append(L.clear(document.getElementById(pair[0])), L.timeEl(pair[1]));
      });
      // What it last told the collector's queue sampler: known after it is gone, when
      // inspect below has nothing to say (which queues lost their worker: a trial).
      var known = document.getElementById("queues-known");
      var names = (w.queues || []).map(function (q) { return q.queue; });
      known.hidden = !names.length;
      L.setText(known, names.length ? "Last known (told the collector " +
        L.fmtAgo(Math.max.apply(null, w.queues.map(function (q) { return q.seen_at; }))) +
        "): " + names.join(", ") : "");
      fill("recent-body", w.recent_tasks, [
        function (t) { return L.stateBadge(t.state); }, function (t) { return t.name; },
        function (t) { return taskLink(t.uuid); }, function (t) { return L.timeEl(t.received_at); },
        function (t) { return L.fmtDuration(t.runtime); }], "no task recorded yet");
      L.showError(null);
    }).catch(function (error) {
      if (error.status === 404) { L.setText("health", "never seen by the collector"); return; }
      L.showError(error);
    });
  }

  function showPool(r, stats) {
    var pool = r.pool || {};
    var scaler = stats.autoscaler;
    var writes = (stats.pool || {}).writes;
    L.setText("pool", pool.implementation);
    L.setText("concurrency", pool.concurrency);
    L.setText("processes", Array.isArray(pool.processes) ? pool.processes.join(", ") : pool.processes);
    L.setText("autoscale", scaler ? scaler.min + "–" + scaler.max + " processes (now " +
      text(scaler.qty) + ")" : (r.stats ? "off" : null));
    L.setText("max-tasks-per-child", pool.max_tasks_per_child);
    L.setText("prefetch", stats.prefetch_count);
    L.setText("pool-writes", writes ? [writes.total, writes.all && "shares " + writes.all,
      writes.strategy && writes.strategy + " strategy"].filter(function (part) {
      return part !== "" && part !== null && part !== undefined;
    }).join(" · ") : null);
  }

  function showTasks(r, stats) {
    var run = stats.total || {};
    fill("active-body", r.active, [
      function (t) { return taskLink(t.id); }, function (t) { return t.name; },
      function (t) { return mono(t.args); }, function (t) { return L.timeEl(t.time_start); },
      function (t) { return t.worker_pid; }], "nothing running");
    fill("reserved-body", r.reserved, [
      function (t) { return taskLink(t.id); }, function (t) { return t.name; },
      function (t) { return mono(t.args); }]);
    fill("scheduled-body", r.scheduled, [
      function (s) { return taskLink(s.request && s.request.id); },
      function (s) { return s.request && s.request.name; },
      function (s) { return L.timeEl(Date.parse(s.eta) / 1000); }, function (s) { return s.priority; }]);
    fill("registered-body", r.registered, [
      function (t) { return t.name; }, function (t) { return run[t.name] || 0; },
      function (t) { return t.max_retries; }, function (t) { return t.acks_late; }]);
    count("tasks", r.active && r.active.length);
  }

  function showLimits(r) {
    var limited = (r.registered || []).filter(function (t) {
      return t.rate_limit || t.time_limit || t.soft_time_limit;
    });
    fill("limits-body", r.registered, [
      function (t) { return t.name; }, function (t) { return t.rate_limit; },
      function (t) { return t.time_limit; }, function (t) { return t.soft_time_limit; }]);
    count("limits", limited.length);
    var conf = r.conf || {};
    facts("worker-limits", WORKER_LIMITS.map(function (pair) {
      return [pair[1], pair[0] in conf ? text(conf[pair[0]])
        : L.el("span", {className: "muted"}, r.conf ? "default" : "no answer")];
    }));
  }

  /* Nested settings (beat_schedule entries, transport options) as dotted keys. */
  function flatten(value, key, rows, depth) {
    if (value && typeof value === "object" && !Array.isArray(value) && depth < 4 &&
        Object.keys(value).length) {
      Object.keys(value).sort().forEach(function (sub) {
        flatten(value[sub], key ? key + "." + sub : sub, rows, depth + 1);
      });
    } else {
      rows.push({key: key, value: value});
    }
    return rows;
  }

  var configFilter = document.getElementById("config-filter");
  function filterConfig() {
    var needle = configFilter.value.trim().toLowerCase();
    Array.prototype.forEach.call(document.getElementById("config-body").rows, function (row) {
      row.hidden = Boolean(needle) && row.textContent.toLowerCase().indexOf(needle) < 0;
    });
  }

  function showConfig(r) {
    var rows = r.conf ? flatten(r.conf, "", [], 0) : null;
    fill("config-body", rows, [
      function (c) { return L.el("span", {className: "mono"}, c.key); },
      function (c) { return L.el("span", {className: "mono pre"}, text(c.value)); }],
      "every setting is Celery's default");
    count("config", r.conf && Object.keys(r.conf).length);
    filterConfig();
  }

  function showSystem(stats) {
    var broker = stats.broker;
    L.setText("pid", stats.pid);
    L.setText("uptime", stats.uptime === undefined ? null : L.fmtDuration(stats.uptime));
    L.setText("clock", stats.clock);
    L.setText("broker", broker ? text(broker.transport) + "://" + text(broker.hostname) +
      (broker.port ? ":" + broker.port : "") + "/" + (broker.virtual_host || "") : null);
    var usage = stats.rusage;
    var keys = usage ? Object.keys(RUSAGE).filter(function (key) { return key in usage; })
      .concat(Object.keys(usage).filter(function (key) { return !RUSAGE[key]; }).sort()) : null;
    fill("rusage-body", keys, [
      function (key) { return RUSAGE[key] ? RUSAGE[key][0] : key; },
      function (key) {
        var unit = (RUSAGE[key] || [])[1];
        return unit === "seconds" ? L.fmtDuration(usage[key]) : unit === "kib" ? bytes(usage[key])
          : usage[key];
      }]);
  }

  function showInspect(r) {
    var errors = L.clear(document.getElementById("inspect-errors"));
    Object.keys(r.errors || {}).forEach(function (call) {
      errors.appendChild(L.el("li", {}, call + ": " + r.errors[call]));
    });
    errors.hidden = !errors.firstChild;
    var stats = r.stats || {};
    showPool(r, stats);
    fill("queues-body", r.queues, [
      function (q) { return q.name; }, function (q) { return q.exchange && q.exchange.name; },
      function (q) { return q.exchange && q.exchange.type; }, function (q) { return q.routing_key; },
      function (q) {
        return ["durable", "exclusive", "auto_delete"].filter(function (flag) { return q[flag]; })
          .concat(q.max_priority ? ["max priority " + q.max_priority] : []).join(", ");
      }], "consumes from no queue");
    count("queues", r.queues && r.queues.length);
    showTasks(r, stats);
    showLimits(r);
    showConfig(r);
    showSystem(stats);
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

  configFilter.addEventListener("input", filterConfig);
  document.getElementById("inspect-refresh").addEventListener("click", loadInspect);
  // After a control (pool grown, queue added, limit set) ask the worker again at once,
  // and once more shortly: a prefork pool starts the new process in its next maintenance
  // round, so the first answer can still list the old ones.
  document.addEventListener("lookout:control-done", function () {
    loadSummary();
    loadInspect();
    setTimeout(loadInspect, 1500);
  });
  loadSummary();
  loadInspect();
  L.live(["worker:" + hostname], {worker: L.throttle(loadSummary, 1000)}, loadSummary);
  setInterval(loadSummary, Number(root.dataset.refreshMs) || 3000);
  setInterval(loadInspect, Number(root.dataset.inspectMs) || 10000);
}());
