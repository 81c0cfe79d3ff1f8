"""Pacing: all workers share one budget under Circle's per-IP limit, split fairly between stores."""

import pytest

from ..conftest import purchase
from ..waiting import wait_for
from .fixtures import CircleSetup

pytestmark = pytest.mark.e2e
BURST = 80


def test_a_burst_stays_under_the_limit_and_does_not_starve_another_store(
    api, make_client, fake_circle, community, start_worker, runtime
):
    # Circle's shape (2,000 per 5 min), scaled down to 10 per second. The budget keeps 20% spare, not the
    # default 10%: at this scale, the time between taking a slot and the request reaching the fake
    # (tens of milliseconds on a loaded machine) is a real share of the window.
    fake_circle.rate_limit(10, 1.0)
    stores = {}
    for name, client in (("launch", api), ("quiet", make_client("store-b"))):
        setup = CircleSetup(client, fake_circle)
        setup.rule(setup.connect(), "add_member_tag", {"member_tag_id": community.tag2})
        stores[name] = client
    for i in range(BURST):
        fake_circle.add_member(f"buyer{i}@example.com")
    for i in range(6):
        fake_circle.add_member(f"quiet{i}@example.com")
    env = dict(CIRCLE_API_BASE_URL=fake_circle.base_url, CIRCLE_RATE_LIMIT="8/1")
    start_worker(**env)
    start_worker(**env)

    for i in range(BURST):  # launch day: a burst of purchases in one store...
        stores["launch"].post(
            "/api/v1/events",
            json={"trigger": "samcart.product_purchased", "payload": purchase(email=f"buyer{i}@example.com")},
        )
    for i in range(6):  # ...while another store sells as usual
        stores["quiet"].post(
            "/api/v1/events",
            json={"trigger": "samcart.product_purchased", "payload": purchase(email=f"quiet{i}@example.com")},
        )

    def finished(client, count):
        entries = client.get("/api/v1/logs?page_size=200").json
        done = [e for e in entries if e["status"] not in ("queued", "running")]
        return entries if len(done) == count else None

    launch = wait_for(lambda: finished(stores["launch"], BURST), timeout=90, message="the burst did not finish")
    quiet = wait_for(lambda: finished(stores["quiet"], 6), timeout=10, message="the quiet store did not finish")
    assert {e["status"] for e in launch + quiet} == {"succeeded"}
    assert fake_circle.rate_limited_count == 0
    assert all(r.status != 429 for r in fake_circle.requests)
    # Fair, not first come first served: the quiet store's sales did not wait behind the burst.
    # (In one FIFO queue they would take as long as the whole burst.)
    assert span(quiet) < span(launch) / 2, (span(quiet), span(launch))


def span(entries) -> float:
    """Seconds from the first entry's creation to the last one's finish."""
    from datetime import datetime

    first = min(datetime.fromisoformat(e["created_at"]) for e in entries)
    last = max(datetime.fromisoformat(e["finished_at"]) for e in entries)
    return (last - first).total_seconds()
