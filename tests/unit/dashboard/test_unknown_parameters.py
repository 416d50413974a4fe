"""A refused parameter says what the endpoint takes instead: the names allowed, or that it
takes none and where what was meant goes. An empty list read "(allowed: )"."""
from __future__ import annotations

import pytest

from helpers.control import app_with_users
from lookout.core.sender import SEND_OPTIONS

DOWN = "redis://127.0.0.1:1/0"  # nothing here may reach a broker: refused before


@pytest.fixture
def app(sqlite_url):
    app = app_with_users(sqlite_url, DOWN)
    yield app
    app.extensions["lookout.engine"].dispose()


@pytest.fixture
def client(app):
    """An operator's script: a bearer token (no CSRF), allowed every POST."""
    _, secret = app.extensions["lookout.accounts"].add_token("script", "operator")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def error_of(response) -> dict:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    return response.get_json()["error"]


def test_flower_task_list_refuses_a_negative_offset_as_it_does_a_negative_limit(client):
    """Flower reads offset=-5 as 0 without a word; a 400 names it, as for limit=-1. A
    limit of 0 stays an empty page, as Flower answers it."""
    for query, message in (("offset=-5", "offset: must be between 0 and 100000"),
                           ("offset=-1&limit=1", "offset: must be between 0 and 100000"),
                           ("limit=-1", "limit: must be between 0 and 10000")):
        error = error_of(client.get(f"/api/tasks?{query}"))
        assert (error["parameter"], error["message"]) == (message.split(":")[0], message)
    response = client.get("/api/tasks?limit=0&offset=0")
    assert response.status_code == 200 and response.get_json() == {}


@pytest.mark.parametrize("path, fields", [
    ("/api/task/apply/proj.tasks.add", ["args", "kwargs", *sorted(SEND_OPTIONS | {"timeout"})]),
    ("/api/task/async-apply/proj.tasks.add", ["args", "kwargs", *sorted(SEND_OPTIONS)]),
    ("/api/task/send-task/proj.tasks.add", ["args", "kwargs", *sorted(SEND_OPTIONS)]),
])
def test_a_query_parameter_on_the_apply_family_says_options_go_in_the_body(client, path,
                                                                           fields):
    error = error_of(client.post(f"{path}?timeout=abc", json={"args": [1, 2]}))
    assert error["parameter"] == "timeout"
    assert error["message"] == (
        "timeout: unknown parameter: this endpoint takes no query parameters (give options "
        f"in the JSON body: {', '.join(fields)})")


def test_an_unknown_key_in_the_apply_body_lists_every_key_it_takes(client):
    error = error_of(client.post("/api/task/apply/proj.tasks.add", json={"link": "x"}))
    keys = sorted(SEND_OPTIONS | {"args", "kwargs", "timeout"})
    assert error["message"] == f"link: unknown parameter (allowed: {', '.join(keys)})"


def test_inspect_takes_no_method_and_says_which_methods_it_runs(client):
    error = error_of(client.get("/api/v1/workers/celery@x/inspect?method=bogus"))
    assert error["parameter"] == "method"
    assert error["message"] == (
        "method: unknown parameter: this endpoint takes no query parameters (it runs every "
        "inspect method: stats, active, reserved, scheduled, registered, active_queues, conf)")


def test_an_endpoint_without_parameters_says_so(client):
    for method, path, message in (
            ("get", "/api/task/types?all=1",
             "all: unknown parameter: this endpoint takes no query parameters"),
            ("get", "/api/v1/workers/celery@x?x=1",
             "x: unknown parameter: this endpoint takes no query parameters"),
            # Query string, form and JSON body merged: Flower's control parameters.
            ("post", "/api/task/abort/t-1?now=1",
             "now: unknown parameter: this endpoint takes no parameters")):
        assert error_of(getattr(client, method)(path))["message"] == message, path
    # One that takes some still lists them.
    error = error_of(client.get("/api/task/result/t-1?wait=1"))
    assert error["message"] == "wait: unknown parameter (allowed: timeout)"
