/*
 * Workflow: every task of one root (chains, groups, chords, nested canvases) as an
 * indented tree from /api/v1/workflows/<root_id>, with counts by state. Retries Lookout
 * sent are shown with the task they retried, not as its children. Reloads every 5 s while
 * any task is unfinished. Task data is shown as text only.
 */
(function () {
  "use strict";

  var L = window.Lookout;
  var root = document.getElementById("workflow");
  var rootId = root.dataset.rootId;
  var REFRESH_MS = Number(root.dataset.refreshMs) || 5000;
  var FINAL = L.FINAL_STATES;
  var ORDER = ["PENDING", "RECEIVED", "STARTED", "RETRY", "SUCCESS", "FAILURE", "REVOKED",
    "REJECTED"];
  var timer = null;
  var known = {};  // uuid -> true for the tasks of the last answer

  function shortId(uuid) {
    return L.el("span", {className: "mono muted", title: uuid}, uuid.length > 12 ? uuid.slice(0, 8) + "…" : uuid);
  }

  /* One task: state, name (to its task page), id, runtime, worker, and what is odd about it. */
  function line(node, isRoot) {
    var name = node.name || (node.seen ? "(unknown task)" : isRoot ? "(root not seen)" : "(no event yet)");
    var parts = [L.taskBadge(node), " ",
      L.el("a", {href: L.taskUrl(node.uuid), "data-testid": "workflow-task"}, name), " ",
      shortId(node.uuid)];
    if (node.runtime !== null && node.runtime !== undefined) {
      parts.push(" · ", L.el("span", {"data-testid": "runtime"}, L.fmtDuration(node.runtime)));
    }
    if (node.worker) {
      parts.push(" · ", L.el("a", {href: "/workers/" + encodeURIComponent(node.worker),
        className: "muted"}, node.worker));
    }
    if (node.retry_count) {
      parts.push(" · ", L.el("span", {className: "state-RETRY"},
        "retried by Celery " + node.retry_count + "×"));
    }
    if (node.lost) { parts.push(" ", L.el("span", {className: "badge lost", title: node.lost}, "lost")); }
    if (node.orphan) {  // hung under the root: say why
      var parent = node.parent_id && node.parent_id !== node.uuid ? node.parent_id : null;
      parts.push(" ", L.el("span", {className: "muted", "data-testid": "orphan"}, !parent
        ? "(its events name no parent)" : known[parent] ? "(parent " + parent + ", in a loop)"
          : "(its parent " + parent + " is not among these tasks)"));
    }
    return parts;
  }

  function item(node, isRoot) {
    var li = L.el("li", {"data-uuid": node.uuid, "data-state": node.state || "",
      "data-testid": "workflow-node"}, L.el("span", {className: "workflow-line"}, line(node, isRoot)));
    if (node.retries.length) {
      li.appendChild(L.el("ul", {className: "workflow-retries", "data-testid": "workflow-retries"},
        node.retries.map(function (retry) {
          var entry = item(retry, false);
          entry.insertBefore(L.el("span", {className: "muted"}, "retried by Lookout as → "), entry.firstChild);
          return entry;
        })));
    }
    if (node.children.length) {
      li.appendChild(L.el("ul", {className: "workflow-children"},
        node.children.map(function (child) { return item(child, false); })));
    }
    if (node.deeper) {
      li.appendChild(L.el("ul", {}, L.el("li", {className: "muted"}, [node.deeper +
        " more tasks below, nested too deeply to show here: see ",
        L.el("a", {href: "/tasks?" + new URLSearchParams({root_id: rootId})}, "the list")])));
    }
    return li;
  }

  function unfinished(node) {
    var stack = [node];
    while (stack.length) {
      var next = stack.pop();
      if (next.state && FINAL.indexOf(next.state) < 0) { return true; }
      stack.push.apply(stack, next.children.concat(next.retries));
    }
    return false;
  }

  function showStates(states) {
    var names = Object.keys(states).sort(function (a, b) {
      var i = ORDER.indexOf(a), j = ORDER.indexOf(b);
      return (i < 0 ? 99 : i) - (j < 0 ? 99 : j) || (a < b ? -1 : 1);
    });
    L.append(L.clear(document.getElementById("workflow-states")), names.map(function (state) {
      return L.el("li", {"data-state": state}, [L.stateBadge(state), " ",
        L.el("span", {"data-testid": "count"}, states[state])]);
    }));
  }

  function notice(id, parts) {
    var node = L.clear(document.getElementById(id));
    node.hidden = !parts;
    if (parts) { L.append(node, parts); }
  }

  function render(data) {
    known = {};
    data.tasks.forEach(function (task) { known[task.uuid] = true; });
    document.getElementById("workflow-missing").hidden = true;
    L.setText("workflow-total", data.total);
    showStates(data.states || {});
    notice("workflow-truncated", data.truncated ? ["Showing the oldest " + data.tasks.length +
      " of " + data.total + " tasks; ", L.el("a", {href: "/tasks?" +
        new URLSearchParams({root_id: rootId})}, "the list"), " has them all."] : null);
    notice("workflow-belongs", data.belongs_to ? ["This task is part of a larger workflow: ",
      L.el("a", {href: "/workflows/" + encodeURIComponent(data.belongs_to),
        "data-testid": "belongs-to"}, data.belongs_to), "."] : null);
    L.append(L.clear(document.getElementById("workflow-tree")),
      L.el("ul", {className: "workflow-tree"}, item(data.tree, true)));
    document.title = "Workflow " + L.revealBidi(data.tree.name || rootId) + " · Lookout";
  }

  function schedule(again) {
    clearTimeout(timer);
    timer = again ? setTimeout(load, REFRESH_MS) : null;
    L.setText("workflow-refresh", again ? "(refreshing every " + REFRESH_MS / 1000 + " s)"
      : "(all finished)");
    root.dataset.refreshing = again ? "true" : "false";
  }

  function load() {
    return L.api("/workflows/" + encodeURIComponent(rootId)).then(function (data) {
      L.showError(null);
      render(data);
      root.dataset.loaded = "true";
      root.dataset.total = String(data.total);
      schedule(unfinished(data.tree));
    }).catch(function (error) {
      if (error.status === 404) {  // its first events may be on their way
        document.getElementById("workflow-missing").hidden = false;
        L.showError(null);
        schedule(true);
        return;
      }
      L.showError(error);
      schedule(error.status !== 400);  // a bad id stays bad
    });
  }

  L.live([], {});  // the connection indicator only: the tree is polled
  load();
}());
