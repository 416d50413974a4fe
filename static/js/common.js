/*
 * Helpers shared by every Lookout page: DOM building, API calls, the live socket and the
 * connection indicator, time formatting.
 *
 * Everything shown comes from tasks and workers (names, args, results, tracebacks,
 * hostnames) and may hold markup. It is only ever put in the page as text: el() and
 * setText() use textContent, and nothing here (or in the page scripts) uses innerHTML.
 */
(function () {
  "use strict";

  var body = document.body;
  var config = {
    api: body.dataset.api || "/api/v1",
    healthz: body.dataset.healthz || "/healthz",
    namespace: body.dataset.namespace || "/live",
    socketPath: body.dataset.socketPath || "/socket.io"
  };

  /* Bidi controls (U+061C, U+200E/F, U+202A-E, U+2066-9) in a task name or argument
     would reorder what is shown around them ("Trojan Source", CVE-2021-42574): a name could
     pass for another. Shown text gets each as a visible "⟨U+202E⟩" instead; a "\u202e"
     escape would be indistinguishable from those six characters, which task arguments and
     reprs often hold. Only what is shown changes, never data (API values, data-*, href).
     The test comes first: the Tasks list renders hundreds of rows live. Mirrored by
     reveal_bidi in dashboard/web/layout.py for server-rendered text. */
  var BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/;
  var BIDI_ALL = new RegExp(BIDI.source, "g");

  function revealBidi(text) {
    text = String(text);
    if (!BIDI.test(text)) { return text; }
    return text.replace(BIDI_ALL, function (c) {
      return "\u27E8U+" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + "\u27E9";
    });
  }

  /* el("a", {href: url, className: "x"}, ["text", childNode]): attributes are set with
     setAttribute, never event handlers; children are nodes or strings (text nodes), shown
     through revealBidi, as is a title (a tooltip is shown text too). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) { return; }
      if (key.slice(0, 2).toLowerCase() === "on") { throw new Error("no handlers: " + key); }
      if (key === "className") { node.className = value; } else {
        node.setAttribute(key, key === "title" ? revealBidi(value) : value);
      }
    });
    append(node, children);
    return node;
  }

  function append(node, children) {
    if (children === null || children === undefined) { return node; }
    if (!Array.isArray(children)) { children = [children]; }
    children.forEach(function (child) {
      if (child === null || child === undefined) { return; }
      node.appendChild(typeof child === "object" ? child
        : document.createTextNode(revealBidi(child)));
    });
    return node;
  }

  function setText(idOrNode, value) {
    var node = typeof idOrNode === "string" ? document.getElementById(idOrNode) : idOrNode;
    if (node) {
      node.textContent = value === null || value === undefined ? "–" : revealBidi(value);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) { node.removeChild(node.firstChild); }
    return node;
  }

  /* GET an API path ("/tasks"); rejects with an Error carrying .status and the message. */
  function api(path, params) {
    var query = params ? String(new URLSearchParams(params)) : "";
    var url = config.api + path + (query ? "?" + query : "");
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        return response.json().catch(function () { return undefined; }).then(function (data) {
          if (data === undefined && response.ok) {  // say so, rather than show nothing
            var bad = new Error("the server's answer to " + path + " is not valid JSON");
            bad.status = response.status;
            throw bad;
          }
          data = data || {};
          if (!response.ok) {
            var message = (data && data.error && data.error.message) || response.statusText;
            var error = new Error(message);
            error.status = response.status;
            error.data = data;
            throw error;
          }
          return data;
        });
      });
  }

  function taskUrl(uuid) { return "/tasks/" + encodeURIComponent(uuid); }

  /* ---- number formatting ---- */
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || isNaN(seconds)) { return "–"; }
    var s = Number(seconds);
    if (s < 0.001) { return (s * 1e6).toFixed(0) + " µs"; }
    if (s < 1) { return (s * 1000).toFixed(s < 0.01 ? 2 : 0) + " ms"; }
    if (s < 60) { return s.toFixed(s < 10 ? 2 : 1) + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m " + Math.round(s % 60) + "s"; }
    return Math.floor(s / 3600) + "h " + Math.round((s % 3600) / 60) + "m";
  }

  function fmtAgo(epoch) {
    if (epoch === null || epoch === undefined) { return "–"; }
    return fmtDuration(Math.max(0, Date.now() / 1000 - epoch)) + " ago";
  }

  function fmtPercent(ratio) {
    if (ratio === null || ratio === undefined) { return "–"; }
    return (ratio * 100).toFixed(ratio < 0.1 ? 2 : 1) + "%";
  }

  function stateBadge(state) {
    return el("span", {className: "badge state-" + String(state || "UNKNOWN").replace(/[^A-Z]/g, "")},
      state || "?");
  }

  /* A task's state as shown: Celery's, but EXPIRED for a revoke that says the task expired,
     and "revoke pending" beside it while a revoke Lookout sent has not shown in the events
     (a worker announces an ETA task's revoke only when its ETA comes). */
  function taskBadge(task) {
    var badge = stateBadge(task.state === "REVOKED" && task.expired ? "EXPIRED" : task.state);
    if (!task.revoke_pending) { return badge; }
    var fmtTime = window.Lookout.fmtTime;  // time.js, loaded after this file
    return el("span", {}, [badge, " · ", el("span", {className: "badge revoke-pending",
      "data-testid": "revoke-pending", title: "Lookout sent a revoke" +
        (task.revoke_requested_at ? " at " + fmtTime(task.revoke_requested_at) : "") +
        "; the worker confirms it when it next handles the task (an ETA task: at its ETA)."},
      "revoke pending")]);
  }

  /* ---- connection indicator ---- */
  var indicator = document.getElementById("connection");
  var status = {socket: "connecting", collector: "unknown", health: "", note: "",
    warning: "", downLabel: "collector down"};
  var LABELS = {live: "live", reconnecting: "reconnecting…", connecting: "connecting…",
    down: "collector down", quiet: "live · no worker heard",
    stalled: "live updates stalled"};

  function showStatus() {
    if (!indicator) { return; }
    var down = status.collector === "down";
    // A dead collector outranks a live socket, or no socket at all (polling the API then
    // shows nothing new either); while reconnecting, the socket is the news.
    var state = down && (status.socket === "live" || status.note) ? "down" : status.socket;
    // Connected, yet no beat from the collector (a message queue outage): nothing is new.
    if (state === "live" && status.stalled) { state = "stalled"; }
    // Connected, yet no worker heard for minutes: wrong broker, or workers without -E.
    if (state === "live" && status.warning) { state = "quiet"; }
    indicator.dataset.state = state;
    indicator.textContent = status.note ? (down ? status.downLabel + "; " : "") + status.note
      : (state === "down" ? status.downLabel : LABELS[state]);
    var stalledWhy = state === "stalled" ? "connected, but nothing from the collector for " +
      BEAT_STALL_MS / 1000 + " s: the message queue between collector and web may be down" : "";
    indicator.title = [status.note, stalledWhy, status.warning, status.health].filter(Boolean)
      .join(" · ") || "Live updates";
  }

  /* What is down, in the words an on-call person acts on: the store (status "down"), the
     broker (a collector that runs but cannot reach it), the collector itself (its status
     row stale, or none running), or the message queue that carries live updates from a
     collector to the web (either side cannot reach it). Anonymous callers get no detail. */
  var QUEUE_DOWN = "message queue unreachable";  // a label, and checkHealth's cue to stall
  function downLabel(report) {
    if (report.status === "down") { return "store unreachable"; }
    var collectors = report.collectors || [], stale = false, cutOff = false, running = false;
    var queueDown = !!report.message_queue && report.message_queue.ok === false;
    var down = 0, kept = 0;  // of the collectors not stopped on request
    collectors.forEach(function (c) {
      if (c.stale) { stale = true; }
      if (!c.stale && !c.stopped && !c.connected) { cutOff = true; }
      if (c.up) { running = true; }
      if (c.up && c.live && c.live.ok === false) { queueDown = true; }
      if (!c.stopped) { kept += 1; if (!c.up) { down += 1; } }
    });
    if (cutOff && !stale) { return "broker unreachable"; }
    if (queueDown && running && !stale) { return QUEUE_DOWN; }
    // One of a pair died: the other still collects everything; "collector down" alone
    // read as if collection had stopped (a trial).
    return running && down ? down + " of " + kept + " collectors down" : "collector down";
  }
  var SOME_DOWN = / of \d+ collectors down$/;
  var FORGET_HINT = "the others still collect. One that will not come back: " +
    "lookout collectors forget NAME";

  /* Firing alerts on every page: a badge on the nav's Alerts link (they showed only on
     the Alerts page, and nobody looks there at 3 a.m.: an on-call trial). /healthz
     counts them for signed-in callers; anonymous ones get no badge. */
  function showAlertsFiring(count) {
    var link = document.querySelector('header nav a[href$="/alerts"]');
    if (!link) { return; }
    var badge = link.querySelector(".nav-badge");
    if (!count) {
      if (badge) { badge.remove(); }
      link.removeAttribute("title");
      return;
    }
    if (!badge) {
      badge = el("span", {className: "nav-badge", "data-testid": "alerts-firing-badge"});
      link.appendChild(badge);
    }
    setText(badge, String(count));
    link.title = count + " alert" + (count > 1 ? "s" : "") + " firing";
  }

  /* Ask /healthz now, then again in 5 s, or in 2 s while the collector is down so the
     indicator turns back to live soon after it recovers. (10 s let a killed collector
     read "up" for up to 20 s: /healthz itself calls it down after 10 s of silence.) */
  var healthTimer = null;
  function checkHealth() {
    clearTimeout(healthTimer);
    return fetch(config.healthz, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (report) {
          status.collector = response.ok ? "up" : "down";
          status.downLabel = downLabel(report);
          // The queue that carries the beats is down: updates have stopped even if the
          // stall has not shown yet. The indicator turns live again with the first beat,
          // which also reloads what was missed, not as soon as /healthz is green.
          if (status.downLabel === QUEUE_DOWN && !response.ok) { noBeats(); }
          status.health = (report.problems || []).join("; ") ||
            (response.ok ? "collector connected" : status.downLabel);
          if (SOME_DOWN.test(status.downLabel)) { status.health += "; " + FORGET_HINT; }
          status.warning = (report.warnings || []).join("; ");
          showAlertsFiring(report.alerts_firing);
          // Pages that show the collectors (the Overview) take the same report.
          document.dispatchEvent(new CustomEvent("lookout:health", {detail: report}));
        });
      })
      .catch(function () {
        status.collector = "down";
        status.health = status.downLabel = "web server unreachable";
      })
      .then(function () {
        showStatus();
        healthTimer = setTimeout(checkHealth, status.collector === "down" ? 2000 : 5000);
      });
  }

  /* ---- browser libraries that did not load ----
     The vendor scripts are deferred and run in document order before this one, so a
     missing global here means the script failed (offline, blocked CDN, SRI mismatch).
     The body and each chart's box carry the library's configured src, to name it. */

  /* Each chart's box gives way to a notice; the page's figures and tables carry on. */
  function noticeMissingCharts() {
    if (typeof Chart === "function") { return; }
    var boxes = document.querySelectorAll(".chart-box[data-chartjs-src]");
    Array.prototype.forEach.call(boxes, function (box) {
      box.hidden = true;
      box.parentNode.insertBefore(el("p", {className: "notice", "data-testid": "chart-notice"},
        "Charts unavailable: Chart.js did not load from " + box.dataset.chartjsSrc +
        ". The figures and tables on this page still update."), box);
    });
  }

  /* ---- chart colours ----
     Charts take their colours from theme.css's variables, read when a chart is built, so
     they are readable in the dark theme too; when the system theme changes every chart
     is recoloured. A dataset made with themed() keeps its colour keys for that. */
  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chartTheme() {
    return {text: cssVar("--muted"), grid: cssVar("--line"), ok: cssVar("--ok"),
      info: cssVar("--info"), bad: cssVar("--bad"), warn: cssVar("--warn"),
      fill: cssVar("--chart-fill"),
      series: cssVar("--chart-series").split(",").map(function (c) { return c.trim(); })
        .filter(Boolean)};
  }

  /* key: "ok", "info", "bad", "warn", "fill", "grid", "text", or a number (nth series colour). */
  function pick(theme, key) {
    if (/^\d+$/.test(key)) { return theme.series[Number(key) % theme.series.length] || theme.text; }
    return theme[key] || theme.text;
  }

  function paint(dataset, theme) {
    dataset.borderColor = pick(theme, dataset.themeBorder);
    dataset.backgroundColor = pick(theme, dataset.themeBackground);
    return dataset;
  }

  /* A Chart.js dataset coloured from the theme: themed({label, data}, "ok", "fill"). */
  function themed(dataset, border, background) {
    dataset.themeBorder = String(border);
    dataset.themeBackground = String(background === undefined ? border : background);
    return paint(dataset, chartTheme());
  }

  function applyChartTheme() {
    if (typeof Chart !== "function") { return; }
    var theme = chartTheme();
    Chart.defaults.color = theme.text;  // ticks, legend, titles
    Chart.defaults.borderColor = theme.grid;  // grid lines and axes
    Object.keys(Chart.instances || {}).forEach(function (id) {
      var chart = Chart.instances[id];
      chart.data.datasets.forEach(function (set) { if (set.themeBorder) { paint(set, theme); } });
      chart.update("none");
    });
  }

  /* Charts draw their text on a canvas, past el() and setText(): every chart's category
     labels (axis ticks, tooltip titles) and dataset labels (legend, tooltip lines), such
     as the Retries chart's task names and the Queues chart's queue names, go through
     revealBidi before each update. Only the chart's own copy of the text changes. */
  function revealLabel(label) {
    if (typeof label === "string") { return revealBidi(label); }
    return Array.isArray(label) ? label.map(revealLabel) : label;  // multi-line labels
  }

  var revealChartText = {
    id: "lookoutRevealBidi",
    beforeUpdate: function (chart) {
      var labels = chart.data.labels || [];
      for (var i = 0; i < labels.length; i += 1) { labels[i] = revealLabel(labels[i]); }
      chart.data.datasets.forEach(function (set) {
        if (set.label !== undefined) { set.label = revealLabel(set.label); }
      });
    }
  };

  /* Without a socket nothing is pushed: call `resync()` every POLL_MS instead, each time
     after the previous one settled, so the page still follows the API. */
  var POLL_MS = 5000;
  function pollInstead(resync, why) {
    var src = body.dataset.socketioSrc || "its configured URL";
    status.socket = resync ? "polling" : "unavailable";
    status.note = "live updates unavailable" +
      (resync ? ", refreshing every " + POLL_MS / 1000 + " s" : "") +
      ": " + (why || "the Socket.IO client did not load from " + src);
    body.dataset.live = status.socket;
    showStatus();
    if (!resync) { return; }
    (function next() {
      setTimeout(function () {
        new Promise(function (resolve) { resolve(document.hidden ? null : resync()); })
          .catch(function () { return null; })  // the page shows its own errors
          .then(next);
      }, POLL_MS);
    }());
  }

  /* Connect to the live namespace, join `rooms`, and call `handlers[event](data)` for
     pushed messages. Once the rooms are joined (again, after a reconnection) `resync()`
     reloads from the API whatever changed before the pushes could reach this page; with
     no Socket.IO client it is polled instead. */
  function live(rooms, handlers, resync) {
    if (typeof io !== "function") {
      pollInstead(resync);
      return null;
    }
    var socket = io(config.namespace, {path: config.socketPath});
    rooms = rooms.concat(["beat"]);
    watchBeats(socket, resync);
    socket.on("connect", function () {
      status.socket = "live";
      status.note = "";
      showStatus();
      checkHealth();
      var pending = rooms.length;
      function joined() {
        body.dataset.live = "subscribed";
        if (resync) { resync(); }
      }
      if (!pending) { joined(); }  // a page that only wants the indicator
      rooms.forEach(function (room) {
        socket.emit("subscribe", {room: room}, function () {
          pending -= 1;
          if (pending === 0) { joined(); }
        });
      });
    });
    socket.on("disconnect", function () {
      status.socket = "reconnecting";
      body.dataset.live = "disconnected";
      showStatus();
    });
    socket.on("connect_error", function (error) {
      // A refusal by the server says why (a full server, too many tabs for this account,
      // login required). A handshake refusal is retried with backoff; one by the live
      // namespace is final: the page then polls the API instead and shows the reason.
      var reason = error && error.data && error.data.message || error && error.message;
      if (!socket.active) {
        socket.close();
        pollInstead(resync, reason || "refused by the server");
        return;
      }
      status.socket = "reconnecting";
      status.note = reason && reason !== "xhr poll error" && reason !== "websocket error"
        ? "reconnecting: " + reason : "";
      showStatus();
    });
    Object.keys(handlers || {}).forEach(function (event) { socket.on(event, handlers[event]); });
    return socket;
  }

  /* The collector's push sends a "beat" every half second, events or not. With the
     socket up but no beat for BEAT_STALL_MS, updates have stopped somewhere between the
     collector and this web process (a message queue outage): the indicator says so. When
     beats come back after any gap over BEAT_GAP_MS, the page reloads what it missed from
     the API. A /healthz that names the message queue stalls the page at once (noBeats):
     until the first beat, "live" would be a promise the page cannot keep. */
  var BEAT_STALL_MS = 10000, BEAT_GAP_MS = 3000, lastBeat = Date.now();
  function noBeats() {
    if (Date.now() - lastBeat > BEAT_GAP_MS) { status.stalled = true; }
  }
  function watchBeats(socket, resync) {
    // `beating`: a beat came since the socket (re)connected. The wait for the first one
    // is no gap: the page has just loaded, or resyncs on reconnecting anyway.
    var beating = false;
    socket.on("connect", function () {
      lastBeat = Date.now();
      beating = false;
      status.stalled = false;
    });
    socket.on("beat", function () {
      var missed = status.stalled || (beating && Date.now() - lastBeat > BEAT_GAP_MS);
      lastBeat = Date.now();
      beating = true;
      if (status.stalled) { status.stalled = false; showStatus(); }
      if (missed && resync) { resync(); }
    });
    // Only a beat or a new connection ends a stall (/healthz may call it early).
    setInterval(function () {
      if (status.socket === "live" && !status.stalled && Date.now() - lastBeat > BEAT_STALL_MS) {
        status.stalled = true;
        showStatus();
      }
    }, 2000);
  }

  /* Run fn at most once per `wait` ms, always eventually with the latest call. */
  function throttle(fn, wait) {
    var timer = null, again = false;
    function run() {
      timer = null;
      if (again) { again = false; fn(); timer = setTimeout(run, wait); }
    }
    return function () {
      if (timer) { again = true; return; }
      fn();
      timer = setTimeout(run, wait);
    };
  }

  function showError(error) {
    var node = document.getElementById("error");
    if (!node) { return; }
    node.hidden = !error;
    node.textContent = error ? revealBidi(error.message || error) : "";
  }

  noticeMissingCharts();
  if (typeof Chart === "function") { Chart.register(revealChartText); }
  applyChartTheme();
  if (window.matchMedia) {
    var dark = window.matchMedia("(prefers-color-scheme: dark)");
    if (dark.addEventListener) { dark.addEventListener("change", applyChartTheme); }
  }
  checkHealth();

  // A task in one of these has ended: no event will change it (collectors/merge.py).
  var FINAL_STATES = ["SUCCESS", "FAILURE", "REVOKED", "REJECTED"];

  /* A queue (an /api/v1/queues item) with messages and no consumer: nothing will take
     them. The Queues page and the Overview mark it (it looked like any other row). */
  function strandedQueue(q) { return !q.error && q.messages > 0 && q.consumers === 0; }

  /* Why a stranded queue is one, in words; `eventsQueue` (from /queues) is the collectors'
     own RabbitMQ queue, whose consumers are collectors ("no worker" misled a trial). */
  function strandedText(q, eventsQueue) {
    if (q.name === eventsQueue) { return "no collector consumes it: events wait here"; }
    // The workers that last said they consume it: the ones to bring back (a trial could
    // not tell which worker a stranded queue had lost).
    var last = (q.last_consumers || []).slice(0, 3).map(function (w) {
      return w.hostname + " (" + fmtAgo(w.seen_at) + ")";
    });
    return "no worker takes these messages" +
      (last.length ? "; last consumed by " + last.join(", ") : "");
  }

  window.Lookout = {
    FINAL_STATES: FINAL_STATES, strandedQueue: strandedQueue, strandedText: strandedText,
    config: config, el: el, append: append, setText: setText, revealBidi: revealBidi,
    clear: clear, api: api,
    taskUrl: taskUrl, fmtDuration: fmtDuration, fmtAgo: fmtAgo,
    fmtPercent: fmtPercent, stateBadge: stateBadge, taskBadge: taskBadge, live: live,
    throttle: throttle,
    showError: showError, checkHealth: checkHealth, chartTheme: chartTheme, themed: themed
  };
}());
