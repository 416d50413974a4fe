/*
 * Tasks: the history table with every API filter, filters and page cursor kept in the URL
 * (the page URL's query string is the API query), and live rows.
 *
 * Live: the "tasks" room pushes changed rows a few times a second. Rows already shown are
 * updated in place; on the first page of the default newest-first order, new rows that
 * match the filters (checked here, as the API would) appear on top without a reload.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var PARAMS = ["state", "name", "worker", "queue", "root_id", "parent_id", "q", "after", "before",
    "received_after", "received_before", "started_after", "started_before", "eta_min", "eta_max",
    "runtime_min", "runtime_max", "lost", "sort", "limit", "cursor"];
  var NOT_STARTED = ["PENDING", "RECEIVED", "RETRY"];  // what a revoke still stops
  var OPEN = ["RECEIVED", "STARTED"];  // only these can be lost
  var FINAL = L.FINAL_STATES;
  var DEFAULTS = {sort: "-timestamp", limit: "50"};
  var form = document.getElementById("filters");
  var tbody = document.getElementById("tasks-body");
  var rowsById = {};
  var lostById = {};  // pushed rows carry no lost verdict: the last one read from the API
  var revokeById = {};  // nor Lookout's revoke request: the last one read from the API
  var current = new URLSearchParams();
  var total = 0;
  var totalExact = true;  // false: the API stopped counting at `total` ("10,000+")
  // Live inserts: the newest `timestamp` the last API answer held, and the tasks added
  // (and counted) since, so a task pushed again after it left the page is not new again.
  var loadedNewest = -Infinity;
  var liveAdded = {};
  var liveCount = 0;
  var LIVE_ADDED_MAX = 5000;

  function showTotal() {
    L.setText("total", totalExact ? total : total.toLocaleString("en-US") + "+");
  }

  function fromUrl() {
    var params = new URLSearchParams(window.location.search), clean = new URLSearchParams();
    params.forEach(function (value, key) {
      if (PARAMS.indexOf(key) >= 0 && value !== "") { clean.append(key, value); }
    });
    return clean;
  }

  /* Time fields (data-time="start" or "end") are typed and shown in the zone of the
     header's switch; the URL and the API get ISO 8601 with that zone's explicit offset.
     An "end" field takes in the whole second (or minute, day) typed. */
  function timeField(key) {
    var field = form.elements[key];
    return field && field.dataset && field.dataset.time ? field : null;
  }

  /* The form as URL/API parameters; throws, naming the field, on a time it cannot read. */
  function fromForm() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      value = String(value).trim();
      var field = timeField(key);
      if (field && value !== "") {
        var epoch = L.parseTime(value, {end: field.dataset.time === "end"});
        if (isNaN(epoch)) {
          var error = new Error(field.parentNode.firstChild.textContent.trim() + ": “" + value +
            "” is not a time like 2026-11-21 22:00:05 or 22:00 (in " + L.tzLabel() + ")");
          error.field = field;
          throw error;
        }
        value = L.fmtIso(epoch, {micro: true});
      }
      if (value !== "" && DEFAULTS[key] !== value) { params.append(key, value); }
    });
    return params;
  }

  /* A time parameter from the URL (the API's value: naive means UTC) as its field shows it. */
  function timeText(field, value) {
    var epoch = L.parseTime(value, {naive: "utc"});
    return isNaN(epoch) ? value : L.fmtInput(epoch, field.dataset.time === "end");
  }

  function fillForm(params) {
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name) { return; }
      if (field.name === "lost") {
        field.checked = lostFilter(params);
      } else if (field.type === "checkbox") {
        field.checked = params.getAll(field.name).indexOf(field.value) >= 0;
      } else if (field.tagName === "SELECT" || field.tagName === "INPUT") {
        var value = params.get(field.name) || DEFAULTS[field.name] || "";
        if (field.tagName === "SELECT" && value && !Array.prototype.some.call(field.options,
          function (option) { return option.value === value; })) {
          field.appendChild(L.el("option", {value: value}, value));  // e.g. limit=10 from a link
        }
        field.value = field.dataset.time && value ? timeText(field, value) : value;
      }
    });
  }

  function lostFilter(params) { return /^(true|1|yes)$/i.test(params.get("lost") || ""); }

  function stateCell(task) {
    if (!task.lost) { return L.taskBadge(task); }
    return L.el("span", {}, [L.taskBadge(task), " ", L.el("span", {className: "badge lost",
      title: "Lost: " + task.lost, "data-testid": "lost-badge"}, "lost")]);
  }

  /* A finished task's eta is its last attempt's (Celery sends eta again with every retry),
     now past: greyed, and its title says so, as on the task's own page. */
  function etaCell(task) {
    var time = L.timeEl(task.eta, {"data-testid": "eta"});
    if (FINAL.indexOf(task.state) < 0 || typeof time === "string") { return time; }
    return L.el("span", {className: "muted", "data-testid": "eta-ended",
      title: "Its last attempt's eta: the task has ended (" + task.state + ")"}, time);
  }

  /* The call's arguments: positional, then keyword ones if any ("()" alone hid a call made
     with keyword arguments only: a trial). */
  function callText(task) {
    var args = task.args || "", kwargs = task.kwargs || "";
    if (!kwargs || kwargs === "{}") { return args; }
    return args && args !== "()" && args !== "[]" ? args + " " + kwargs : kwargs;
  }

  function cells(task) {
    return [
      stateCell(task),
      L.el("a", {href: L.taskUrl(task.uuid), className: "task-name"}, task.name || "(unknown)"),
      L.el("a", {href: L.taskUrl(task.uuid), className: "mono"}, String(task.uuid).slice(0, 8)),
      L.el("span", {className: "mono clip", title: callText(task)}, callText(task)),
      // A hostname breaks at its hyphens otherwise ("celery-" / "worker-1@...").
      task.worker ? L.el("span", {className: "host"}, task.worker) : "–", task.queue || "–",
      L.timeEl(task.received_at), L.timeEl(task.started_at), etaCell(task),
      L.fmtDuration(task.runtime), task.retries || 0
    ].map(function (cell) { return L.el("td", {}, cell); });
  }

  function makeRow(task) {
    var tr = L.el("tr", {"data-uuid": task.uuid, "data-state": task.state,
      "data-timestamp": String(task.timestamp), "data-lost": task.lost ? "true" : null},
      cells(task));
    rowsById[task.uuid] = tr;
    lostById[task.uuid] = task.lost || null;
    revokeById[task.uuid] = task.revoke_requested_at || null;
    return tr;
  }

  function updateRow(task) {
    var tr = rowsById[task.uuid];
    if (!("lost" in task)) {  // a pushed row: keep the verdict while the task stays open
      task.lost = OPEN.indexOf(task.state) >= 0 ? lostById[task.uuid] || null : null;
    }
    if (!("revoke_pending" in task)) {  // pending until it starts (history/service.py)
      task.revoke_requested_at = revokeById[task.uuid] || null;
      task.revoke_pending = !!task.revoke_requested_at && NOT_STARTED.indexOf(task.state) >= 0;
    }
    lostById[task.uuid] = task.lost;
    revokeById[task.uuid] = task.revoke_requested_at || null;
    L.append(L.clear(tr), cells(task));
    tr.dataset.state = task.state;
    if (task.lost) { tr.dataset.lost = "true"; } else { delete tr.dataset.lost; }
  }

  function render(page) {
    rowsById = {};
    lostById = {};
    revokeById = {};
    liveAdded = {};
    liveCount = 0;
    loadedNewest = page.items.length ? page.items[0].timestamp : -Infinity;
    L.append(L.clear(tbody), page.items.map(makeRow));
    total = page.total;
    totalExact = page.total_exact !== false;
    showTotal();
    var next = document.getElementById("next-page");
    next.hidden = !page.next_cursor;
    if (page.next_cursor) {
      var params = new URLSearchParams(current);
      params.set("cursor", page.next_cursor);
      next.href = "?" + params;
    }
    var first = new URLSearchParams(current);
    first.delete("cursor");
    document.getElementById("first-page").href = "?" + first;
    document.getElementById("first-page").hidden = !current.has("cursor");
    // Cursors lead forward only; the page before is the history entry "Next" came from.
    var previous = previousPage();
    document.getElementById("previous-page").hidden = previous === null;
    if (previous !== null) { document.getElementById("previous-page").href = "?" + previous; }
    var how = document.body.dataset.live === "polling" ? "at each refresh" : "live";
    L.setText("live-note", (liveInserts() ? "new tasks appear " : "shown rows update ") + how);
    document.body.dataset.loaded = String(Date.now());
  }

  // Loads overlap (the socket's resync, a submitted filter, back/forward): only the
  // newest one's answer is shown, or a late answer to older filters would replace it.
  var newestLoad = 0;
  function load() {
    current = fromUrl();
    var query = new URLSearchParams(current);
    Object.keys(DEFAULTS).forEach(function (key) { if (!query.has(key)) { query.set(key, DEFAULTS[key]); } });
    L.showError(null);
    var mine = ++newestLoad;
    return L.api("/tasks", query).then(function (data) {
      if (mine === newestLoad) { render(data); }
    }, function (error) {
      if (mine === newestLoad) { L.showError(error); }
    });
  }
  var reload = L.throttle(load, 2000);

  function navigate(search, state) {
    window.history.pushState(state || null, "",
      window.location.pathname + (search ? "?" + search : ""));
    fillForm(fromUrl());
    load();
  }

  /* The query string of the page "Next page" was followed from (this entry's state),
     or null: opened directly, or filters changed since. */
  function previousPage() {
    var state = window.history.state;
    return state && typeof state.previous === "string" ? state.previous : null;
  }

  /* ---- live rows: the API's filters, evaluated on a pushed row ---- */
  function filtered() {  // any filter a task's change can make it match
    var any = false;
    current.forEach(function (value, key) {
      if (["sort", "limit", "cursor"].indexOf(key) < 0) { any = true; }
    });
    return any;
  }

  function liveInserts() {
    // A pushed row comes with no lost verdict (and a task just heard from is not lost).
    return !current.has("cursor") && (current.get("sort") || DEFAULTS.sort) === "-timestamp" &&
      !lostFilter(current);
  }

  function epoch(value) { return L.parseTime(value, {naive: "utc"}); }  // the API's reading

  function inRange(value, low, high, parse) {
    if (current.get(low) === null && current.get(high) === null) { return true; }
    if (value === null || value === undefined) { return false; }
    if (current.get(low) !== null && value < parse(current.get(low))) { return false; }
    return !(current.get(high) !== null && value > parse(current.get(high)));
  }

  /* name= as the API reads it: exact, or with * for any run of characters, any case. */
  function nameMatches(pattern, name) {
    if (pattern.indexOf("*") < 0) { return pattern === name; }
    var parts = pattern.toLowerCase().split("*").map(function (part) {
      return part.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
    });
    return typeof name === "string" &&
      new RegExp("^" + parts.join("[\\s\\S]*") + "$").test(name.toLowerCase());
  }

  function matches(task) {
    var states = current.getAll("state").map(function (s) { return s.toUpperCase(); });
    var expired = task.state === "REVOKED" && task.expired;
    if (states.length && states.indexOf(task.state) < 0 &&
        !(expired && states.indexOf("EXPIRED") >= 0)) { return false; }
    var exact = ["name", "worker", "queue", "root_id", "parent_id"].every(function (key) {
      return current.get(key) === null || (key === "name" ? nameMatches(current.get(key), task.name)
        : current.get(key) === task[key]);
    });
    if (!exact) { return false; }
    var q = current.get("q");
    if (q !== null) {
      var needle = q.toLowerCase();
      var found = ["args", "kwargs", "result", "exception"].some(function (key) {
        return task[key] && String(task[key]).toLowerCase().indexOf(needle) >= 0;
      });
      if (!found) { return false; }
    }
    return inRange(task.timestamp, "after", "before", epoch) &&
      inRange(task.received_at, "received_after", "received_before", epoch) &&
      inRange(task.started_at, "started_after", "started_before", epoch) &&
      inRange(task.eta, "eta_min", "eta_max", epoch) &&
      inRange(task.runtime, "runtime_min", "runtime_max", Number);
  }

  /* A pushed row not on screen is new to the list only if the task was first seen after
     the list loaded (newest first: `timestamp` is when it was first seen). An older task
     pushed because it changed (it finished, retried) was counted already, or now matches
     the filters for the first time: its place and the total come from the API then. */
  function onTasks(message) {
    var limit = Number(current.get("limit") || DEFAULTS.limit);
    var fresh = [];
    var resync = false;
    message.tasks.forEach(function (task) {
      if (rowsById[task.uuid]) {
        updateRow(task);
      } else if (liveInserts() && matches(task) && !liveAdded[task.uuid]) {
        if (task.timestamp > loadedNewest) {
          fresh.push(task);
        } else if (filtered()) {
          resync = true;
        }
      }
    });
    // The API again: rows were left out, an older task may now match, or the memory of
    // live additions grew large (a page open for hours under load).
    if ((message.truncated || resync || liveCount > LIVE_ADDED_MAX) && liveInserts()) {
      reload();
      return;
    }
    fresh.sort(function (a, b) { return a.timestamp - b.timestamp; });
    total += fresh.length;
    fresh.forEach(function (task) { liveAdded[task.uuid] = true; });
    liveCount += fresh.length;
    // Under load only the newest page-full can stay on screen: build only those, each
    // in its place (an event delayed in transit can make a task arrive after a newer one).
    fresh.slice(-limit).forEach(function (task) {
      var before = tbody.firstChild;
      while (before && Number(before.dataset.timestamp) > task.timestamp) {
        before = before.nextSibling;
      }
      tbody.insertBefore(makeRow(task), before);
    });
    while (tbody.rows.length > limit) {
      var last = tbody.rows[tbody.rows.length - 1];
      delete rowsById[last.dataset.uuid];
      delete lostById[last.dataset.uuid];
      delete revokeById[last.dataset.uuid];
      tbody.removeChild(last);
    }
    if (fresh.length) { showTotal(); }
  }

  function apply() {
    var params;
    try {
      params = fromForm();
    } catch (error) {
      L.showError(error);
      if (error.field) { error.field.focus(); }
      return;
    }
    navigate(String(params));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    apply();
  });
  /* Quick ranges: seen in the last 15 m, 1 h, 24 h, 7 d (from now, to the second). */
  Array.prototype.forEach.call(form.querySelectorAll("button[data-range]"), function (button) {
    button.addEventListener("click", function () {
      var since = Math.floor(Date.now() / 1000) - Number(button.dataset.range);
      form.elements.after.value = L.fmtInput(since);
      form.elements.before.value = "";
      apply();
    });
  });
  document.getElementById("reset").addEventListener("click", function () { navigate(""); });
  document.getElementById("next-page").addEventListener("click", function (event) {
    event.preventDefault();
    navigate(this.getAttribute("href").slice(1), {previous: String(current)});
  });
  document.getElementById("first-page").addEventListener("click", function (event) {
    event.preventDefault();
    navigate(this.getAttribute("href").slice(1));
  });
  document.getElementById("previous-page").addEventListener("click", function (event) {
    event.preventDefault();
    window.history.back();  // that entry is the page before, with its own "previous"
  });
  window.addEventListener("popstate", function () { fillForm(fromUrl()); load(); });

  fillForm(fromUrl());
  load();
  L.live(["tasks"], {tasks: onTasks}, load);
}());
