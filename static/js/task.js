/*
 * Task detail: every field, the event timeline with gaps, exception and traceback, retry
 * history, parent/root/children links. Joins the task's own room; each pushed change
 * re-reads /api/v1/tasks/<id> (which carries the timeline), at most twice a second.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var root = document.getElementById("task");
  var taskId = root.dataset.taskId;
  var FINAL = L.FINAL_STATES;
  var OPEN = ["RECEIVED", "STARTED"];  // the states a task can be lost or stuck in
  var TIMES = ["timestamp", "sent_at", "received_at", "started_at", "succeeded_at", "failed_at",
    "retried_at", "revoked_at", "rejected_at", "updated_at", "eta", "expires",
    "revoke_requested_at"];
  // Shown elsewhere: the state badge says expired and revoke pending.
  var SKIP = ["timeline", "children", "retry_history", "traceback", "exception", "uuid",
    "name", "state", "state_ts", "parent_id", "root_id", "retry_of", "retried_as", "lost",
    "expired", "revoke_pending"];
  // Where an SRE looks first, then the lifecycle in the order it happens; fields the API
  // adds later still show, after these.
  var ORDER = ["worker", "queue", "routing_key", "exchange", "args", "kwargs", "result",
    "retries", "runtime", "queue_wait", "eta", "expires", "timestamp", "sent_at",
    "received_at", "started_at", "retried_at", "succeeded_at", "failed_at", "revoked_at",
    "revoke_requested_at", "rejected_at", "updated_at"];
  // Shown only when set: an empty failed_at on a success is noise.
  var OPTIONAL = ["exchange", "eta", "expires", "sent_at", "retried_at", "succeeded_at",
    "failed_at", "revoked_at", "revoke_requested_at", "rejected_at"];
  var SCHEDULING = ["eta", "expires"];  // about the attempt to come, while there is one
  var task = null;

  function value(key, raw) {
    if (raw === null || raw === undefined || raw === "") { return "–"; }
    if (TIMES.indexOf(key) >= 0) { return L.fmtTime(raw); }
    if (key === "runtime" || key === "queue_wait") { return L.fmtDuration(raw); }
    if (key === "worker") { return L.el("a", {href: "/workers/" + encodeURIComponent(raw)}, raw); }
    if (typeof raw === "object") { return JSON.stringify(raw); }
    return String(raw);
  }

  function field(list, label, content, cls) {
    L.append(list, [L.el("dt", {}, label), L.el("dd", {className: cls || null}, content)]);
  }

  function ago(epoch) { return L.fmtDuration(Math.max(0, Date.now() / 1000 - epoch)); }

  /* Beside the badge: how long it has run. A lost task's STARTED is only the last thing
     its worker said before it went: "running for" read as alive (seen in a trial). */
  function running() {
    if (!task || OPEN.indexOf(task.state) < 0) { return ""; }
    if (task.lost) {
      var since = task.started_at ? "started " + ago(task.started_at)
        : task.received_at ? "received " + ago(task.received_at) : "";
      return " (worker lost" + (since ? "; " + since + " ago" : "") + ")";
    }
    if (task.state !== "STARTED" || !task.started_at) { return ""; }
    return " (running for " + ago(task.started_at) + ")";
  }

  /* A finished task's eta and expires are those of its last attempt (Celery sends eta
     again with every retry), now past: a bare "eta" read as still scheduled (a trial). */
  function label(key) {
    if (SCHEDULING.indexOf(key) < 0 || FINAL.indexOf(task.state) < 0) { return key; }
    var ended = " The task has ended (" + task.state + "): ";
    return L.el("span", {"data-testid": key + "-label", title: key === "eta"
      ? "When its last attempt was scheduled to run." + ended + "nothing is scheduled now."
      : "When its last attempt would have expired." + ended + "this no longer applies."},
      key + " (last attempt)");
  }

  function showFields() {
    var list = L.clear(document.getElementById("fields"));
    field(list, "state", [L.taskBadge(task), L.el("span", {id: "running"}, running())]);
    var rest = Object.keys(task).filter(function (key) { return ORDER.indexOf(key) < 0; });
    ORDER.concat(rest).forEach(function (key) {
      if (SKIP.indexOf(key) >= 0 || !(key in task)) { return; }
      if (OPTIONAL.indexOf(key) >= 0 && (task[key] === null || task[key] === "")) { return; }
      var isText = ["args", "kwargs", "result"].indexOf(key) >= 0;
      field(list, label(key), value(key, task[key]), isText ? "mono pre" : null);
    });
  }

  function eventDetails(info) {
    return Object.keys(info || {}).filter(function (key) { return key !== "traceback"; })
      .map(function (key) {
        var v = info[key];
        if (key === "runtime" && typeof v === "number") { return "runtime=" + L.fmtDuration(v); }
        if (key === "eta" && typeof v === "number") { return "eta=" + L.fmtTime(v); }
        return key + "=" + (typeof v === "object" ? JSON.stringify(v) : String(v));
      }).join(", ");
  }

  function showTimeline() {
    L.append(L.clear(document.getElementById("timeline-body")), task.timeline.map(function (e) {
      return L.el("tr", {"data-event": e.type}, [
        L.el("td", {}, e.type), L.el("td", {}, L.fmtTime(e.timestamp)),
        L.el("td", {}, e.gap === null ? "" : "+" + L.fmtDuration(e.gap)),
        L.el("td", {}, e.hostname), L.el("td", {className: "mono clip"}, eventDetails(e.info))]);
    }));
  }

  function showError() {
    var panel = document.getElementById("error-panel");
    panel.hidden = !task.exception && !task.traceback;
    // Without a task-failed the exception is the last retry's: say so, and keep its
    // traceback folded once the task went on to succeed.
    var failed = task.failed_at !== null && task.failed_at !== undefined;
    L.setText("error-title", failed ? "Exception" : "Exception of the last retry");
    var details = document.getElementById("traceback-details");
    details.open = failed || task.state !== "SUCCESS";
    details.hidden = !task.traceback;  // an empty open block read as a lost traceback
    L.setText("exception", task.exception || "");
    L.setText("traceback", task.traceback || "");
    var retries = task.retry_history || [];
    document.getElementById("retries-panel").hidden = !retries.length;
    L.append(L.clear(document.getElementById("retries-body")), retries.map(function (r) {
      return L.el("tr", {}, [L.el("td", {}, L.fmtTime(r.timestamp)), L.el("td", {}, r.hostname),
        L.el("td", {className: "mono"}, r.exception || "")]);
    }));
  }

  function link(id) {
    return id ? L.el("a", {href: L.taskUrl(id), className: "mono"}, id) : "–";
  }

  function showFamily() {
    var family = L.clear(document.getElementById("family"));
    field(family, "parent", link(task.parent_id));
    field(family, "root", link(task.root_id));
    field(family, "workflow", task.root_id ? [L.el("a", {href: "/workflows/" +
      encodeURIComponent(task.root_id), "data-testid": "workflow-link"}, "whole workflow"), " · ",
      L.el("a", {href: "/tasks?" + new URLSearchParams({root_id: task.root_id})},
        "all tasks of this workflow")] : "–");
    // Retries sent from Lookout (the events cannot link them; Lookout keeps the link).
    if (task.retry_of) { field(family, "retry of", link(task.retry_of)); }
    if (task.retried_as && task.retried_as.length) {
      field(family, "retried as", task.retried_as.map(function (r) {
        return L.el("span", {className: "retried-as"}, [link(r.task_uuid),
          " by " + (r.created_by || "?") + " at " + L.fmtTime(r.created_at), L.el("br")]);
      }));
    }
    field(family, "children", task.children.length ? L.el("a", {href: "/tasks?" +
      new URLSearchParams({parent_id: task.uuid})}, task.children.length + " (as a list)") : "none");
    document.getElementById("children-table").hidden = !task.children.length;
    L.append(L.clear(document.getElementById("children-body")), task.children.map(function (c) {
      return L.el("tr", {"data-uuid": c.uuid}, [L.el("td", {}, L.stateBadge(c.state)),
        L.el("td", {}, L.el("a", {href: L.taskUrl(c.uuid)}, c.name || "(unknown)")),
        L.el("td", {}, link(c.uuid)), L.el("td", {}, L.fmtDuration(c.runtime))]);
    }));
  }

  function showControls() {
    // A finished task cannot be revoked or terminated (the API would answer 409).
    var finished = FINAL.indexOf(task.state) >= 0;
    ["revoke-button", "terminate-button"].forEach(function (id) {
      var button = document.getElementById(id);
      if (!button) { return; }  // viewers get no controls at all
      button.disabled = finished;
      button.title = finished ? "The task has already finished (" + task.state + ")." : "";
    });
    // Revoke does not stop a task that is running (Celery only skips it when it would
    // start): a trial clicked Revoke on a running task and expected it to stop.
    var revoke = document.getElementById("revoke-form");
    if (revoke && !finished) {
      // A lost task's worker is gone: it runs nowhere, and nothing is there to terminate.
      var running = task.state === "STARTED" && !task.lost;
      revoke.dataset.confirm = "Revoke task " + task.uuid + "? " + (task.lost
        ? "Its worker is gone: nothing runs it now. Revoke tells the live workers to " +
          "discard it if the broker delivers it again."
        : running
        ? "It is running now: revoke does not stop it, it only keeps it from running " +
          "again (a retry or a redelivery). To stop it now, use Terminate."
        : "A task not yet started will never run.");
      document.getElementById("revoke-button").title = running
        ? "Running: Revoke will not stop it; Terminate does." : "";
      // Left enabled: "lost" may only mean unreachable, and a worker that is alive after
      // all still obeys. The title says not to expect it.
      var terminate = document.getElementById("terminate-button");
      if (terminate && task.lost) {
        terminate.title = "Its worker is gone: Terminate reaches the task only if that " +
          "worker is in fact still alive. Revoke or Retry deal with a lost task.";
      }
    }
    // Retry is the other way round: a finished task is sent again, and a lost one (its
    // worker died with it: no event will ever finish it).
    var retry = document.getElementById("retry-button");
    if (retry) {
      var again = (task.retried_as || [])[0];  // sent again already: the server refuses
      var retriable = !again && (finished || (!!task.lost && !task.redelivery));
      retry.disabled = !retriable;
      retry.title = retriable ? "" : again
        ? "Already sent again from Lookout as " + again.task_uuid + ": retry that one."
        : task.redelivery
        ? "Its worker never started it: the broker delivers it again by itself, and a retry " +
          "would run it twice."
        : "Only a finished or lost task can be retried (revoke it first).";
      // A worker that did not know the task failed it at once (Celery's NotRegistered):
      // sent again, it fails the same way unless a worker has had the task deployed
      // since. Left enabled (that is what a deploy fixes), but said (a trial).
      var form = document.getElementById("retry-form");
      if (form.dataset.confirmDefault === undefined) { form.dataset.confirmDefault = form.dataset.confirm; }
      if (retriable && /^\s*(celery\.exceptions\.)?NotRegistered\b/.test(task.exception || "")) {
        retry.title = "No worker had " + (task.name || "this task") + " registered when it " +
          "ran: a retry fails the same way unless a worker has it now.";
        form.dataset.confirm = retry.title + " " + form.dataset.confirmDefault;
      } else {
        form.dataset.confirm = form.dataset.confirmDefault;
      }
    }
  }

  /* Lost (from the task itself) and stuck (from /trouble/tasks/<id>, open tasks only). */
  function banner(id, label, reason) {
    var node = L.clear(document.getElementById(id));
    node.hidden = !reason;
    if (reason) { L.append(node, [L.el("strong", {}, label), " " + reason]); }
  }

  var troubleAsked = 0;
  function showTrouble() {
    banner("task-lost", "Lost:", !task.lost ? null : task.redelivery ? task.lost + "." :
      task.lost + ". No event will finish it; retry sends it again.");
    root.dataset.lost = task.lost ? "true" : "false";
    var asked = ++troubleAsked;
    if (OPEN.indexOf(task.state) < 0 || task.lost) {
      banner("task-stuck", "Stuck:", null);
      root.dataset.stuck = "false";
      return;
    }
    L.api("/trouble/tasks/" + encodeURIComponent(taskId)).then(function (verdict) {
      if (asked !== troubleAsked) { return; }  // a newer reload asked again
      banner("task-stuck", "Stuck:", verdict.stuck);
      root.dataset.stuck = verdict.stuck ? "true" : "false";
    }).catch(function () { return null; });  // the task itself loaded: not worth an error
  }

  function render(data) {
    task = data;
    document.getElementById("task-missing").hidden = true;
    L.setText("task-name", task.name || "(unknown task)");
    var shown = task.state === "REVOKED" && task.expired ? "EXPIRED" : task.state;
    var badge = document.getElementById("task-state");
    badge.className = "badge state-" + String(shown).replace(/[^A-Z]/g, "");
    badge.textContent = shown + (task.revoke_pending ? " · revoke pending" : "");
    document.title = L.revealBidi(task.name || "Task") + " · Lookout";
    root.dataset.state = task.state;
    root.dataset.revokePending = task.revoke_pending ? "true" : "false";
    showControls();
    showTrouble();
    showFields();
    showTimeline();
    showError();
    showFamily();
  }

  function load() {
    return L.api("/tasks/" + encodeURIComponent(taskId)).then(function (data) {
      L.showError(null);
      render(data);
    }).catch(function (error) {
      if (error.status === 404) { document.getElementById("task-missing").hidden = false; return; }
      L.showError(error);
    });
  }
  var reload = L.throttle(load, 500);

  load();
  L.live(["task:" + taskId], {task: reload}, load);
  document.addEventListener("lookout:control-done", reload);  // e.g. a retry was sent
  // Running time ticks locally; a slow poll backs up the push for unfinished tasks.
  setInterval(function () {
    if (task && OPEN.indexOf(task.state) >= 0) { L.setText("running", running()); }
  }, 1000);
  setInterval(function () { if (!task || FINAL.indexOf(task.state) < 0) { reload(); } }, 5000);
}());
