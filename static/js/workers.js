/*
 * Workers page: polls /api/v1/workers and shows each worker's health from its heartbeats.
 * Everything from workers is put in the page as text (Lookout.el / textContent).
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var table = document.getElementById("workers-table");
  var tbody = document.getElementById("workers-body");
  var HEALTH = {"online": "online", "offline": "offline", "heartbeat-missed": "heartbeat missed",
    "unknown": "unknown (no collector listening)"};

  function loadavg(values) {
    return Array.isArray(values) ? values.map(function (v) { return Number(v).toFixed(2); }).join(" ") : "–";
  }

  /* Shut down or crashed: both were a bare "offline", the difference only in the API
     (an on-call trial). A worker that said goodbye shut down; a silent one was killed,
     crashed or cut off, and took its running tasks with it (see Trouble). */
  function offlineHow(worker) {
    if (worker.status !== "offline") { return null; }
    var said = /^it said so/.test(worker.status_reason || "");
    return L.el("div", {className: "muted small", "data-testid": "offline-how"},
      said ? "shut down" : "went silent: killed, crashed or cut off");
  }

  function row(worker) {
    var status = worker.status || "unknown";
    var heartbeat = worker.heartbeat_age === null || worker.heartbeat_age === undefined ? "–"
      : L.fmtDuration(worker.heartbeat_age) + " ago";
    return L.el("tr", {"data-hostname": worker.hostname, "data-status": status}, [
      L.el("td", {}, L.el("a", {href: "/workers/" + encodeURIComponent(worker.hostname)}, worker.hostname)),
      L.el("td", {}, [L.el("span", {className: "badge health-" + status, "data-testid": "health",
        title: worker.status_reason || ""}, HEALTH[status] || status), offlineHow(worker)]),
      L.el("td", {title: L.fmtTime(worker.last_heartbeat)}, heartbeat),
      L.el("td", {}, loadavg(worker.loadavg)),
      L.el("td", {className: "num", title: status === "offline" && worker.active
        ? worker.active + " at its last heartbeat" : ""},
        worker.active === null || status === "offline" ? "–" : worker.active),
      L.el("td", {className: "num"}, worker.processed === null ? "–" : worker.processed),
      L.el("td", {}, [worker.sw_ident || "", " ", worker.sw_ver || ""].join("").trim() || "–"),
      L.el("td", {}, L.fmtTime(worker.first_seen))
    ]);
  }

  function refresh() {
    return L.api("/workers").then(function (data) {
      L.showError(null);
      L.clear(tbody);
      (data.items || []).forEach(function (worker) { tbody.appendChild(row(worker)); });
      // The API pages by hostname (500 a page): say so when there are more.
      L.setText("workers-count", data.next_cursor ? (data.items.length + " of " + data.total)
        : (data.items || []).length);
      document.getElementById("workers-empty").hidden = (data.items || []).length > 0;
      document.body.dataset.loaded = "workers";
    }).catch(L.showError);
  }

  refresh();
  // Polling catches heartbeats going stale (nothing is pushed for silence); the overview
  // room's pushes make worker-online/offline show at once.
  var refreshSoon = L.throttle(refresh, 1000);
  L.live(["overview"], {overview: function (message) {
    // The overview is pushed every tick, idle or not: reload only when workers changed.
    if (message && message.workers && message.workers.length) { refreshSoon(); }
  }}, refresh);
  setInterval(refresh, Number(table.dataset.refreshMs) || 3000);
}());
