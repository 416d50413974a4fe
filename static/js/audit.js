/*
 * The Audit page: loads /api/v1/audit with the chosen filters, newest first, and appends
 * older pages on demand (keyset cursor). Everything is shown as text.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var body = document.getElementById("audit-body");
  var more = document.getElementById("audit-more");
  var form = document.getElementById("audit-filters");
  var cursor = null;

  function filters() {
    var params = {};
    new FormData(form).forEach(function (value, key) { if (value) { params[key] = value; } });
    return params;
  }

  function short(value) {
    if (value === null || value === undefined) { return ""; }
    var text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > 300 ? text.slice(0, 300) + "…" : text;
  }

  function row(record) {
    // Worker controls record a list of per-worker replies; controls that send a task
    // (run now, retry) record an object such as {task_id}; a bulk retry, a list of
    // {retry_of, task_id} (it read "undefined: undefined": a trial).
    var replies = Array.isArray(record.replies) ? record.replies.map(function (r) {
      if (r && r.worker !== undefined) {
        return r.worker + ": " + (r.reply === null ? (r.error || "no reply") : JSON.stringify(r.reply));
      }
      if (r && r.task_id !== undefined && r.retry_of !== undefined) {
        return r.retry_of + " → " + r.task_id;
      }
      return short(r);
    }).join("\n") : short(record.replies);
    return L.el("tr", {"data-id": record.id, "data-action": record.action,
                       "data-outcome": record.outcome}, [
      L.el("td", {}, L.fmtTime(record.timestamp)),
      L.el("td", {}, record.actor + (record.role ? " (" + record.role + ")" : "")),
      L.el("td", {className: "mono"}, record.remote_addr || ""),
      L.el("td", {className: "mono"}, record.action),
      L.el("td", {}, record.outcome + " " + record.status),
      L.el("td", {className: "mono"}, short(record.targets)),
      L.el("td", {className: "mono"}, short(record.parameters)),
      L.el("td", {className: "mono pre"}, short(replies || record.message || ""))]);
  }

  function load(reset) {
    var params = filters();
    if (!reset && cursor) { params.cursor = cursor; }
    L.api("/audit", params).then(function (page) {
      if (reset) { L.clear(body); }
      page.items.forEach(function (record) { body.appendChild(row(record)); });
      cursor = page.next_cursor;
      more.hidden = !cursor;
      L.showError(null);
    }).catch(L.showError);
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); load(true); });
  more.addEventListener("click", function () { load(false); });
  load(true);
  L.live([], {});  // no rooms: only so the connection indicator tells the truth
}());
