/*
 * Times as the person chose to see them: the header's UTC / Local switch (kept in this
 * browser's localStorage), formatting in that zone (with the date when not today), and
 * reading typed times in it. Loaded right after common.js; adds its functions to
 * window.Lookout (fmtTime, fmtIso, timeEl, parseTime, fmtInput, tz, tzLabel).
 */
(function () {
  "use strict";
  var L = window.Lookout;
  var el = L.el;

  /* ---- time zone and time formatting ----
     One zone for every time on every page: the browser's own ("local", the default) or
     UTC, chosen with the header's switch and remembered in this browser (localStorage
     "lookout.tz"). Changing it reloads the page, so every page redraws its times. */
  var TZ_KEY = "lookout.tz";
  function pad(n, width) { n = String(n); while (n.length < (width || 2)) { n = "0" + n; } return n; }
  function zoneOf(value) { return value === "utc" ? "utc" : "local"; }

  var shownZone = (function () {
    try { return zoneOf(window.localStorage.getItem(TZ_KEY)); } catch (e) { return "local"; }
  }());

  /* "local" or "utc": the zone this page shows. */
  function tz() { return shownZone; }

  /* The wall clock of `ms` (epoch milliseconds) in the chosen zone, and that zone's offset
     from UTC at that moment in minutes (east positive). */
  function wall(ms, zone) {
    var d = new Date(ms);
    if ((zone || tz()) === "utc") {
      return {y: d.getUTCFullYear(), mo: d.getUTCMonth() + 1, d: d.getUTCDate(), h: d.getUTCHours(),
        mi: d.getUTCMinutes(), s: d.getUTCSeconds(), ms: d.getUTCMilliseconds(), offset: 0};
    }
    return {y: d.getFullYear(), mo: d.getMonth() + 1, d: d.getDate(), h: d.getHours(),
      mi: d.getMinutes(), s: d.getSeconds(), ms: d.getMilliseconds(), offset: -d.getTimezoneOffset()};
  }

  function fmtOffset(minutes, utcAsZ) {
    if (utcAsZ && minutes === 0) { return "Z"; }
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return sign + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
  }

  function localZoneName() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  /* "UTC", or "Local (UTC+01:00)" with today's offset of the browser's zone. */
  function tzLabel(zone) {
    if ((zone || tz()) === "utc") { return "UTC"; }
    return "Local (UTC" + fmtOffset(-new Date().getTimezoneOffset()) + ")";
  }

  function fmtDate(w) { return w.y + "-" + pad(w.mo) + "-" + pad(w.d); }

  /* "HH:MM:SS.mmm" when the moment falls today in the chosen zone, else
     "YYYY-MM-DD HH:MM:SS.mmm" (milliseconds truncated, never rounded up). */
  function fmtTime(epoch) {
    if (epoch === null || epoch === undefined || epoch === "" || isNaN(epoch)) { return "–"; }
    var w = wall(Number(epoch) * 1000);
    var time = pad(w.h) + ":" + pad(w.mi) + ":" + pad(w.s) + "." + pad(w.ms, 3);
    return fmtDate(w) === fmtDate(wall(Date.now())) ? time : fmtDate(w) + " " + time;
  }

  /* ISO 8601 with the chosen zone's explicit offset ("Z" in UTC): the API reads it back
     exactly. Milliseconds when there are any; microseconds too with {micro: true}. */
  function fmtIso(epoch, options) {
    if (epoch === null || epoch === undefined || epoch === "" || isNaN(epoch)) { return ""; }
    var micros = Math.round(Number(epoch) * 1e6);
    var ms = Math.floor(micros / 1000), rest = micros - ms * 1000;
    var w = wall(ms);
    var fraction = "";
    if (options && options.micro && rest) { fraction = "." + pad(w.ms, 3) + pad(rest, 3); }
    else if (w.ms) { fraction = "." + pad(w.ms, 3); }
    return fmtDate(w) + "T" + pad(w.h) + ":" + pad(w.mi) + ":" + pad(w.s) + fraction +
      fmtOffset(w.offset, true);
  }

  /* A <time> showing fmtTime(epoch), with the full ISO timestamp as datetime and title. */
  function timeEl(epoch, attrs) {
    if (epoch === null || epoch === undefined || epoch === "" || isNaN(epoch)) { return "–"; }
    var iso = fmtIso(epoch);
    return el("time", Object.assign({datetime: iso, title: iso + " · " + tzLabel()}, attrs || {}),
      fmtTime(epoch));
  }

  /* What a person types for a time, read in the chosen zone unless it names one:
       "2026-11-21 22:00[:05[.123]]" (or with "T"), "2026-11-21" (the day), "22:00[:05[.123]]"
       (today), any of these followed by "Z", "UTC", "UTC+01:00" or "+01:00"; or epoch
       seconds ("1763762400.5"). options.naive: "utc" reads a value without a zone as UTC
       (the API's rule, for values from a URL) instead of the chosen zone. options.end: the
       last microsecond of what was typed (for "before": "22:00:05" means up to 22:00:05.999999,
       so typing a time shown on screen, which is truncated, still includes it).
     Returns epoch seconds, or NaN. */
  var TIME_RE = new RegExp("^(?:(\\d{4})-(\\d{1,2})-(\\d{1,2}))?(?:(?:^|[T ]+)(\\d{1,2}):(\\d{2})" +
    "(?::(\\d{2})(?:[.,](\\d{1,6}))?)?)?\\s*(Z|(?:UTC|GMT)?\\s*[+-]\\d{1,2}(?::?\\d{2})?|UTC|GMT)?$", "i");
  function parseTime(text, options) {
    options = options || {};
    text = String(text === null || text === undefined ? "" : text).trim();
    if (!text) { return NaN; }
    if (/^-?\d+(\.\d+)?$/.test(text)) {  // epoch seconds; typed, at least 9 digits ("12" is no time)
      return options.naive === "utc" || /^\d{9,}/.test(text) ? Number(text) : NaN;
    }
    var m = TIME_RE.exec(text);
    if (!m || (!m[1] && !m[4])) { return NaN; }
    var zone = options.naive === "utc" ? "utc" : tz(), offset = null;
    if (m[8]) {
      var o = /([+-])\s*(\d{1,2}):?(\d{2})?$/.exec(m[8]);
      offset = o ? (o[1] === "-" ? -1 : 1) * (Number(o[2]) * 60 + Number(o[3] || 0)) : 0;
    }
    var today = offset === null ? wall(Date.now(), zone)  // today where the time was typed
      : wall(Date.now() + offset * 60000, "utc");
    var parts = [m[1] ? Number(m[1]) : today.y, m[1] ? Number(m[2]) : today.mo,
      m[1] ? Number(m[3]) : today.d, Number(m[4] || 0), Number(m[5] || 0), Number(m[6] || 0)];
    var digits = m[7] || "";
    var micros = digits ? Number((digits + "00000").slice(0, 6)) : 0;
    if (parts[1] < 1 || parts[1] > 12 || parts[2] < 1 || parts[3] > 23 || parts[4] > 59 ||
        parts[5] > 59 || parts[2] > new Date(Date.UTC(parts[0], parts[1], 0)).getUTCDate()) {
      return NaN;
    }
    // The step of the last field typed: a day, a minute, a second or the fraction's digit.
    var unit = !m[4] ? "day" : m[6] === undefined ? "minute" : !digits ? "second" : "fraction";
    function at(p, extraMicros) {
      var ms;
      if (offset !== null || zone === "utc") {
        ms = Date.UTC(p[0], p[1] - 1, p[2], p[3], p[4], p[5]) - (offset || 0) * 60000;
      } else {
        ms = new Date(p[0], p[1] - 1, p[2], p[3], p[4], p[5]).getTime();
      }
      return ms / 1000 + extraMicros / 1e6;
    }
    var start = at(parts, micros);
    if (!options.end) { return start; }
    var next = parts.slice();
    if (unit === "day") { next[2] += 1; } else if (unit === "minute") { next[4] += 1; }
    else if (unit === "second") { next[5] += 1; }
    var step = unit === "fraction" ? Math.pow(10, 6 - digits.length) : 0;
    return Math.round((at(next, micros + step)) * 1e6 - 1) / 1e6;
  }

  /* An epoch as a form field shows it, in the chosen zone: "YYYY-MM-DD HH:MM:SS[.mmm]".
     With end = true it is the last microsecond of a typed span (see parseTime), shown as the
     span's last second or millisecond, so it reads back to the same value. */
  function fmtInput(epoch, end) {
    if (epoch === null || epoch === undefined || epoch === "" || isNaN(epoch)) { return ""; }
    var micros = Math.round(Number(epoch) * 1e6);
    if (end) {
      var after = micros + 1;
      if (after % 1000000 === 0) { micros = after - 1000000; }
      else if (after % 1000 === 0) { micros = after - 1000; }
    }
    var ms = Math.floor(micros / 1000);
    var w = wall(ms);
    return fmtDate(w) + " " + pad(w.h) + ":" + pad(w.mi) + ":" + pad(w.s) +
      (w.ms ? "." + pad(w.ms, 3) : "");
  }


  /* ---- the header's time zone switch ----
     Elements with data-tz-label show the zone: "UTC" or "Local (UTC+01:00)"; with
     data-tz-label="column", for a table heading, "(UTC)" or "(UTC+01:00)". A change here,
     or in another tab of this browser, reloads the page: its times then redraw. */
  function showZone() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-tz-label]"), function (node) {
      node.textContent = node.dataset.tzLabel !== "column" ? tzLabel(shownZone)
        : "(" + (shownZone === "utc" ? "UTC" : "UTC" + fmtOffset(-new Date().getTimezoneOffset())) + ")";
    });
    var select = document.getElementById("tz-select");
    if (!select) { return; }
    var local = select.querySelector("option[value='local']");
    if (local) { local.textContent = tzLabel("local"); }
    select.value = shownZone;
    try { window.localStorage.setItem(TZ_KEY, shownZone); } catch (e) {
      select.disabled = true;  // nowhere to remember a choice: the page would forget it
      select.title = "This browser blocks local storage: times stay in its own zone.";
      return;
    }
    select.title = "Every time is shown, and typed times are read, in " +
      (shownZone === "utc" ? "UTC" : "this browser's zone" +
        (localZoneName() ? " (" + localZoneName() + ")" : "")) +
      ". Remembered in this browser.";
    select.addEventListener("change", function () {
      var zone = zoneOf(select.value);
      if (zone === shownZone) { return; }
      try { window.localStorage.setItem(TZ_KEY, zone); } catch (e) { /* not remembered */ }
      shownZone = zone;
      document.dispatchEvent(new CustomEvent("lookout:tz", {detail: {zone: zone}}));
      window.location.reload();
    });
  }
  window.addEventListener("storage", function (event) {
    if (event.key === TZ_KEY && zoneOf(event.newValue) !== shownZone) { window.location.reload(); }
  });


  showZone();
  Object.assign(L, {fmtTime: fmtTime, tz: tz, tzLabel: tzLabel, fmtIso: fmtIso,
                    fmtInput: fmtInput, parseTime: parseTime, timeEl: timeEl});
}());
