/*
 * Queues page: depth of each queue read from the broker (polled), and a Chart.js line
 * chart of the depth samples the collector stored. Queue names are shown as text only.
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var root = document.getElementById("queues");
  var tbody = document.getElementById("queues-body");
  var windowSelect = document.getElementById("window");
  var chart = null;
  var names = [];
  var MAX_SERIES = 8;  // the chart draws the deepest queues, one theme colour each

  function priorities(byPriority) {
    if (!byPriority) { return "–"; }
    return Object.keys(byPriority).map(function (step) {
      return "p" + step + ": " + byPriority[step];
    }).join(", ");
  }

  function row(q, eventsQueue) {
    var stranded = L.strandedQueue(q);
    return L.el("tr", {"data-queue": q.name, className: stranded ? "row-alarm" : null,
                       "data-stranded": stranded ? "true" : null}, [
      L.el("td", {}, q.name),
      L.el("td", {className: "num", "data-testid": "messages"}, q.messages === null ? "–" : q.messages),
      L.el("td", {className: "num"}, q.consumers === null ? "–" : q.consumers),
      L.el("td", {}, priorities(q.by_priority)),
      L.el("td", {className: q.error || stranded ? "error" : "muted"},
        q.error || (stranded ? "no consumer: " + L.strandedText(q, eventsQueue) : ""))
    ]);
  }

  function refresh() {
    return L.api("/queues").then(function (data) {
      L.showError(null);
      L.setText("broker", data.broker);
      document.getElementById("consumers-note").hidden = data.transport.indexOf("redis") !== 0;
      L.clear(tbody);
      var items = (data.items || []).slice().sort(function (a, b) {
        return (b.messages || 0) - (a.messages || 0) || (a.name < b.name ? -1 : 1);
      });
      items.forEach(function (q) { tbody.appendChild(row(q, data.events_queue)); });
      names = items.map(function (q) { return q.name; }).slice(0, MAX_SERIES);
      root.dataset.loaded = "queues";
    }).catch(L.showError);
  }

  function timeLabel(value) {
    var d = new Date(value * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0") +
      ":" + String(d.getSeconds()).padStart(2, "0");
  }

  function drawChart(histories) {
    if (typeof Chart !== "function") { return; }
    var datasets = histories.map(function (h, i) {
      return L.themed({label: h.queue, pointRadius: 2, stepped: true,
        data: h.points.map(function (p) { return {x: p.t, y: p.messages}; })}, i);
    });
    var range = histories.length ? {min: histories[0].since, max: histories[0].until} : {};
    root.dataset.points = String(datasets.reduce(function (n, d) { return n + d.data.length; }, 0));
    root.dataset.maxDepth = String(datasets.reduce(function (most, d) {
      return d.data.reduce(function (m, p) { return Math.max(m, p.y); }, most);
    }, 0));
    if (!chart) {
      chart = new Chart(document.getElementById("depth-chart"), {
        type: "line", data: {datasets: datasets},
        options: {animation: false, parsing: false, maintainAspectRatio: false,
          scales: {x: {type: "linear", min: range.min, max: range.max, ticks: {callback: timeLabel}},
            y: {beginAtZero: true, title: {display: true, text: "messages"}}},
          plugins: {tooltip: {callbacks: {title: function (items) {
            return items.length ? timeLabel(items[0].parsed.x) : ""; }}}}}
      });
    } else {
      chart.data.datasets = datasets;
      chart.options.scales.x.min = range.min;
      chart.options.scales.x.max = range.max;
      chart.update("none");
    }
  }

  function refreshHistory() {
    var requests = names.map(function (name) {
      return L.api("/queues/" + encodeURIComponent(name) + "/history", {window: windowSelect.value})
        .catch(function () { return {queue: name, points: []}; });
    });
    return Promise.all(requests).then(drawChart);
  }

  windowSelect.addEventListener("change", refreshHistory);
  L.live([], {});  // depth is polled from the broker; the socket only drives the indicator
  refresh().then(refreshHistory);
  setInterval(refresh, Number(root.dataset.refreshMs) || 3000);
  setInterval(refreshHistory, Number(root.dataset.historyMs) || 10000);
}());
