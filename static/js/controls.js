/*
 * Control forms: confirm, send, show every worker's reply.
 *
 * A form marked data-control="<API path>" is sent as JSON to that path after the user
 * confirms in the page's <dialog>; the server answers with per-worker replies, shown in
 * the form's .control-result. A form marked data-bulk runs the bulk revoke flow: dry run
 * (count and sample shown in the dialog), then the action, then progress polled from its
 * audit record; data-bulk-retry the bulk retry flow (dry run listing what cannot be
 * rebuilt, then the action). Every POST carries the CSRF token from <meta name="csrf-token">. Values
 * from the server are put in the page as text only.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var dialog = document.getElementById("confirm-dialog");
  var apiRoot = (L && L.config.api) || "/api/v1";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  /* Send JSON; resolves {status, data} for any HTTP answer, rejects only on network errors. */
  function send(method, path, payload) {
    return fetch(apiRoot + path, {
      method: method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRF-Token": csrfToken()},
      body: payload === undefined ? undefined : JSON.stringify(payload)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return {status: response.status, data: data};
      });
    });
  }

  function post(path, payload) { return send("POST", path, payload); }

  function formPayload(form) {
    var payload = {};
    Array.prototype.forEach.call(form.elements, function (input) {
      if (!input.name || input.disabled) { return; }
      if (input.type === "checkbox") { payload[input.name] = input.checked; return; }
      var value = input.value.trim();
      if (value === "") { return; }
      if (input.type === "number") { value = Number(value); }
      if (input.dataset.list !== undefined) {
        value = value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      }
      var target = payload;
      if (input.dataset.group) {
        payload[input.dataset.group] = payload[input.dataset.group] || {};
        target = payload[input.dataset.group];
      }
      target[input.name] = value;
    });
    return payload;
  }

  /* Show the dialog with `lines`; resolves true on confirm, false on cancel. */
  function confirmAction(title, lines) {
    return new Promise(function (resolve) {
      if (!dialog || typeof dialog.showModal !== "function") {
        resolve(window.confirm(title + "\n" + lines.join("\n")));
        return;
      }
      L.setText(dialog.querySelector(".confirm-title"), title);
      var body = L.clear(dialog.querySelector(".confirm-body"));
      lines.forEach(function (line) {
        L.append(body, typeof line === "string" ? L.el("p", {}, line) : line);
      });
      // Escape closes a modal <dialog> by itself: that is a "no" too, and its listeners
      // must go with it, or the next dialog's OK also confirmed this abandoned action.
      function done(answer) {
        dialog.querySelector(".confirm-ok").removeEventListener("click", ok);
        dialog.querySelector(".confirm-cancel").removeEventListener("click", cancel);
        dialog.removeEventListener("close", cancel);
        if (dialog.open) { dialog.close(); }
        resolve(answer);
      }
      function ok() { done(true); }
      function cancel() { done(false); }
      dialog.querySelector(".confirm-ok").addEventListener("click", ok);
      dialog.querySelector(".confirm-cancel").addEventListener("click", cancel);
      dialog.addEventListener("close", cancel);
      dialog.showModal();
    });
  }

  function repliesTable(replies) {
    if (!replies || !replies.length) {
      return L.el("p", {className: "muted"}, "No worker replied.");
    }
    var rows = replies.map(function (r) {
      var text = r.reply === null || r.reply === undefined ? (r.error || "no reply")
        : JSON.stringify(r.reply);
      return L.el("tr", {"data-worker": r.worker}, [
        L.el("td", {className: "mono"}, r.worker),
        L.el("td", {}, r.ok ? "ok" : "error"),
        L.el("td", {className: "mono"}, text)]);
    });
    return L.el("table", {className: "data replies"}, [
      L.el("thead", {}, L.el("tr", {}, [L.el("th", {}, "Worker"), L.el("th", {}, "Result"),
                                        L.el("th", {}, "Reply")])),
      L.el("tbody", {}, rows)]);
  }

  function show(form, status, data) {
    var out = L.clear(form.querySelector(".control-result") || form);
    out.dataset.status = String(status);
    if (status >= 400) {
      L.append(out, L.el("p", {className: "error", role: "alert"},
        (data.error && data.error.message) || ("HTTP " + status)));
      return;
    }
    // Pages re-read what the control changed (the task page shows "retried as").
    form.dispatchEvent(new CustomEvent("lookout:control-done", {bubbles: true, detail: data}));
    if (data.task_id) {  // a control that sends a task (retry): link to the new one
      L.append(out, L.el("p", {className: "control-done"}, ["Sent as task ",
        L.el("a", {href: L.taskUrl(data.task_id), className: "mono",
          "data-testid": "new-task-link"}, data.task_id)]));
      L.append(out, warningLines(data.warnings));
      return;
    }
    L.append(out, L.el("p", {className: "control-done"}, "Sent (" + commandText(data) + ")."));
    L.append(out, repliesTable(data.replies));
  }

  /* Why what was sent may not run (a retry into a queue nobody consumes). */
  function warningLines(warnings) {
    return (warnings || []).map(function (text) {
      return L.el("p", {className: "notice", role: "alert", "data-testid": "control-warning"},
        "Warning: " + text + ".");
    });
  }

  // "revoke", or "revoke, terminate with SIGKILL" when the running task is killed too.
  function commandText(data) {
    var params = data.parameters || {};
    if (data.command === "revoke" && params.terminate) {
      return "revoke, terminate with " + (params.signal || "SIGTERM");
    }
    return data.command || "done";
  }

  function describe(form, payload) {
    var first = form.dataset.confirm || "Send this command?";
    if (form.dataset.workers !== undefined) {  // says which workers, as the body does
      var named = payload.destination || [];
      first += " on " + (named.length ? named.join(", ") : "every worker") + "?";
      if (form.id === "rate-limit-form" && !payload.rate_limit) {
        // Celery keeps the old pace for what a worker already holds back (an on-call
        // trial saw tasks trickle out for minutes after the limit was gone).
        first += " No rate given: the task's rate limit is removed. Tasks a worker already " +
          "holds back keep the old pace until they run; restarting that worker releases " +
          "them at once (not yet acknowledged, they go back to the broker).";
      } else if (form.id === "rate-limit-form") {
        // A worker keeps the tasks a rate limit holds back among its prefetched ones: a
        // low limit starved every other task of the queue (an on-call trial).
        first += " The worker holds back the task's messages it has taken: with a low " +
          "limit they fill its prefetch, and other tasks of the same queues wait behind them.";
      }
    }
    var lines = [first];
    Object.keys(payload).forEach(function (key) {
      lines.push(key + ": " + JSON.stringify(payload[key]));
    });
    return lines;
  }

  function submitControl(form) {
    var payload = formPayload(form);
    if (form.dataset.terminate !== undefined) { payload.terminate = true; }
    confirmAction(form.dataset.title || "Confirm", describe(form, payload)).then(function (yes) {
      if (!yes) { return; }
      post(form.dataset.control, payload).then(function (res) { show(form, res.status, res.data); })
        .catch(function (error) { show(form, 0, {error: {message: String(error)}}); });
    });
  }

  /* ---- bulk revoke: dry run, confirm, act, poll progress ---- */
  function submitBulk(form) {
    var payload = formPayload(form);
    var out = L.clear(form.querySelector(".control-result"));
    payload.dry_run = true;
    post("/tasks/revoke", payload).then(function (res) {
      if (res.status >= 400) { show(form, res.status, res.data); return; }
      var d = res.data;
      var sample = L.el("ul", {className: "sample"}, (d.sample || []).map(function (t) {
        return L.el("li", {className: "mono"}, [t.uuid, " ", t.name || "", " ", t.state]);
      }));
      var lines = [d.count + " unfinished task(s) match (at most " + d.cap + " per bulk revoke).",
                   "Sample:", sample];
      L.append(out, L.el("p", {className: "dry-run", "data-count": d.count},
                         "Dry run: " + d.count + " task(s) match."));
      if (d.over_cap || !d.count) { return; }
      confirmAction("Revoke " + d.count + " task(s)?", lines).then(function (yes) {
        if (!yes) { return; }
        payload.dry_run = false;
        payload.expected_count = d.count;  // refused if the set changed since the dry run
        post("/tasks/revoke", payload).then(function (act) {
          if (act.status >= 400) { show(form, act.status, act.data); return; }
          if (act.status === 200) { show(form, 200, {command: "revoke", replies: []}); return; }
          poll(form, act.data.audit_id, act.data.count);
        });
      });
    });
  }

  /* ---- bulk retry: dry run (what can and cannot be rebuilt), confirm, act ---- */
  function submitBulkRetry(form) {
    var payload = formPayload(form);
    var out = L.clear(form.querySelector(".control-result"));
    payload.dry_run = true;
    post("/tasks/retry", payload).then(function (res) {
      if (res.status >= 400) { show(form, res.status, res.data); return; }
      var d = res.data;
      var refused = L.el("ul", {className: "sample"}, (d.refused || []).map(function (r) {
        return L.el("li", {}, [L.el("span", {className: "mono"}, r.uuid), " ", r.name || "",
          ": ", r.reason]);
      }));
      L.append(out, L.el("p", {className: "dry-run", "data-count": d.count,
        "data-retriable": d.retriable}, "Dry run: " + d.count + " finished task(s) match; " +
        d.retriable + " can be retried, " + d.refused_count + " cannot."));
      if (d.refused_count) { L.append(out, refused); }
      L.append(out, warningLines(d.warnings));
      if (d.over_cap || !d.retriable) { return; }
      confirmAction("Retry " + d.retriable + " task(s)?", [d.retriable + " task(s) will be " +
        "sent again with their arguments, each linked to its original.",
        d.refused_count ? d.refused_count + " are skipped (the reasons are listed under the dry run)." : ""]
        .concat(warningLines(d.warnings)))
        .then(function (yes) {
          if (!yes) { return; }
          payload.dry_run = false;
          payload.expected_count = d.retriable;
          post("/tasks/retry", payload).then(function (act) {
            if (act.status >= 400) { show(form, act.status, act.data); return; }
            out.dataset.status = "200";
            L.append(out, L.el("p", {className: "control-done"}, "Sent " + act.data.count +
              " retries."));
            L.append(out, L.el("ul", {className: "sample"}, act.data.sent.map(function (t) {
              return L.el("li", {}, [L.el("a", {href: L.taskUrl(t.task_id), className: "mono"},
                t.task_id), " retry of ", L.el("a", {href: L.taskUrl(t.retry_of),
                className: "mono"}, t.retry_of)]);
            })));
          });
        });
    });
  }

  function poll(form, auditId, total) {
    var out = form.querySelector(".control-result");
    var bar = L.el("progress", {max: String(total), value: "0", className: "bulk-progress"});
    var label = L.el("span", {className: "bulk-label"}, "0 / " + total);
    L.append(out, L.el("p", {}, [bar, " ", label]));
    function tick() {
      L.api("/audit/" + auditId).then(function (record) {
        var progress = (record.parameters && record.parameters.progress) || {done: 0};
        bar.value = progress.done;
        // Sent is not done: a task turns REVOKED when its worker confirms, and one whose
        // worker died (lost) never does. "5 / 5 (ok)" read as five revoked (a trial).
        L.setText(label, "revoke sent for " + progress.done + " / " + total + " (" +
          record.outcome + ")");
        if (record.outcome === "running") { setTimeout(tick, 500); return; }
        out.dataset.status = record.outcome;
        L.append(out, L.el("p", {className: "muted", "data-testid": "bulk-note"}, "Each task " +
          "turns REVOKED when its worker confirms; tasks whose worker is gone (lost) never " +
          "do: see Trouble."));
        L.append(out, repliesTable(record.replies));
      }).catch(function () { setTimeout(tick, 1000); });
    }
    tick();
  }

  window.LookoutControls = {post: post, send: send, confirmAction: confirmAction,
    warningLines: warningLines};

  // The Controls page has no page script of its own to open the live socket.
  if (document.body.dataset.page === "controls") { L.live([], {}); }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.bulk !== undefined) { event.preventDefault(); submitBulk(form); }
    else if (form.dataset.bulkRetry !== undefined) { event.preventDefault(); submitBulkRetry(form); }
    else if (form.dataset.control) { event.preventDefault(); submitControl(form); }
  });
}());
