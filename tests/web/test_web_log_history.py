"""The log pages show what an entry ran as it was: a deleted rule, connection or product reads by its old name,
marked deleted, never as raw keys, and never as whatever object was created after it."""

from __future__ import annotations

from sqlalchemy import update

from hookyard.jobs import run_rule
from hookyard.models import Integration

from ..conftest import Setup, purchase
from .session import WebClient, add_user


def test_a_deleted_rule_and_connection_read_as_they_were(app, api, recorder, runtime, in_process):
    a = Setup(api, recorder)
    circle = a.integration("Circle")
    with runtime.db.session() as s:  # as a refresh would have loaded them
        s.execute(update(Integration).where(Integration.id == circle).values(options=recorder.options))
        s.commit()
    rule = a.rule(circle, product_id=a.product("1001", "Founders' circle"), channel="vip")
    [entry] = api.get(f"/api/v1/events/{a.emit(purchase())['id']}").json["runs"]
    assert run_rule(entry["id"]) == "succeeded"
    assert api.delete(f"/api/v1/rules/{rule}").status_code == 204
    assert api.delete(f"/api/v1/integrations/{circle}").status_code == 200
    a.integration("Greeter")

    add_user(runtime, "owner@example.com", "owner")
    web = WebClient(app).sign_in("owner@example.com")
    page = web.get(f"/logs/{entry['id']}").text
    assert "Recorder: Record the call" in page and "Circle" in page and "(deleted)" in page
    assert "The rule was deleted; it ran with these settings." in page and "VIP" in page
    assert "Greeter" not in page and "#vip" not in page and "record</h1>" not in page
    listing = web.get("/logs").text.split("<table", 1)[1]  # the entries, not the filters' choices
    assert "Founders&#39; circle" in listing and "Record the call" in listing and "Greeter" not in listing
