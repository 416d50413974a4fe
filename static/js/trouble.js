/*
 * Trouble: lost tasks (their worker died) and stuck ones (open far longer than usual), from
 * /api/v1/trouble, with one-click Revoke and Retry for operators. Reloads every 10 s and,
 * throttled, when the "overview" room says some task changed state. What an action did stays
 * in the row (while the task is listed) and in the page's action log, whose task states are
 * followed until they are final. Task data is shown as text only.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var root = document.getElementById("trouble");
  var canControl = root.dataset.canControl === "true";
  var FINAL = L.FINAL_STATES;
  // uuid -> what a listed row keeps across the page's refreshes: `task` as last listed,
  // its `result` box, and its `buttons` node with the `key` of what they read.
  var kept = {};
  var logged = [];   // {uuid, item, state}: tasks the action log follows

  // controls.js comes after this script (the confirm dialog's partial): look it up on use.
  function controls() { return window.LookoutControls; }

  function secs(value) { return value === null || value === undefined ? "–" : value + " s"; }

  function showRules(s, judged, since) {
    L.setText("rules", "Lost: its worker went offline, restarted or was not heard for " +
      secs(s.lost_after) + " while a collector listened. Stuck: open over " + s.stuck_factor +
      " × its name's p95 runtime (at least " + secs(s.stuck_min) + "; " +
      secs(s.stuck_default) + " with no history), worker alive.");
    var note = document.getElementById("not-listening");
    note.hidden = judged !== false;
    if (judged === false && since !== null && since !== undefined) {
      // Just started (or reconnected): listening, but not yet for long enough.
      note.textContent = "Collectors have been hearing the broker for " +
        secs(Math.max(0, Math.round(Date.now() / 1000 - since))) + " only: a silent " +
        "worker's tasks are called lost once they have listened for " + secs(s.lost_after) +
        " (until then the silence may be Lookout's, not the worker's).";
    } else if (judged === false) {
      note.textContent = "No collector is hearing the broker now: a silent worker's tasks " +
        "are not called lost until one has for " + secs(s.lost_after) +
        " (the silence may be Lookout's, not the worker's). See /healthz.";
    }
  }

  function openFor(t) {
    var since = t.started_at || t.received_at || t.timestamp;
    return since ? L.fmtDuration(Math.max(0, Date.now() / 1000 - since)) : "–";
  }

  function workerLink(name) {
    return name ? L.el("a", {href: "/workers/" + encodeURIComponent(name)}, name) : "–";
  }

  function taskLink(uuid, text, testid) {
    return L.el("a", {href: L.taskUrl(uuid), className: "mono", "data-testid": testid || null},
      text || uuid);
  }

  /* ---- actions ---- */
  function showResult(out, res, t, action) {
    L.clear(out);
    out.dataset.status = String(res.status);
    var data = res.data || {};
    if (!res.status || res.status >= 400) {
      L.append(out, L.el("p", {className: "error", role: "alert", "data-testid": "action-error"},
        (data.error && data.error.message) || ("HTTP " + res.status)));
      return;
    }
    if (action === "retry" && data.task_id) {
      L.append(out, L.el("p", {className: "control-done"}, ["Sent as task ",
        taskLink(data.task_id, null, "new-task-link")]));
      // A dead worker's queue may have no consumer left: the retry then waits there (the
      // task page said so and this page did not: a trial).
      L.append(out, controls().warningLines(data.warnings));
    } else {
      var replies = (data.replies || []).length;
      L.append(out, L.el("p", {className: "control-done"}, (t.lost
        ? "Revoke sent to the live workers (" + replies + " repl" + (replies === 1 ? "y" : "ies") +
          "); its own worker is gone. No lost-tasks alert counts it now."
        : "Revoke sent (" + replies + " worker repl" + (replies === 1 ? "y" : "ies") + ").")));
    }
    addToLog(t, action, data);
    refreshSoon();
  }

  function act(t, action, button) {
    var id = encodeURIComponent(t.uuid);
    var terminate = action === "revoke" && terminates(t);
    var title = action === "retry" ? "Retry task" : terminate ? "Terminate task" : "Revoke task";
    var lines = action === "retry"
      ? ["Send task " + t.uuid + " (" + (t.name || "unknown name") + ") again, with the same " +
         "name, arguments and queue?", "Only arguments that can be rebuilt exactly from the " +
         "events are sent; otherwise the server says why."]
      : [(terminate ? "Terminate" : "Revoke") + " task " + t.uuid + " (" +
         (t.name || "unknown name") + ")?", revokeMeans(t)];
    if (action === "retry" && t.revoke_requested_at) {  // someone meant it not to run
      lines.push("Lookout sent a revoke of this task at " + L.fmtTime(t.revoke_requested_at) +
        ": a retry runs it anyway.");
    }
    var path = "/tasks/" + id + "/" + action;
    var payload = terminate ? {terminate: true} : {};
    var out = kept[t.uuid].result;  // the row's box, even if a refresh drops the row meanwhile
    controls().confirmAction(title, lines).then(function (yes) {
      if (!yes) { return; }
      button.disabled = true;
      controls().post(path, payload)
        .then(function (res) { showResult(out, res, t, action); },
              function (error) { showResult(out, {status: 0, data: {error: {message: String(error)}}}, t, action); })
        .then(function () { button.disabled = false; });
    });
  }

  function actionButton(t, action, label, title) {
    var button = L.el("button", {type: "button", className: "row-button", title: title,
      "data-testid": action, "data-action": action}, label);
    // The task as last listed, not as when the button was made (buttons outlive renders).
    button.addEventListener("click", function () { act(kept[t.uuid] ? kept[t.uuid].task : t, action, button); });
    return button;
  }

  /* A running task on a live worker is stopped only by terminating it (a plain revoke lets
     it run to its end): the button says Terminate, as on the task's own page. A lost task's
     worker is gone, so nothing can be terminated: its revoke only makes the live workers
     discard it should the broker deliver it again (acks_late, Redis's visibility timeout),
     and tells Lookout it was handled (lost-tasks alerts stop counting it). */
  function terminates(t) { return t.state === "STARTED" && !t.lost; }

  function revokeMeans(t) {
    if (t.lost) {
      return "Its worker is gone: nothing runs it now, and nothing can be terminated. The " +
        "live workers are told to discard it if the broker delivers it again, and lost-tasks " +
        "alerts stop counting it.";
    }
    return terminates(t) ? "It is running: its worker process is sent SIGTERM."
      : "A task not yet started will never run.";
  }

  /* A row's buttons are kept across the page's refreshes while they would read the same:
     rebuilt at every refresh, a click whose press and release straddled one was lost
     (seen in a full test run on a loaded machine). */
  function actions(t, kind) {
    var row = kept[t.uuid] = kept[t.uuid] || {result: L.el("div", {
      className: "control-result", "data-testid": "action-result", "aria-live": "polite"})};
    row.task = t;
    var key = [kind, terminates(t), !!t.lost, !!t.redelivery, !!t.retried_as].join("|");
    if (row.buttons && row.key === key) { return row.buttons; }
    var buttons = [actionButton(t, "revoke", terminates(t) ? "Terminate" : "Revoke",
      revokeMeans(t))];
    // A stuck task is alive: revoke it first, then retry it from its page. A lost one that
    // never started comes back from the broker by itself: a retry would run it twice.
    if (kind === "lost" && !t.redelivery && !t.retried_as) {  // retried: once is enough
      buttons.push(actionButton(t, "retry", "Retry", "Send it again with the same arguments"));
    }
    row.key = key;
    row.buttons = L.el("div", {className: "row-actions"}, buttons.concat([row.result]));
    return row.buttons;
  }

  /* ---- the action log: what was done here, and where those tasks are now ---- */
  function addToLog(t, action, data) {
    var follow = action === "retry" && data.task_id ? data.task_id : t.uuid;
    var badge = L.el("span", {"data-testid": "log-state"},
      L.stateBadge(action === "retry" ? "PENDING" : t.state));
    var parts = [L.el("span", {className: "muted"}, L.fmtTime(Date.now() / 1000)), " ",
      action === "retry" ? "Retried " : terminates(t) ? "Terminated " : "Revoked ",
      L.el("span", {}, t.name || "(unknown)"), " ",
      taskLink(t.uuid, String(t.uuid).slice(0, 8))];
    if (action === "retry") { parts.push(" as ", taskLink(follow, String(follow).slice(0, 8))); }
    parts.push(" ", badge);
    var item = L.el("li", {"data-uuid": t.uuid, "data-action": action, "data-testid": "log-entry",
      "data-state": action === "retry" ? "" : t.state}, parts);
    var list = document.getElementById("action-log");
    list.insertBefore(item, list.firstChild);
    document.getElementById("actions-panel").hidden = false;
    logged.push({uuid: follow, item: item, badge: badge, state: action === "retry" ? null : t.state});
  }

  function followLog() {
    return Promise.all(logged.filter(function (entry) {
      return FINAL.indexOf(entry.state) < 0;
    }).slice(-20).map(function (entry) {
      return L.api("/tasks/" + encodeURIComponent(entry.uuid)).then(function (task) {
        entry.state = task.state;
        entry.item.dataset.state = task.state;
        L.append(L.clear(entry.badge), L.stateBadge(task.state));
      }).catch(function () { return null; });  // not recorded yet: next time
    }));
  }

  /* A lost task stays lost: what was done about it, from Lookout (listed after the rest). */
  function handledNote(t) {
    if (!t.handled) { return null; }
    var done = [];
    if (t.retried_as) { done.push("retried from Lookout as ", taskLink(t.retried_as,
      String(t.retried_as).slice(0, 8))); }
    if (t.revoke_requested_at) { done.push((t.retried_as ? ", " : "") + "revoked from Lookout at " +
      L.fmtTime(t.revoke_requested_at)); }
    return L.el("span", {className: "muted", "data-testid": "handled"},
      [" · "].concat(done, [": alerts no longer count it"]));
  }

  /* ---- the two tables ---- */
  function row(kind, t) {
    var cells = [
      L.taskBadge(t),  // with "revoke pending" when Lookout revoked a task now lost
      L.el("a", {href: L.taskUrl(t.uuid), className: "task-name"}, t.name || "(unknown)"),
      taskLink(t.uuid, String(t.uuid).slice(0, 8)),
      workerLink(t.worker),
      L.el("span", {"data-testid": "open-for"}, openFor(t)),
      L.el("span", {className: "reason-text", "data-testid": "reason"}, [t[kind] || "",
        kind === "lost" ? handledNote(t) : null])
    ];
    if (canControl) { cells.push(actions(t, kind)); }
    // Handled from Lookout (revoked or retried): dimmed, so the lost ones nobody has dealt
    // with stand out; they looked the same (an on-call trial).
    var handled = kind === "lost" && !!t.handled;  // as the server judged it
    var redelivery = kind === "lost" && !!t.redelivery;  // the broker gives it back
    return L.el("tr", {"data-uuid": t.uuid, "data-state": t.state, "data-testid": kind + "-row",
                       className: handled || redelivery ? "row-handled" : null,
                       "data-handled": handled ? "true" : null,
                       "data-redelivery": redelivery ? "true" : null},
      cells.map(function (cell) { return L.el("td", {}, cell); }));
  }

  function showTable(kind, items, total) {
    var body = L.clear(document.getElementById(kind + "-body"));
    items.forEach(function (t) { body.appendChild(row(kind, t)); });
    document.getElementById(kind + "-table").hidden = !items.length;
    document.getElementById(kind + "-empty").hidden = items.length > 0;
    L.setText(kind + "-total", total);
    var more = document.getElementById(kind + "-more");
    more.hidden = total <= items.length;
    L.setText(more, "(showing " + items.length + ")");
  }

  function render(data) {
    showRules(data.settings || {}, data.silence_judged, data.listening_since);
    showTable("lost", data.lost || [], data.lost_total);
    L.setText("lost-handled", data.lost_handled ? "(" + data.lost_handled + " handled" +
      (data.lost_total > (data.lost || []).length ? " of those shown" : "") + ")" : "");
    showTable("stuck", data.stuck || [], data.stuck_total);
    var listed = {};
    (data.lost || []).concat(data.stuck || []).forEach(function (t) { listed[t.uuid] = true; });
    Object.keys(kept).forEach(function (uuid) { if (!listed[uuid]) { delete kept[uuid]; } });
    L.setText("examined", data.examined + " open task(s) examined for stuck ones; refreshed " +
      L.fmtTime(Date.now() / 1000) + ".");
  }

  var loading = null, again = false;
  function refresh() {
    if (loading) { again = true; return loading; }  // once more after this one
    loading = Promise.all([L.api("/trouble", {limit: root.dataset.limit || "200"}), followLog()])
      .then(function (answers) {
        render(answers[0]);
        L.showError(null);
        root.dataset.loaded = String(Date.now());
      })
      .catch(L.showError)
      .then(function () {
        loading = null;
        if (again) { again = false; refresh(); }
      });
    return loading;
  }
  var refreshSoon = L.throttle(refresh, 2000);

  refresh();
  L.live(["overview"], {overview: function (message) {
    // Pushed every tick even when idle: reload only when some task changed state.
    if (message && message.counts && Object.keys(message.counts).length) { refreshSoon(); }
  }}, refresh);
  setInterval(function () { if (!document.hidden) { refresh(); } },
    Number(root.dataset.refreshMs) || 10000);
}());
