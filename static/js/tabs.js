/*
 * Tabs: a [role=tablist][data-tabs] of [role=tab] buttons, each naming its [role=tabpanel]
 * in aria-controls. The WAI-ARIA tabs pattern: one tab in the Tab order, arrow keys, Home
 * and End move to (and open) another. The open tab's data-tab is kept in the URL hash,
 * so a reload or a shared link opens the same tab; replaceState, not a new history entry
 * per click, so Back leaves the page rather than stepping through tabs.
 */
(function () {
  "use strict";

  function setup(list) {
    var tabs = Array.prototype.slice.call(list.querySelectorAll('[role="tab"]'));
    if (!tabs.length) { return; }

    function named(name) {
      return tabs.filter(function (tab) { return tab.dataset.tab === name; })[0] || null;
    }

    function fromHash() {
      try { return named(decodeURIComponent(window.location.hash.slice(1))); } catch (e) { return null; }
    }

    function open(tab, options) {
      tabs.forEach(function (each) {
        var chosen = each === tab;
        each.setAttribute("aria-selected", chosen ? "true" : "false");
        each.tabIndex = chosen ? 0 : -1;
        var panel = document.getElementById(each.getAttribute("aria-controls"));
        if (panel) { panel.hidden = !chosen; }
      });
      list.dataset.open = tab.dataset.tab;
      if (options && options.focus) { tab.focus(); }
      if (options && options.remember && window.location.hash !== "#" + tab.dataset.tab) {
        window.history.replaceState(window.history.state, "", "#" + tab.dataset.tab);
      }
    }

    list.addEventListener("click", function (event) {
      var tab = event.target.closest('[role="tab"]');
      if (tab && list.contains(tab)) { open(tab, {remember: true}); }
    });

    list.addEventListener("keydown", function (event) {
      var at = tabs.indexOf(document.activeElement);
      if (at < 0) { return; }
      var next = {ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1}[event.key];
      if (next === undefined) { return; }
      event.preventDefault();
      open(tabs[(next + tabs.length) % tabs.length], {focus: true, remember: true});
    });

    // A link or a typed address that changes only the hash opens that tab too.
    window.addEventListener("hashchange", function () {
      var tab = fromHash();
      if (tab) { open(tab); }
    });

    open(fromHash() || list.querySelector('[role="tab"][aria-selected="true"]') || tabs[0]);
  }

  Array.prototype.forEach.call(document.querySelectorAll('[role="tablist"][data-tabs]'), setup);
}());
