"""Server-rendered pages: Overview, Tasks, Task detail, and the vendored browser libraries.

The templates render only the page skeleton and pass configuration to the page scripts
in data-* attributes; the scripts fetch data from the JSON API and take live updates
from Socket.IO. No inline script or style anywhere, so a strict CSP can forbid both.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request, send_from_directory

bp = Blueprint("pages", __name__)

# sha384 of the exact files the default CDN URLs serve (equal to the npm packages' dist
# files of the same version): the browser refuses a CDN copy that differs.
INTEGRITY = {
    "https://cdn.jsdelivr.net/npm/chart.js@4.4.1/dist/chart.umd.js":
        "sha384-dug+JxfBvklEQdJ4AYuBBAIScUz0bVN73xpy273gcAwHjb3qI0fXmuYNaNfdyYJG",
    "https://cdn.jsdelivr.net/npm/socket.io-client@4.7.5/dist/socket.io.min.js":
        "sha384-2huaZvOR9iDzHqslqwpR87isEmrfxqyWOF7hr7BY6KG0+hVKLoEXMPUJw3ynWuhO",
}
VENDOR_PREFIX = "/vendor/"
# The nav: (label, path). Workers, Queues, Retries and Schedules have their own blueprints.
NAV = (("Overview", "/"), ("Tasks", "/tasks"), ("Workers", "/workers"),
       ("Queues", "/queues"), ("Retries", "/retries"), ("Schedules", "/schedules"))


def script_source(url: str) -> dict:
    """src plus, for a pinned CDN file, its integrity hash; local copies need none."""
    source = {"src": url, "integrity": None}
    if not url.startswith(VENDOR_PREFIX):
        source["integrity"] = INTEGRITY.get(url)
    return source


@bp.app_context_processor
def layout_context() -> dict:
    settings = current_app.config["LOOKOUT"]
    path = request.path
    nav = [{"label": label, "href": href,
            "active": path == href if href == "/" else path.startswith(href)}
           for label, href in NAV]
    return {"nav": nav, "socketio_script": script_source(settings.socketio_url),
            "chartjs_script": script_source(settings.chartjs_url)}


@bp.get("/")
def overview():
    return render_template("overview.html", page="overview")


@bp.get("/tasks")
def tasks():
    return render_template("tasks.html", page="tasks")


@bp.get("/tasks/<task_id>")
def task(task_id: str):
    return render_template("task.html", page="task", task_id=task_id)


@bp.get("/vendor/<name>")
def vendor(name: str):
    """Serve a local copy of Chart.js or the Socket.IO client, only if configured so."""
    from dashboard import ROOT

    settings = current_app.config["LOOKOUT"]
    served = {url[len(VENDOR_PREFIX):] for url in (settings.chartjs_url, settings.socketio_url)
              if url.startswith(VENDOR_PREFIX)}
    if name not in served:
        abort(404)
    return send_from_directory(ROOT / "vendor", name, max_age=3600)
