"""The web UI's Refresh: it starts a task and shows its page, which reloads itself (a Refresh header, no script)
until the task ends; cancel from that page; the rule wizard never waits on the remote for lists never loaded."""

from __future__ import annotations

import re

import pytest

from hookyard.models import Task

from ..circle.fixtures import CircleSetup
from ..tasking import run_task_here


@pytest.fixture
def connected(api, fake_circle, community):
    return CircleSetup(api, fake_circle).connect()


def task_page_of(response) -> str:
    assert response.status_code == 302, response.text
    assert re.fullmatch(r"/integrations/\d+/refresh/\d+", response.location), response.location
    return response.location


def test_refresh_shows_the_tasks_page_until_it_ends(owner, connected, fake_circle, runtime):
    fake_circle.reset_requests()
    page_path = task_page_of(owner.post(f"/integrations/{connected}/refresh"))
    assert fake_circle.requests == []  # the click called nobody: the worker does the refresh
    assert task_page_of(owner.post(f"/integrations/{connected}/refresh")) == page_path  # a second click: same task
    page = owner.get(page_path)
    assert page.status_code == 200 and page.headers["Refresh"] == "2"
    assert "Waiting for a worker" in page.text and "Cancel the refresh" in page.text
    assert "<script" not in page.text.split("</head>")[1]  # nothing inline: the CSP forbids it
    listing = owner.get("/integrations")
    assert page_path in listing.text and "Refreshing (queued)" in listing.text

    run_task_here(runtime, int(page_path.rsplit("/", 1)[1]))
    page = owner.get(page_path)
    assert "Refresh" not in page.headers  # ended: no more reloading
    assert "“Community” refreshed: 2 events, 2 member tags, 2 space groups, 2 spaces." in page.text
    assert "8 of 8" in page.text and "Cancel the refresh" not in page.text
    assert page_path not in owner.get("/integrations").text


def test_cancel_from_the_tasks_page(owner, connected, runtime):
    page_path = task_page_of(owner.post(f"/integrations/{connected}/refresh"))
    response = owner.post(page_path + "/cancel")
    assert response.status_code == 302 and response.location == page_path
    page = owner.get(page_path)
    assert "Cancelled before it started." in page.text and "Refresh" not in page.headers
    with runtime.db.session() as s:
        assert [t.status for t in s.query(Task)] == ["cancelled"]


def test_a_failed_refresh_says_why(owner, connected, fake_circle, runtime):
    fake_circle.plan_eligible = False
    page_path = task_page_of(owner.post(f"/integrations/{connected}/refresh"))
    run_task_here(runtime, int(page_path.rsplit("/", 1)[1]))
    page = owner.get(page_path)
    assert 'role="alert"' in page.text and "Business plan or above" in page.text


def test_another_stores_task_or_integration_is_not_found(owner, connected, make_client, runtime, recorder):
    page_path = task_page_of(owner.post(f"/integrations/{connected}/refresh"))
    task_id = page_path.rsplit("/", 1)[1]
    other = make_client("store-b")
    from ..conftest import Setup

    theirs = Setup(other, recorder).integration()
    assert owner.get(f"/integrations/{theirs}/refresh/{task_id}").status_code == 404
    their_task = other.post(f"/api/v1/integrations/{theirs}/refresh").json["id"]
    assert owner.get(f"/integrations/{connected}/refresh/{their_task}").status_code == 404
    assert owner.post(f"/integrations/{connected}/refresh/{their_task}/cancel").status_code == 404
    assert other.get(f"/api/v1/tasks/{their_task}").json["status"] == "queued"


def test_the_wizard_starts_loading_lists_never_loaded_instead_of_waiting(owner, connected, fake_circle, runtime):
    fake_circle.reset_requests()
    page = owner.get("/rules/new")
    form = {"step": "action", "integration_id": str(connected), "action": "add_member_to_space"}
    response = owner.post("/rules/new", form)
    assert response.status_code == 422 and "loading this connection" in response.text, response.text
    assert fake_circle.requests == []  # nothing waited on Circle
    with runtime.db.session() as s:
        [task] = s.query(Task).all()
    run_task_here(runtime, task.id)
    response = owner.post("/rules/new", form)
    assert response.status_code == 200 and "Welcome" in response.text  # the space list, now loaded
    assert page.status_code == 200
