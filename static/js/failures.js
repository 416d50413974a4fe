/*
 * Failures: failed tasks grouped by fingerprint (/api/v1/failures) over a window kept in the
 * page URL (?window=1h). A group opens to its newest failure's exception and traceback and
 * links to its recent tasks (/api/v1/failures/<fingerprint>, read when opened and at each
 * refresh while open). Reloads when the live counts bring a failure (at most every 3 s)
 * and every 30 s; open groups stay open. Text only.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var root = document.getElementById("failures");
  var select = document.getElementById("window");
  var tbody = document.getElementById("groups-body");
  var DEFAULT = root.dataset.defaultWindow || "24h";
  var COLUMNS = 8;
  var open = {};  // fingerprint -> its detail <tr>, kept across reloads

  function windowFromUrl() {
    return new URLSearchParams(window.location.search).get("window") || DEFAULT;
  }

  function showWindow(value) {
    if (!Array.prototype.some.call(select.options, function (o) { return o.value === value; })) {
      select.appendChild(L.el("option", {value: value}, value));  // e.g. window=6h from a link
    }
    select.value = value;
  }

  function counts(list) {
    return L.el("ul", {className: "counts"}, (list || []).map(function (entry) {
      return L.el("li", {}, [L.el("span", {className: "mono"}, entry.name), " ",
        L.el("span", {className: "muted"}, "×" + entry.count)]);
    }));
  }

  function toggleButton(fp, expanded) {
    return L.el("button", {type: "button", className: "toggle", "data-testid": "toggle",
      "aria-expanded": expanded ? "true" : "false", "aria-controls": "detail-" + fp,
      title: expanded ? "Hide the sample and tasks" : "Show a sample and the recent tasks"},
      expanded ? "▾" : "▸");
  }

  function groupRow(g) {
    var message = [L.el("span", {className: "mono message", "data-testid": "message"}, g.message || "")];
    if (g.frame) {
      message.push(L.el("br"), L.el("span", {className: "muted small mono", "data-testid": "frame"},
        "in " + g.frame));
    }
    var cells = [toggleButton(g.fingerprint, !!open[g.fingerprint]),
      [L.el("strong", {"data-testid": "count"}, String(g.count)), g.retried
        ? L.el("div", {className: "muted small", "data-testid": "retried",
            title: "Sent again from Lookout: still counted, already dealt with"},
            g.retried === g.count ? "all retried" : g.retried + " retried") : null],
      L.el("span", {className: "mono", "data-testid": "exception-type"}, g.exception_type),
      message, counts(g.task_names), counts(g.workers),
      L.el("span", {title: L.fmtAgo(g.first_seen)}, L.fmtTime(g.first_seen)),
      L.el("span", {title: L.fmtAgo(g.last_seen)}, L.fmtTime(g.last_seen))];
    var tr = L.el("tr", {className: "group-row", "data-fingerprint": g.fingerprint,
      "data-testid": "group-row", "data-count": String(g.count)},
      cells.map(function (c) { return L.el("td", {}, c); }));
    tr.addEventListener("click", function (event) {
      if (event.target.closest("a") || window.getSelection().toString()) { return; }
      toggle(g);
    });
    return tr;
  }

  function detailRow(g) {
    var td = L.el("td", {colspan: String(COLUMNS)});
    var tr = L.el("tr", {className: "group-detail", id: "detail-" + g.fingerprint,
      "data-fingerprint": g.fingerprint, "data-testid": "group-detail"}, td);
    fillDetail(tr, g);
    return tr;
  }

  function fillDetail(tr, g) {
    var sample = g.sample || {};
    var kept = tr.querySelector('[data-testid="group-retry"]');  // a dry run may be shown
    if (kept) { kept.elements.window.value = select.value; }
    if (tr.dataset.sample === sample.uuid) { return; }  // same newest failure: keep as is
    tr.dataset.sample = sample.uuid || "";
    var td = L.clear(tr.firstChild);
    L.append(td, [
      L.el("p", {}, ["Newest failure: ", L.el("a", {href: L.taskUrl(sample.uuid),
        className: "mono", "data-testid": "sample-link"}, sample.uuid), " ",
        L.el("span", {className: "muted"}, sample.name || "")]),
      L.el("pre", {className: "exception", "data-testid": "sample-exception"}, sample.exception || ""),
      L.el("details", {open: "open"}, [L.el("summary", {}, "Traceback"),
        L.el("pre", {className: "traceback", "data-testid": "sample-traceback"},
          sample.traceback || "(no traceback recorded)")]),
      L.el("h3", {className: "small"}, ["Recent tasks ", L.el("span", {className: "muted",
        "data-testid": "task-count"}, "")]),
      L.el("ul", {className: "inline-list task-ids", "data-testid": "task-ids"},
        L.el("li", {className: "muted"}, "loading…")),
      kept || retryForm(g)]);
  }

  /* Operators retry one group, not a task name's every failure (a trial's bulk retry by
     name re-sent a payment task's unrelated failures too). The Controls' bulk retry flow
     (controls.js: dry run, confirm, act) takes the form; failures already sent again
     from Lookout are skipped. */
  function retryForm(g) {
    if (root.dataset.canControl !== "true") { return null; }
    return L.el("form", {"data-bulk-retry": "", className: "control-form group-retry",
      "data-testid": "group-retry"}, [
      L.el("input", {type: "hidden", name: "fingerprint", value: g.fingerprint,
        "data-group": "failure_group"}),
      L.el("input", {type: "hidden", name: "window", value: select.value,
        "data-group": "failure_group"}),
      L.el("button", {type: "submit", "data-testid": "group-retry-button"},
        "Retry this group's failures…"),
      L.el("span", {className: "muted small"}, " dry run first; those already retried are skipped"),
      L.el("div", {className: "control-result", "aria-live": "polite"})]);
  }

  /* The group's recent task ids (the list endpoint leaves them out). */
  function loadTasks(tr) {
    var fp = tr.dataset.fingerprint;
    return L.api("/failures/" + encodeURIComponent(fp), {window: select.value})
      .then(function (group) {
        var ids = group.task_ids || [];
        var retried = {};
        (group.retried_ids || []).forEach(function (id) { retried[id] = true; });
        L.setText(tr.querySelector('[data-testid="task-count"]'), "(newest " + ids.length +
          " of " + group.count + ")");
        L.append(L.clear(tr.querySelector('[data-testid="task-ids"]')), ids.map(function (id) {
          return L.el("li", {}, [L.el("a", {href: L.taskUrl(id), className: "mono",
            "data-testid": "task-link", title: id}, id), retried[id]
            ? L.el("span", {className: "muted small", "data-testid": "retried-mark"}, " (retried)")
            : null]);
        }));
        tr.dataset.loaded = "true";
      })
      .catch(function (error) {
        L.append(L.clear(tr.querySelector('[data-testid="task-ids"]')), L.el("li",
          {className: "muted"}, error.status === 404
            ? "No failure of this group in the window any more." : String(error.message)));
        tr.dataset.loaded = "error";
      });
  }

  function toggle(g) {
    var fp = g.fingerprint;
    var row = tbody.querySelector('tr.group-row[data-fingerprint="' + CSS.escape(fp) + '"]');
    if (open[fp]) {
      open[fp].remove();
      delete open[fp];
    } else {
      open[fp] = detailRow(g);
      row.parentNode.insertBefore(open[fp], row.nextSibling);
      loadTasks(open[fp]);
    }
    var button = toggleButton(fp, !!open[fp]);
    row.firstChild.replaceChild(button, row.firstChild.firstChild);
  }

  function render(data) {
    var groups = data.groups || [];
    var seen = {};
    L.clear(tbody);
    groups.forEach(function (g) {
      seen[g.fingerprint] = true;
      tbody.appendChild(groupRow(g));
      if (open[g.fingerprint]) {
        fillDetail(open[g.fingerprint], g);
        tbody.appendChild(open[g.fingerprint]);
        loadTasks(open[g.fingerprint]);
      }
    });
    Object.keys(open).forEach(function (fp) { if (!seen[fp]) { delete open[fp]; } });
    L.setText("failures-count", data.failures);
    L.setText("groups-total", data.total_groups);
    L.setText("failures-unit", data.failures === 1 ? "failure" : "failures");
    L.setText("groups-unit", data.total_groups === 1 ? "group" : "groups");
    document.getElementById("groups-table").hidden = !groups.length;
    var empty = document.getElementById("groups-empty");
    empty.hidden = groups.length > 0;
    L.setText(empty, "No failures in the last " + select.value + ".");
    var capped = document.getElementById("capped");
    capped.hidden = !data.capped;
    L.setText(capped, "Only the newest " + data.failures + " failures of the window were grouped.");
    L.setText("shown-note", (data.total_groups > groups.length ? "Showing the " + groups.length +
      " largest groups. " : "") + "Since " + L.fmtTime(data.since) + "; refreshed " +
      L.fmtTime(Date.now() / 1000) + ".");
  }

  var loading = null, again = false;
  function refresh() {
    if (loading) { again = true; return loading; }
    var asked = select.value;
    loading = L.api("/failures", {window: asked, limit: root.dataset.limit || "50"})
      .then(function (data) {
        if (asked !== select.value) { again = true; return; }  // the window changed meanwhile
        render(data);
        L.showError(null);
        root.dataset.window = asked;
        root.dataset.loaded = String(Date.now());
      })
      .catch(L.showError)
      .then(function () {
        loading = null;
        if (again) { again = false; refresh(); }
      });
    return loading;
  }

  select.addEventListener("change", function () {
    var params = new URLSearchParams(window.location.search);
    params.set("window", select.value);
    window.history.pushState(null, "", window.location.pathname + "?" + params);
    refresh();
  });
  document.getElementById("window-form").addEventListener("submit", function (event) {
    event.preventDefault();
  });
  window.addEventListener("popstate", function () { showWindow(windowFromUrl()); refresh(); });

  showWindow(windowFromUrl());
  refresh();
  // New failures arrive with the overview's live counts: reload then (at most every 3 s)
  // rather than waiting for the 30 s poll, which stays as the fallback.
  var refreshSoon = L.throttle(function () { if (!document.hidden) { refresh(); } }, 3000);
  L.live(["overview"], {overview: function (message) {
    if ((message.counts || {}).FAILURE) { refreshSoon(); }
  }}, refresh);
  setInterval(function () { if (!document.hidden) { refresh(); } },
    Number(root.dataset.refreshMs) || 30000);
}());
