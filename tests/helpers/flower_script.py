"""A script written against Flower's documented REST API, and nothing else.

The tests run it unchanged against a real Flower and against Lookout: only the base URL
differs (a token goes in FLOWER_API_TOKEN for both; Flower without auth ignores it).

    python flower_script.py http://127.0.0.1:5555 flower.add flower.wait

It lists the workers and the recent runs of a task, reads one, runs the task and waits
for its result, starts a long task and revokes it, and reads the queue lengths; it prints
what it saw as JSON and exits non-zero at the first surprise.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def call(base, method, path, body=None, token=None, form=None):
    """(status, decoded JSON or text) of one request: `body` goes as JSON, `form` as a
    form (Flower reads control parameters from either the query string or a form)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = b"" if method == "POST" else None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def expect(base, method, path, body=None):
    status, answer = call(base, method, path, body, token=os.environ.get("FLOWER_API_TOKEN"))
    if status != 200:
        raise SystemExit(f"{method} {path}: {status} {answer}")
    return answer


def main(base, task, long_task):
    seen = {}
    workers = expect(base, "GET", "/api/workers?refresh=1")
    seen["workers"] = sorted(workers)
    seen["concurrency"] = {name: info["stats"]["pool"]["max-concurrency"]
                           for name, info in workers.items()}
    seen["alive"] = expect(base, "GET", "/api/workers?status=true")
    seen["knows_task"] = task in expect(base, "GET", "/api/task/types")["task-types"]

    query = urllib.parse.urlencode({"taskname": task, "limit": 5, "sort_by": "-received"})
    recent = expect(base, "GET", "/api/tasks?" + query)
    seen["recent"] = [(uuid, info["state"]) for uuid, info in recent.items()]
    if recent:
        first = next(iter(recent))
        info = expect(base, "GET", "/api/task/info/" + first)
        seen["info"] = {key: info[key] for key in ("uuid", "name", "state", "args")}

    applied = expect(base, "POST", "/api/task/apply/" + task, {"args": [2, 3], "timeout": 20})
    seen["applied"] = (applied["state"], applied["result"])

    started = expect(base, "POST", "/api/task/async-apply/" + long_task, {"args": [60]})
    task_id = started["task-id"]
    seen["revoke"] = expect(base, "POST", "/api/task/revoke/" + task_id + "?terminate=true")
    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline and state != "REVOKED":
        status, info = call(base, "GET", "/api/task/info/" + task_id,
                            token=os.environ.get("FLOWER_API_TOKEN"))
        state = info.get("state") if status == 200 else None
        time.sleep(0.2)
    if state != "REVOKED":
        raise SystemExit(f"task {task_id} never showed as REVOKED (last: {state})")
    seen["revoked"] = state

    queues = expect(base, "GET", "/api/queues/length")["active_queues"]
    seen["queues"] = {queue["name"]: queue["messages"] for queue in queues}
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3])
