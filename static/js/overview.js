/*
 * Overview: worker liveness, live throughput chart, counts by outcome over the last hour,
 * top failing and slowest task names, queue depths, schedule health.
 *
 * The hour's figures come from /api/v1/stats (per-minute rollups) and are re-read every
 * 30 s; between reads, the pushed "overview" messages add their counts, so the cards
 * move with every tick without hammering the API.
 *
 * The API may answer from its cache (computed at `until`, up to a minute earlier when
 * costly), so the counts pushed since `until` are added to a read, not only those pushed
 * after it: adding from the read on lost what happened in between, and the cards fell
 * back by hundreds at each re-read under load (seen in a trial).
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var POINTS = 120;  // two minutes of half-second ticks
  var STATE_COUNTER = {RECEIVED: "received", SUCCESS: "succeeded", FAILURE: "failed",
    RETRY: "retried", REVOKED: "revoked", REJECTED: "rejected"};
  var counts = null;  // last hour, per outcome
  var pushed = [];  // [collector time, counts] of recent pushes, to add to a cached read
  var PUSHED_KEPT_S = 120;  // longer than the API's cache keeps a value (60 s)
  var chart = null;

  function makeChart() {
    var canvas = document.getElementById("rate-chart");
    if (!canvas || typeof Chart !== "function") { return null; }
    // Gaps, not zeros, before the first live point: a flat 0 across the chart read as
    // "nothing ran" while tasks were running (the chart shows only what arrived live).
    var labels = [], finished = [], events = [];
    for (var i = 0; i < POINTS; i += 1) { labels.push(""); finished.push(null); events.push(null); }
    return new Chart(canvas, {
      type: "line",
      data: {labels: labels, datasets: [
        L.themed({label: "tasks finished/s", data: finished, fill: true, pointRadius: 0,
          borderWidth: 2, tension: 0.2}, "ok", "fill"),
        L.themed({label: "events/s", data: events, pointRadius: 0, borderWidth: 1, tension: 0.2},
          "info", "grid")
      ]},
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: {intersect: false, mode: "index"},
        scales: {y: {beginAtZero: true}, x: {ticks: {maxTicksLimit: 8}}}
      }
    });
  }

  /* Points come every half second; a longer silence (a message queue outage, a collector
     restart) is a gap in the line, not a straight line across it: nothing was measured
     there, and a line near 0 read as "nothing ran" (seen in a trial). */
  var GAP_SECONDS = 3, lastPointAt = null;
  function push(label, finished, events) {
    var data = chart.data;
    data.labels.push(label);
    data.datasets[0].data.push(finished);
    data.datasets[1].data.push(events);
    if (data.labels.length > POINTS) {
      data.labels.shift();
      data.datasets.forEach(function (set) { set.data.shift(); });
    }
  }

  function addPoint(message) {
    if (!chart) { return; }
    if (lastPointAt !== null && message.t - lastPointAt > GAP_SECONDS) {
      push("", null, null);
    }
    lastPointAt = message.t;
    push(L.fmtTime(message.t).slice(0, 8), message.tasks_per_second, message.events_per_second);
    chart.update("none");
  }

  function showCounts() {
    if (!counts) { return; }
    ["received", "succeeded", "failed", "retried", "revoked", "rejected"].forEach(function (key) {
      L.setText("count-" + key, counts[key] || 0);
    });
    var finished = (counts.succeeded || 0) + (counts.failed || 0);
    L.setText("failure-rate", finished ? L.fmtPercent((counts.failed || 0) / finished) : "–");
  }

  function row(cells) {
    return L.el("tr", {}, cells.map(function (cell) { return L.el("td", {}, cell); }));
  }

  function taskLink(name) {
    if (!name) {  // tasks whose task-sent and task-received were never heard
      return L.el("span", {className: "muted", title: "Tasks Lookout knows only from later " +
        "events (their task-sent and task-received were missed), so without a name"},
        "(name unknown)");
    }
    return L.el("a", {href: "/tasks?" + new URLSearchParams({name: name})}, name);
  }

  function addCounts(stateCounts) {
    Object.keys(stateCounts || {}).forEach(function (state) {
      var key = STATE_COUNTER[state];
      if (key) { counts[key] = (counts[key] || 0) + stateCounts[state]; }
    });
  }

  function showStats(stats) {
    counts = {};
    Object.keys(stats.totals.counts).forEach(function (key) { counts[key] = stats.totals.counts[key]; });
    pushed.forEach(function (p) { if (p[0] > stats.until) { addCounts(p[1]); } });
    showCounts();
    var failing = stats.tasks.filter(function (t) { return t.counts.failed > 0; })
      .sort(function (a, b) { return b.counts.failed - a.counts.failed; }).slice(0, 8);
    L.append(L.clear(document.getElementById("failing-body")), failing.map(function (t) {
      return row([taskLink(t.name), t.counts.failed, L.fmtPercent(t.failure_rate)]);
    }));
    var slowest = stats.tasks.filter(function (t) { return t.runtime_p95 !== null && t.runtime_p95 !== undefined; })
      .sort(function (a, b) { return b.runtime_p95 - a.runtime_p95; }).slice(0, 8);
    L.append(L.clear(document.getElementById("slowest-body")), slowest.map(function (t) {
      return row([taskLink(t.name), L.fmtDuration(t.runtime_p50), L.fmtDuration(t.runtime_p95),
        L.fmtDuration(t.runtime_p99)]);
    }));
  }

  function showWorkers(data) {
    var online = 0, offline = 0, missed = 0, unknown = 0;
    var rows = data.items.map(function (w) {
      if (w.status === "online") {
        online += 1;
      } else if (w.status === "heartbeat-missed") {
        missed += 1;  // silent for less than lost_after: maybe busy, maybe gone
      } else if (w.status === "unknown") {
        unknown += 1;  // silent while no collector listened: nothing known either way
      } else {
        offline += 1;
      }
      return row([L.el("a", {href: "/workers/" + encodeURIComponent(w.hostname)}, w.hostname),
        L.el("span", {className: "badge worker-" + w.status, title: w.status_reason || ""},
          w.status),
        w.active === null || w.status === "offline" ? "–" : w.active, w.processed === null ? "–" : w.processed,
        L.fmtAgo(w.last_heartbeat)]);
    });
    L.setText("workers-online", online);
    L.setText("workers-offline", offline);
    L.setText("workers-missed", missed);
    document.getElementById("workers-missed-note").hidden = missed === 0;
    L.setText("workers-unknown", unknown);
    document.getElementById("workers-unknown-note").hidden = unknown === 0;
    L.append(L.clear(document.getElementById("workers-body")), rows);
  }

  function showQueues(data) {
    var panel = document.getElementById("queues-panel");
    panel.hidden = false;
    L.append(L.clear(document.getElementById("queues-body")), data.items.map(function (q) {
      return row([q.name, q.error ? "error: " + q.error : q.messages, q.consumers === null ? "–" : q.consumers]);
    }));
  }

  function loadStats() { return L.api("/stats", {window: "1h"}).then(showStats).catch(L.showError); }
  function loadWorkers() { return L.api("/workers").then(showWorkers).catch(L.showError); }
  function loadQueues() {
    // The queues API reads the broker; it may be absent (404) or the broker down (503).
    return L.api("/queues").then(showQueues).catch(function () {
      document.getElementById("queues-panel").hidden = true;
    });
  }
  var refreshWorkers = L.throttle(loadWorkers, 3000);

  /* The Schedules card: entries with problems (missed, failing, running long, late) and
     ok ones; hidden when Lookout has no Celery app (configured=false) or no schedules API. */
  /* Lost and stuck tasks, as the Trouble page counts them: a dead worker's tasks were
     nowhere on the Overview (a trial). Lost ones revoked or retried from Lookout are
     handled: counted apart, not as trouble. */
  function loadTrouble() {
    return L.api("/trouble", {limit: "200"}).then(function (data) {
      var handled = data.lost_handled || 0;
      var lost = Math.max(0, (data.lost_total || 0) - handled), stuck = data.stuck_total || 0;
      L.setText("trouble-count", lost + stuck);
      L.setText("trouble-lost", lost);
      L.setText("trouble-stuck", stuck);
      var note = document.getElementById("trouble-handled");
      note.hidden = !handled;
      L.setText(note, handled ? handled + " lost, handled from Lookout" : "");
      var card = document.getElementById("trouble-card");
      card.dataset.problems = String(lost + stuck);
      card.classList.toggle("card-alarm", lost + stuck > 0);
    }).catch(L.showError);
  }

  var SCHEDULE_PROBLEMS = ["missed", "failing", "running_long", "late"];
  var schedulesShown = false;
  var scheduleNote = "";
  function showScheduleCounts(counts, note) {
    var card = document.getElementById("schedules-card");
    var problems = SCHEDULE_PROBLEMS.reduce(function (sum, s) { return sum + ((counts || {})[s] || 0); }, 0);
    var known = counts && Object.keys(counts).length > 0;
    L.setText("schedules-problems", known ? problems : "–");
    L.setText("schedules-ok", known ? counts.ok || 0 : "–");
    card.dataset.problems = known ? String(problems) : "";
    card.classList.toggle("card-alarm", problems > 0);
    var noteNode = document.getElementById("schedules-card-note");
    noteNode.hidden = !note;
    L.setText(noteNode, note || "");
  }
  function loadSchedules() {
    var card = document.getElementById("schedules-card");
    return L.api("/schedules").then(function (data) {
      schedulesShown = data.configured !== false;
      card.hidden = !schedulesShown;
      var unread = (data.sources || []).filter(function (s) { return s.error; }).length;
      scheduleNote = data.error ? "unavailable: " + data.error
        : unread ? unread + " source" + (unread > 1 ? "s" : "") + " could not be read" : "";
      if (schedulesShown) { showScheduleCounts(data.counts, scheduleNote); }
    }).catch(function () { schedulesShown = false; card.hidden = true; });
  }
  function onSchedules(message) {
    if (schedulesShown && message && message.counts && Object.keys(message.counts).length) {
      showScheduleCounts(message.counts, scheduleNote);
    }
  }

  /* Every collector writing this store and the singleton jobs each one runs (from the
     /healthz report common.js fetches; anonymous callers get no detail: no panel). */
  var SILENT_AFTER_S = 3, STALE_AFTER_S = 10;  // collectors/status.py reports every 1 s
  function text(value) {
    return value === null || value === undefined ? "–" : String(value);
  }

  function showCollectors(event) {
    var report = event.detail || {};
    var panel = document.getElementById("collectors-panel");
    if (!report.collectors) { panel.hidden = true; return; }
    var jobs = {}, down = {};
    report.collectors.forEach(function (c) { down[c.name] = !c.up && !c.stopped; });
    (report.jobs || []).forEach(function (job) {
      if (!job.held) { return; }
      // A dead holder's lease runs out before another collector takes the job: say so,
      // rather than list a job as run by a collector that runs nothing.
      var name = down[job.collector] ? job.job + " (lease ends in " +
        Math.max(0, Math.ceil(job.expires_in)) + " s)" : job.job;
      (jobs[job.collector] = jobs[job.collector] || []).push(name);
    });
    L.append(L.clear(document.getElementById("collectors-body")), report.collectors.map(function (c) {
      // Collecting, but its live updates cannot reach the web processes.
      var noLive = c.up && c.live && c.live.ok === false ?
        "message queue unreachable: live updates stopped (" + c.live.error + ")" : "";
      // It reports every second; /healthz calls it down after 10 s of silence. Between
      // the two, a killed collector still read "up" (a trial): say it has gone quiet.
      var silent = c.up && c.status_age > SILENT_AFTER_S ? "no status for " +
        Math.round(c.status_age) + " s: down at " + STALE_AFTER_S + " s unless it reports" : "";
      var state = c.problem || noLive || silent || c.warning ||
        (c.stopped ? "stopped on request" : "connected");
      var tr = row([c.name, L.el("span", {className: "badge " + (c.problem ? "state-FAILURE" :
        noLive || silent || c.warning ? "state-RETRY" : c.stopped ? "state-REVOKED" :
        "state-SUCCESS"), title: state}, c.problem ? "down" : noLive ? "up, no live" :
        silent ? "silent " + Math.round(c.status_age) + " s" : c.warning ? "warning" :
        c.stopped ? "stopped" : "up"),
        c.broker, text(c.events_per_second), text(c.received),
        text(c.dropped), text(c.buffer_spilled), (jobs[c.name] || []).sort().join(", ") || "–"]);
      tr.dataset.collector = c.name;
      return tr;
    }));
    panel.hidden = false;
  }
  document.addEventListener("lookout:health", showCollectors);

  function loadAll() { loadStats(); loadWorkers(); loadQueues(); loadSchedules(); loadTrouble(); }

  function onOverview(message) {
    L.setText("rate-now", message.tasks_per_second);
    L.setText("events-now", message.events_per_second);
    addPoint(message);
    pushed.push([message.t, message.counts || {}]);
    while (pushed.length && pushed[0][0] < message.t - PUSHED_KEPT_S) { pushed.shift(); }
    if (counts) {
      addCounts(message.counts);
      showCounts();
    }
    if (message.workers && message.workers.length) { refreshWorkers(); }
  }

  chart = makeChart();
  loadAll();
  setInterval(loadStats, 30000);
  setInterval(loadQueues, 15000);
  setInterval(loadWorkers, 10000);  // heartbeat ages and workers that went silent
  setInterval(loadSchedules, 30000);  // pushed when a status changes; this is the fallback
  setInterval(loadTrouble, 15000);
  L.live(["overview"], {overview: onOverview, schedules: onSchedules}, loadAll);
}());
