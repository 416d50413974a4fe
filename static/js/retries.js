/*
 * Retries page: tasks in RETRY now (history API) and retries per task name over time
 * (/api/v1/retries, from rollups). Task data is shown as text only.
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var root = document.getElementById("retries");
  var windowSelect = document.getElementById("window");
  var chart = null;

  function cell(value) { return L.el("td", {}, value === null || value === undefined ? "–" : value); }

  function loadRetrying() {
    return L.api("/tasks", {state: "RETRY", sort: "-updated_at", limit: "100"}).then(function (page) {
      var tbody = L.clear(document.getElementById("retrying-body"));
      if (!(page.items || []).length) {
        tbody.appendChild(L.el("tr", {}, L.el("td", {colspan: "7", className: "muted"}, "none")));
      }
      (page.items || []).forEach(function (t) {
        tbody.appendChild(L.el("tr", {"data-uuid": t.uuid}, [
          L.el("td", {}, L.el("a", {href: L.taskUrl(t.uuid)}, t.uuid)),
          cell(t.name), cell(t.retries), cell(t.exception),
          cell(L.fmtTime(t.retried_at)), cell(L.fmtTime(t.eta)), cell(t.worker)]));
      });
      L.setText("retrying-total", page.total);
    });
  }

  function timeLabel(value) {
    var d = new Date(value * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function loadRates() {
    return L.api("/retries", {window: windowSelect.value}).then(function (data) {
      var tbody = L.clear(document.getElementById("rates-body"));
      (data.tasks || []).forEach(function (t) {
        tbody.appendChild(L.el("tr", {}, [cell(t.name), cell(t.retried), cell(t.succeeded),
          cell(t.failed), cell(L.fmtPercent(t.rate))]));
      });
      if (typeof Chart !== "function") { return; }
      var datasets = (data.series || []).map(function (s, i) {
        // Warm colours first: the first series is the one retrying most.
        return L.themed({label: s.name, pointRadius: 0,
          data: s.points.map(function (p) { return {x: p.t, y: p.retried}; })}, (i + 3) % 8);
      });
      if (!chart) {
        chart = new Chart(document.getElementById("retry-chart"), {
          type: "line", data: {datasets: datasets},
          options: {animation: false, parsing: false, maintainAspectRatio: false,
            scales: {x: {type: "linear", min: data.since, max: data.until, ticks: {callback: timeLabel}},
              y: {beginAtZero: true, title: {display: true, text: "retries per " + data.step + " s"}}},
            // Its time as the axis shows it, not Chart.js's epoch seconds ("1,796,175,180").
            plugins: {tooltip: {callbacks: {title: function (items) {
              return items.length ? timeLabel(items[0].parsed.x) : ""; }}}}}
        });
      } else {
        chart.data.datasets = datasets;
        chart.options.scales.x.min = data.since;
        chart.options.scales.x.max = data.until;
        chart.options.scales.y.title.text = "retries per " + data.step + " s";
        chart.update("none");
      }
    });
  }

  function refresh() {
    return Promise.all([loadRetrying(), loadRates()]).then(function () {
      L.showError(null);
      root.dataset.loaded = "retries";
    }).catch(L.showError);
  }

  windowSelect.addEventListener("change", refresh);
  var refreshSoon = L.throttle(refresh, 2000);
  L.live(["overview"], {overview: function (message) {
    // Pushed every tick even when idle: reload only when some task changed state.
    if (message && message.counts && Object.keys(message.counts).length) { refreshSoon(); }
  }}, refresh);
  refresh();
  setInterval(refresh, Number(root.dataset.refreshMs) || 5000);
}());
