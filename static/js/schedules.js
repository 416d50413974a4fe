/*
 * Schedules page: the beat schedule of the app given with -A, with next and last runs.
 * Entry names, tasks and args come from the user's config and are shown as text only.
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var root = document.getElementById("schedules");
  var tbody = document.getElementById("schedules-body");

  function cell(value, attrs) {
    return L.el("td", attrs || {}, value === null || value === undefined || value === "" ? "–" : value);
  }

  function nextRun(item) {
    if (item.error) { return item.error; }
    if (item.next_run_at === null || item.next_run_at === undefined) { return null; }
    var wait = item.next_run_at - Date.now() / 1000;
    return L.fmtTime(item.next_run_at) + (wait > 0 ? " (in " + L.fmtDuration(wait) + ")" : " (due)");
  }

  function lastRun(last) {
    if (!last) { return "not seen in the history"; }
    return L.el("span", {}, [L.el("a", {href: L.taskUrl(last.uuid)}, L.fmtTime(last.timestamp)),
      last.matched === "name" ? " (same task, other args)" : ""]);
  }

  function row(item) {
    var schedule = item.schedule || {};
    var last = item.last_run;
    return L.el("tr", {"data-entry": item.name}, [
      cell(item.name), cell(item.task), cell(item.args), cell(item.kwargs),
      cell(L.el("span", {title: schedule.cron || schedule.kind || ""}, [schedule.description || "–",
        schedule.cron ? " · " + schedule.cron : ""]), {"data-testid": "schedule"}),
      cell(nextRun(item)), cell(lastRun(last)),
      cell(last ? L.stateBadge(last.state) : null)
    ]);
  }

  function refresh() {
    return L.api("/schedules").then(function (data) {
      L.showError(data.error ? {message: data.error} : null);
      document.getElementById("how-to").hidden = data.configured !== false;
      L.setText("app-name", data.app ? "app " + data.app : "");
      L.clear(tbody);
      (data.items || []).forEach(function (item) { tbody.appendChild(row(item)); });
      root.dataset.loaded = data.configured ? "configured" : "unconfigured";
    }).catch(L.showError);
  }

  refresh();
  L.live([], {});  // polled; the socket only drives the connection indicator
  setInterval(refresh, Number(root.dataset.refreshMs) || 5000);
}());
