/*
 * Controls page: the rate and time limits workers apply now (/api/v1/limits), asked on
 * demand: the events do not carry them, and asking every worker waits for the slowest.
 * An on-call trial set a rate limit and could see it only on one worker's Limits tab.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var button = document.getElementById("show-limits");
  var out = document.getElementById("limits-result");
  if (!button || !out) { return; }

  function table(limits) {
    var rows = limits.map(function (t) {
      return L.el("tr", {"data-testid": "limit-row"}, [
        L.el("td", {className: "mono"}, t.name), L.el("td", {className: "mono"}, t.worker),
        L.el("td", {}, t.rate_limit || "–"), L.el("td", {}, t.soft_time_limit || "–"),
        L.el("td", {}, t.time_limit || "–")]);
    });
    return L.el("table", {className: "data"}, [
      L.el("thead", {}, L.el("tr", {}, ["Task", "Worker", "Rate limit", "Soft time limit (s)",
        "Hard time limit (s)"].map(function (h) { return L.el("th", {}, h); }))),
      L.el("tbody", {}, rows)]);
  }

  function show(answer) {
    var workers = answer.workers || [];
    var limits = answer.limits || [];
    L.append(L.clear(out), L.el("p", {className: "muted", "data-testid": "limits-summary"},
      workers.length + " worker(s) answered within " + answer.timeout + " s; " +
      (limits.length ? limits.length + " limit(s) in force." : "no task has a limit.")));
    if (limits.length) { out.appendChild(table(limits)); }
    Object.keys(answer.errors || {}).forEach(function (key) {
      out.appendChild(L.el("p", {className: "error"}, answer.errors[key]));
    });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    L.append(L.clear(out), L.el("p", {className: "muted"}, "asking the workers…"));
    L.api("/limits").then(show).catch(function (error) {
      L.append(L.clear(out), L.el("p", {className: "error", role: "alert"}, String(error.message || error)));
    }).then(function () { button.disabled = false; });
  });
}());
