"""Circle fixtures, loaded for the whole suite by tests/conftest.py (the web tests use them too):
the fake Circle (a real HTTP server), a seeded community, a connection to it."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from hookyard_circle.fake import FakeCircle

API_KEY = "circle-admin-v2-key-for-tests"


@pytest.fixture
def fake_circle(monkeypatch):
    with FakeCircle(api_key=API_KEY) as fake:
        monkeypatch.setenv("CIRCLE_API_BASE_URL", fake.base_url)
        yield fake


@pytest.fixture
def community(fake_circle):
    """Two of everything: the rules below add to the second and remove from the first."""
    f = fake_circle
    soon = datetime.now(timezone.utc) + timedelta(days=3)
    ids = SimpleNamespace()
    ids.group1, ids.group2 = f.add_space_group("Members"), f.add_space_group("VIP")
    ids.space1 = f.add_space("Welcome", space_group_id=ids.group1)
    ids.space2 = f.add_space("Masterclass")
    ids.event1, ids.event2 = f.add_event("Kick-off call", soon), f.add_event("Q&A", soon + timedelta(days=1))
    ids.tag1, ids.tag2 = f.add_member_tag("Customer"), f.add_member_tag("Refunded")
    ids.member = "member@example.com"
    f.add_member(
        ids.member, name="Mem Ber", space_ids=[ids.space1], space_group_ids=[ids.group1], member_tag_ids=[ids.tag1]
    )
    # The member is RSVP'd to event 1 through the API, as anyone would be.
    import requests

    requests.post(
        f"{f.base_url}/event_attendees",
        json={"event_id": str(ids.event1), "member_email": ids.member},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    ).raise_for_status()
    f.add_member("leaver@example.com", name="Lea Ver")
    f.reset_requests()
    return ids


class CircleSetup:
    def __init__(self, api, fake):
        self.api, self.fake = api, fake

    def connect(self, name="Community", api_key=API_KEY):
        r = self.api.post(
            "/api/v1/integrations",
            json={
                "app": "circle",
                "name": name,
                "config": {"api_key": api_key, "community_url": "https://test-community.circle.so"},
            },
        )
        assert r.status_code == 201, r.json
        return r.json["id"]

    def rule(self, integration_id, action, params, trigger="samcart.product_purchased"):
        r = self.api.post(
            "/api/v1/rules",
            json={
                "product_id": None,
                "trigger": trigger,
                "integration_id": integration_id,
                "action": action,
                "params": params,
            },
        )
        assert r.status_code == 201, r.json
        return r.json["id"]

    def emit(self, email, trigger="samcart.product_purchased", **customer):
        r = self.api.post(
            "/api/v1/events",
            json={
                "trigger": trigger,
                "payload": {"customer": {"email": email, **customer}, "product": {"id": "444", "name": "Community"}},
            },
        )
        assert r.status_code == 202, r.json
        return r.json["id"]


@pytest.fixture
def circle(api, fake_circle, community):
    return CircleSetup(api, fake_circle)


@pytest.fixture
def circle_worker(start_worker, fake_circle):
    """A real worker pointed at the fake, with short timeouts and retries so faults resolve quickly."""

    def start(**env):
        defaults = {
            "CIRCLE_API_BASE_URL": fake_circle.base_url,
            "CIRCLE_TIMEOUT": "1",
            "HOOKYARD_RETRY_BASE_DELAY": "0.2",
            "HOOKYARD_RETRY_MAX_DELAY": "0.5",
        }
        return start_worker(**{**defaults, **env})  # a test may override a default (a longer timeout)

    return start
