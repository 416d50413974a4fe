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
  var POINTS = 120;  // a minute of half-second ticks (the API's /throughput slots)
  var STATE_COUNTER = {RECEIVED: "received", SUCCESS: "succeeded", FAILURE: "failed",
    RETRY: "retried", REVOKED: "revoked", REJECTED: "rejected"};
  var counts = null;  // last hour, per outcome
  var pushed = [];  // [collector time, counts] of recent pushes, to add to a cached read
  var PUSHED_KEPT_S = 120;  // longer than the API's cache keeps a value (60 s)
  var chart = null;

  function makeChart() {
    var canvas = document.getElementById("rate-chart");
    if (!canvas || typeof Chart !== "function") { return null; }
    return new Chart(canvas, {
      type: "line",
      data: {labels: [], datasets: [
        L.themed({label: "tasks finished/s", data: [], fill: true, pointRadius: 0,
          borderWidth: 2, tension: 0.2}, "ok", "fill"),
        L.themed({label: "events/s", data: [], pointRadius: 0, borderWidth: 1, tension: 0.2},
          "info", "grid")
      ]},
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: {intersect: false, mode: "index"},
        scales: {y: {beginAtZero: true}, x: {ticks: {maxTicksLimit: 8}}}
      }
    });
  }

  /* The chart's points: [time, finished/s, events/s], null rates where nothing was
     measured. A page opens with the last minute from /api/v1/throughput (the rates the
     collectors pushed, kept in their status rows): an empty chart filling for a minute
     showed nothing just when someone opened the dashboard to look (a trial). Gaps, not
     zeros, where no collector pushed: a flat 0 read as "nothing ran". */
  var points = [];
  function draw() {
    if (!chart) { return; }
    while (points.length < POINTS) { points.unshift([null, null, null]); }
    points = points.slice(-POINTS);
    chart.data.labels = points.map(function (p) { return p[0] === null ? "" : L.fmtTime(p[0]).slice(0, 8); });
    chart.data.datasets[0].data = points.map(function (p) { return p[1]; });
    chart.data.datasets[1].data = points.map(function (p) { return p[2]; });
    chart.update("none");
  }

  function loadThroughput() {
    return L.api("/throughput").then(function (data) {
      // The server's slot and hold (throughput.py), so the live points sum alike.
      if (data.hold > 0) { HOLD_S = data.hold; }
      if (data.step > 0) { STEP_S = data.step * 0.9; }
      var past = data.points || [];
      var end = past.length ? past[past.length - 1][0] : null;
      // Live points that came while the request was out follow the past.
      var later = points.filter(function (p) { return p[0] !== null && end !== null && p[0] > end; });
      points = past.concat(later);
      draw();
    }).catch(L.showError);
  }

  /* Collectors sharing a RabbitMQ queue each push their share every half second: the
     rates shown are the sum of each one's latest (a collector silent for HOLD_S no longer
     counts), one point per half second whoever sent it. Adding each message as a point
     drew a zig-zag between the shares. Times are this page's own (collectors' clocks may
     differ); a longer silence (a message queue outage, a collector restart) is a gap,
     not a straight line across it. */
  var HOLD_S = 1.5, STEP_S = 0.45, GAP_SECONDS = 3;  // till /throughput gives its own
  var latest = {}, lastPointAt = null;
  function addRates(message) {
    var now = Date.now() / 1000, tasks = 0, events = 0;
    latest[message.collector || ""] = {at: now, tasks: message.tasks_per_second || 0,
      events: message.events_per_second || 0};
    Object.keys(latest).forEach(function (name) {
      if (now - latest[name].at > HOLD_S) { delete latest[name]; return; }
      tasks += latest[name].tasks;
      events += latest[name].events;
    });
    tasks = Math.round(tasks * 100) / 100;
    events = Math.round(events * 100) / 100;
    L.setText("rate-now", tasks);
    L.setText("events-now", events);
    if (lastPointAt !== null && now - lastPointAt < STEP_S) { return; }
    if (lastPointAt !== null && now - lastPointAt > GAP_SECONDS) {
      points.push([null, null, null]);
    }
    lastPointAt = now;
    points.push([message.t, tasks, events]);
    draw();
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
    // The tables are as of the read, the cards live: a trial took the gap for a fault.
    L.setText("stats-asof", "as of " + L.fmtTime(stats.until).slice(0, 8));
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
      var stranded = L.strandedQueue(q);
      var tr = row([q.name, q.error ? "error: " + q.error : q.messages,
        q.consumers === null ? "–" : stranded ? "0: " + L.strandedText(q, data.events_queue)
          : q.consumers]);
      if (stranded) {
        tr.className = "row-alarm";
        tr.dataset.stranded = "true";
      }
      return tr;
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

  var SCHEDULE_PROBLEMS = ["missed", "unconsumed", "failing", "running_long", "late"];
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
  // collectors/status.py reports every 1 s; /healthz says when it calls one down.
  var SILENT_AFTER_S = 3;
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
        Math.round(c.status_age) + " s: down at " + report.stale_after + " s unless it reports" : "";
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
  /* Firing alerts (from the same /healthz report): red while any fires. */
  document.addEventListener("lookout:health", function (event) {
    var firing = (event.detail || {}).alerts_firing;
    var known = typeof firing === "number";
    L.setText("alerts-firing", known ? firing : "–");
    var card = document.getElementById("alerts-card");
    card.dataset.problems = known ? String(firing) : "";
    card.classList.toggle("card-alarm", known && firing > 0);
  });

  function loadAll() {
    loadStats(); loadWorkers(); loadQueues(); loadSchedules(); loadTrouble(); loadThroughput();
  }

  function onOverview(message) {
    addRates(message);
    pushed.push([message.t, message.counts || {}]);
    while (pushed.length && pushed[0][0] < message.t - PUSHED_KEPT_S) { pushed.shift(); }
    if (counts) {
      addCounts(message.counts);
      showCounts();
    }
    if (message.workers && message.workers.length) { refreshWorkers(); }
  }

  chart = makeChart();
  draw();
  loadAll();
  setInterval(loadStats, 30000);
  setInterval(loadQueues, 15000);
  setInterval(loadWorkers, 10000);  // heartbeat ages and workers that went silent
  setInterval(loadSchedules, 30000);  // pushed when a status changes; this is the fallback
  setInterval(loadTrouble, 15000);
  L.live(["overview"], {overview: onOverview, schedules: onSchedules}, loadAll);
}());
