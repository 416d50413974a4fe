"""What every page's layout needs: the navigation and the browser libraries' sources.

Chart.js and the Socket.IO client are bundled with the package (static/vendor/, pinned
versions with their licences), so a wheel install works with no network at all. A CDN
(or any other) URL can be set instead with LOOKOUT_CHARTJS_URL / LOOKOUT_SOCKETIO_URL;
for the pinned CDN builds the page adds their SRI hash, so the browser refuses a copy
that differs. Templates render only the page skeleton and pass configuration to the page
scripts in data-* attributes; no inline script or style anywhere, so a strict CSP can
forbid both.

Names, ids and hostnames the templates show go through reveal_bidi, as text the page
scripts show goes through revealBidi (static/js/common.js).

The nav ends with the pages only some roles may open (Controls, Audit, Users); each is
listed only for the roles its view lets in, so nobody is shown a link that answers 403.
"""
from __future__ import annotations

import re

from flask import current_app, request, url_for

from lookout.dashboard.web.roles import identity

# The bundled builds and their sha384 (identical bytes to the npm packages' dist files
# and to the pinned CDN URLs below).
BUNDLED = {
    "chartjs": ("vendor/chart.umd.js",
                "sha384-dug+JxfBvklEQdJ4AYuBBAIScUz0bVN73xpy273gcAwHjb3qI0fXmuYNaNfdyYJG"),
    "socketio": ("vendor/socket.io.min.js",
                 "sha384-2huaZvOR9iDzHqslqwpR87isEmrfxqyWOF7hr7BY6KG0+hVKLoEXMPUJw3ynWuhO"),
}
INTEGRITY = {
    "https://cdn.jsdelivr.net/npm/chart.js@4.4.1/dist/chart.umd.js": BUNDLED["chartjs"][1],
    "https://cdn.jsdelivr.net/npm/socket.io-client@4.7.5/dist/socket.io.min.js":
        BUNDLED["socketio"][1],
}
# The nav: (label, path).
NAV = (("Overview", "/"), ("Tasks", "/tasks"), ("Workers", "/workers"),
       ("Queues", "/queues"), ("Retries", "/retries"), ("Schedules", "/schedules"),
       ("Trouble", "/trouble"), ("Failures", "/failures"), ("Alerts", "/alerts"))
# Role-gated pages: (label, path, element id, least role). The roles mirror the views'
# require_role calls (control/views.py controls_page, audit/views.py, auth/admin.py);
# not `control=True`: in read-only mode operators still read these pages.
RESTRICTED_NAV = (("Controls", "/controls", "controls-link", "operator"),
                  ("Audit", "/audit", "audit-link", "operator"),
                  ("Users", "/admin", "admin-link", "admin"))
# Bidi controls: ALM, LRM, RLM, LRE..RLO, LRI..PDI.
BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def reveal_bidi(text) -> str:
    """`text` with each bidi control shown as a visible ⟨U+202E⟩, for display only.

    A control would reorder what is shown around it ("Trojan Source", CVE-2021-42574), so
    a name could pass for another. ⟨U+XXXX⟩ rather than a "\\u202e" escape: task names and
    arguments often hold backslashes, and an escape would read like those six characters.
    Same output as revealBidi in static/js/common.js, and idempotent, so text revealed here
    and again by a page script is unchanged. Only for what is shown: never data-*, values
    or hrefs.
    """
    return BIDI.sub(lambda m: f"\u27e8U+{ord(m.group()):04X}\u27e9", str(text))


def script_source(library: str, configured_url: str) -> dict:
    """src and integrity of a library: the bundled build unless a URL is configured."""
    if not configured_url:
        filename, integrity = BUNDLED[library]
        return {"src": url_for("static", filename=filename), "integrity": integrity}
    return {"src": configured_url, "integrity": INTEGRITY.get(configured_url)}


def nav_items(path: str, ident) -> list[dict]:
    """The nav for a page at `path` seen by `ident` (None: not logged in)."""
    def active(href: str) -> bool:
        return path == href if href == "/" else path.startswith(href)

    items = [{"label": label, "href": href, "active": active(href), "id": None,
              "restricted": False} for label, href in NAV]
    items += [{"label": label, "href": href, "active": active(href), "id": element_id,
               "restricted": True}
              for label, href, element_id, role in RESTRICTED_NAV
              if ident is not None and ident.can(role)]
    return items


def layout_context() -> dict:
    """Context processor: the nav with the active entry, the script sources, reveal_bidi."""
    settings = current_app.config["LOOKOUT"]
    nav = nav_items(request.path, identity())
    return {"nav": nav, "socketio_script": script_source("socketio", settings.socketio_url),
            "chartjs_script": script_source("chartjs", settings.chartjs_url),
            "reveal_bidi": reveal_bidi}
