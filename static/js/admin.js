/*
 * Users and API tokens (admins only): lists from the API, forms that POST with the CSRF
 * token, a new token's secret shown once. Uses the confirm dialog and POST helper that
 * controls.js exports as window.LookoutControls.
 */
(function () {
  "use strict";

  var L = window.Lookout;

  function controls() { return window.LookoutControls; }

  function loadUsers() {
    return L.api("/users").then(function (data) {
      var body = L.clear(document.getElementById("users-body"));
      data.items.forEach(function (u) {
        body.appendChild(L.el("tr", {"data-username": u.username}, [
          L.el("td", {}, u.username), L.el("td", {}, u.role),
          L.el("td", {}, L.fmtTime(u.created_at)), L.el("td", {}, u.disabled ? "yes" : "")]));
      });
    });
  }

  function loadTokens() {
    return L.api("/tokens").then(function (data) {
      var body = L.clear(document.getElementById("tokens-body"));
      data.items.forEach(function (t) {
        var revoke = t.revoked_at ? "" : L.el("button", {type: "button", className: "revoke-token",
                                                         "data-id": t.id}, "Revoke");
        body.appendChild(L.el("tr", {"data-token": t.name}, [
          L.el("td", {}, t.name), L.el("td", {className: "mono"}, t.prefix + "…"),
          L.el("td", {}, t.role), L.el("td", {}, t.created_by || ""),
          L.el("td", {}, L.fmtTime(t.last_used_at)), L.el("td", {}, L.fmtTime(t.revoked_at)),
          L.el("td", {}, revoke)]));
      });
    });
  }

  function payload(form) {
    var data = {};
    new FormData(form).forEach(function (value, key) { data[key] = value; });
    return data;
  }

  function report(form, res, success) {
    var out = L.clear(form.querySelector(".control-result"));
    out.dataset.status = String(res.status);
    if (res.status >= 400) {
      L.append(out, L.el("p", {className: "error", role: "alert"},
        (res.data.error && res.data.error.message) || ("HTTP " + res.status)));
      return false;
    }
    L.append(out, success);
    return true;
  }

  document.getElementById("user-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    controls().post("/users", payload(form)).then(function (res) {
      if (report(form, res, L.el("p", {}, "Added " + res.data.username + " (" + res.data.role + ")."))) {
        form.reset();
        loadUsers();
      }
    });
  });

  document.getElementById("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    controls().post("/tokens", payload(form)).then(function (res) {
      var shown = L.el("p", {}, ["Token (copy it now, it is not shown again): ",
                                 L.el("code", {id: "new-token"}, res.data.token || "")]);
      if (report(form, res, shown)) { form.reset(); loadTokens(); }
    });
  });

  // Enabled once the submits above are ours (admin.html: never a native submission).
  ["user-form", "token-form"].forEach(function (id) {
    document.querySelector("#" + id + " button[type=submit]").disabled = false;
  });

  document.getElementById("tokens-body").addEventListener("click", function (event) {
    var button = event.target.closest("button.revoke-token");
    if (!button) { return; }
    controls().confirmAction("Revoke token", ["Scripts using it stop working at once."])
      .then(function (yes) {
        if (!yes) { return; }
        controls().send("DELETE", "/tokens/" + button.dataset.id).then(function (res) {
          if (res.status >= 400) { L.showError(new Error(res.data.error.message)); }
          loadTokens();
        });
      });
  });

  Promise.all([loadUsers(), loadTokens()]).catch(L.showError);
  L.live([], {});
}());
