"""A rule's "Apply to past events" in the browser: the rule page links to it, the preview counts what would run
and what is skipped, Start shows the progress page (reloaded by the browser, no script) until a real worker has
made every run; a preview that reads SamCart's API, run by the worker and followed by the reloading page; and the
test client's checks: the prompt after enabling, refusals, cancel, another store's ids, the preview task's states."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from ..samcart.fixtures import SAMCART_API_KEY
from ..test_backfill import NOW, store_events
from .browser import checked


def samcart_with_past_orders(api, fake_samcart, count: int) -> None:
    """A SamCart connection with an API key, and ``count`` orders placed 5 days ago that SamCart never delivered."""
    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    product = fake_samcart.add_product("Community", price=4900)
    for i in range(count):
        placed = (NOW - timedelta(days=5, minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        customer = fake_samcart.add_customer(f"never{i}@example.com")
        fake_samcart.add_order(customer, [product], order_date=placed, created_at=placed)


def test_preview_then_start_a_small_backfill_and_follow_it_to_the_end(
    owner_page, setup, api, runtime, start_worker, recorder
):
    page = owner_page
    store_events(runtime, api.marketplace_id, 6)
    rule_id = setup.rule(setup.integration())
    setup.emit({"customer": {"email": "new@example.com"}, "product": {"id": "1001", "name": "Community"}})
    page.goto(f"/rules/{rule_id}/edit")
    page.get_by_role("link", name="Apply to past events…").click()
    expect(page).to_have_url(re.compile(f"/rules/{rule_id}/backfill$"))
    expect(page.get_by_role("heading", name="Apply to past events")).to_be_visible()
    preview = page.locator("#backfill-preview")
    expect(preview).to_contain_text("6 runs would be made")  # the stored past purchases; today's already ran
    expect(preview).to_contain_text("1 skipped: already run")
    expect(preview).to_contain_text("Stored events reach back to")
    checked(page, "rule-backfill")
    start_worker()
    page.get_by_role("button", name="Start: make 6 runs").click()
    expect(page).to_have_url(re.compile(f"/rules/{rule_id}/backfill/\\d+$"))
    expect(page.get_by_role("heading", name="Applying the rule to past events")).to_be_visible()
    runs = page.locator("#backfill-runs")
    expect(runs).to_contain_text("6 Succeeded", timeout=30_000)  # the page reloads itself until they are done
    expect(page.get_by_role("button", name="Cancel the backfill")).to_have_count(0)
    checked(page, "rule-backfill-progress")
    assert len(recorder.calls) == 7


def test_a_preview_reading_the_stores_api_is_followed_until_the_worker_has_counted(
    owner_page, setup, api, runtime, fake_samcart, start_worker
):
    page = owner_page
    store_events(runtime, api.marketplace_id, 4)
    rule_id = setup.rule(setup.integration())
    samcart_with_past_orders(api, fake_samcart, 3)
    page.goto(f"/rules/{rule_id}/backfill")
    preview = page.locator("#backfill-preview")
    expect(preview).to_contain_text("4 runs would be made")  # stored events only, counted at once
    box = page.get_by_label("Also read past events from Store's API first")
    expect(page.locator("form").filter(has=box)).to_contain_text("Preview reads the store's API too")
    box.check()
    page.get_by_role("button", name="Preview").click()
    expect(page).to_have_url(re.compile(f"/rules/{rule_id}/backfill\\?.*preview_task=\\d+"))
    status = preview.get_by_role("status")
    expect(status).to_contain_text("Reading the store's API… Waiting for a worker.")  # no worker yet
    expect(page.get_by_role("button", name="Cancel the preview")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Start"))).to_have_count(0)
    start_worker()
    # The page reloads itself (Refresh, no script) until the worker has read SamCart's API and counted.
    expect(preview).to_contain_text("3 were never received", timeout=30_000)
    expect(preview).to_contain_text("SamCart's API reports 3 past events of this rule in the range")
    expect(preview).to_contain_text("7 runs would be made")
    expect(page.get_by_role("button", name="Cancel the preview")).to_have_count(0)
    expect(box).to_be_checked()
    expect(page.get_by_role("button", name="Start: make 7 runs")).to_be_visible()
    checked(page, "rule-backfill-store-api-preview")


def test_the_prompt_refusals_cancel_and_another_stores_ids(owner, setup, api, make_client, runtime, recorder):
    store_events(runtime, api.marketplace_id, 5)
    rule_id = setup.rule(setup.integration(), enabled=False)
    response = owner.post(f"/rules/{rule_id}/toggle")
    assert response.status_code == 302
    page = owner.get(response.location)
    assert f'href="/rules/{rule_id}/backfill">Apply to past events…</a>' in page.text
    refused = owner.post(f"/rules/{rule_id}/backfill", data={"since": "2999-01-01", "until": "2999-01-02"})
    assert refused.status_code == 422 and "Must not be in the future" in refused.text
    far = owner.post(f"/rules/{rule_id}/backfill", data={"since": "0001-01-01", "until": "9999-12-31"})
    assert far.status_code == 200 and "Start: make 5 runs" in far.text  # "until" never reaches past now
    refused = owner.post(f"/rules/{rule_id}/backfill", data={"since": "soon", "until": ""})
    assert refused.status_code == 422 and "Choose a day" in refused.text
    from hookyard.models import utcnow

    today = utcnow().date().isoformat()
    started = owner.post(f"/rules/{rule_id}/backfill", data={"since": today, "until": "2000-01-01", "action": "start"})
    assert started.status_code == 422 and "Must be on or after the first day." in started.text  # nothing started
    started = owner.post(f"/rules/{rule_id}/backfill", data={"since": "2000-01-01", "until": today, "action": "start"})
    assert started.status_code == 302, started.text
    task_page = started.location
    page = owner.get(task_page)
    assert page.headers["Refresh"] == "2" and "Cancel the backfill" in page.text
    from .. import test_backfill

    test_backfill.run_backfill_here(runtime, int(task_page.rsplit("/", 1)[1]))
    page = owner.get(task_page)
    assert "Cancel the backfill" in page.text  # its runs are still queued: no worker here
    assert owner.post(task_page + "/cancel").status_code == 302
    page = owner.get(task_page)
    assert "Refresh" not in page.headers and "Cancelled: 5 queued runs skipped." in page.text
    other = make_client("store-b")
    from ..conftest import Setup

    theirs = Setup(other, recorder).rule(Setup(other, recorder).integration("Theirs"))
    assert owner.get(f"/rules/{theirs}/backfill").status_code == 404
    task_id = task_page.rsplit("/", 1)[1]
    assert owner.get(f"/rules/{theirs}/backfill/{task_id}").status_code == 404
    assert owner.post(f"/rules/{theirs}/backfill/{task_id}/cancel").status_code == 404


def test_a_store_api_preview_is_a_task_the_page_follows_cancels_and_refuses_for_others(
    owner, setup, api, make_client, runtime, fake_samcart, in_process, recorder
):
    from hookyard import backfill_jobs
    from hookyard.models import utcnow

    from ..conftest import Setup
    from ..tasking import run_task_here

    store_events(runtime, api.marketplace_id, 2)
    rule_id = setup.rule(setup.integration())
    samcart_with_past_orders(api, fake_samcart, 2)
    today = utcnow().date().isoformat()
    since = (utcnow() - timedelta(days=20)).date().isoformat()
    form = {"since": since, "until": today, "include_store_api": "true", "action": "preview"}
    plain = owner.post(f"/rules/{rule_id}/backfill", data={**form, "include_store_api": ""})
    assert plain.status_code == 200 and "Start: make 2 runs" in plain.text  # unchecked: stored events, at once

    def preview_task(response) -> tuple[str, int]:
        assert response.status_code == 303, response.text
        url = urlsplit(response.location)
        assert url.path == f"/rules/{rule_id}/backfill"
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert {k: query[k] for k in ("since", "until", "include_store_api")} == {
            "since": since,
            "until": today,
            "include_store_api": "true",
        }
        return response.location, int(query["preview_task"])

    location, task_id = preview_task(owner.post(f"/rules/{rule_id}/backfill", data=form))
    assert preview_task(owner.post(f"/rules/{rule_id}/backfill", data=form))[1] == task_id  # one at a time
    page = owner.get(location)
    assert page.status_code == 200 and page.headers["Refresh"] == "2"
    assert "Reading the store's API… Waiting for a worker." in page.text and 'role="status"' in page.text
    assert "Cancel the preview" in page.text and "Start: make" not in page.text
    assert f'value="{since}"' in page.text and f'value="{today}"' in page.text and " checked>" in page.text
    cancel = f"/rules/{rule_id}/backfill/preview/{task_id}/cancel"
    assert owner.post(cancel, csrf=False).status_code == 400  # CSRF as the page's other forms
    cancelled = owner.post(cancel)
    assert cancelled.status_code == 302 and cancelled.location == location
    page = owner.get(location)
    assert "Refresh" not in page.headers and "Cancelled before it started." in page.text
    assert "Cancel the preview" not in page.text and "Start: make" not in page.text

    # Again, its job run here as the worker would: the counts, the API's included, and Start.
    location, task_id = preview_task(owner.post(f"/rules/{rule_id}/backfill", data=form))
    assert run_task_here(runtime, task_id, backfill_jobs.preview_backfill) == "succeeded"
    page = owner.get(location)
    assert page.status_code == 200 and "Refresh" not in page.headers
    assert "SamCart's API reports 2 past events of this rule in the range;" in page.text
    assert "2 were never received (they are stored, then included, when you start)." in page.text
    assert "Start: make 4 runs" in page.text and "Cancel the preview" not in page.text
    started = owner.post(f"/rules/{rule_id}/backfill", data={**form, "action": "start"})
    assert started.status_code == 302 and re.search(f"/rules/{rule_id}/backfill/\\d+$", started.location)

    # A preview that fails (SamCart now refuses the key): its message, no Start.
    fake_samcart.add_api_key(SAMCART_API_KEY, allowed=False)
    location, failed_id = preview_task(owner.post(f"/rules/{rule_id}/backfill", data=form))
    assert run_task_here(runtime, failed_id, backfill_jobs.preview_backfill) == "failed"
    page = owner.get(location)
    assert "Refresh" not in page.headers and "Nothing was counted." in page.text and 'role="alert"' in page.text
    assert "Start: make" not in page.text

    # Another store's task, a task of another kind, another rule's preview, no task at all: 404.
    backfill_id = int(started.location.rsplit("/", 1)[1])
    other_rule = setup.rule(setup.integration("Other"), channel="other")
    other = make_client("store-b")
    theirs = Setup(other, recorder).rule(Setup(other, recorder).integration("Theirs"))
    r = other.post(
        f"/api/v1/rules/{theirs}/backfill", json={"since": f"{since}T00:00:00Z", "until": utcnow().isoformat()}
    )
    assert r.status_code == 202, r.json
    for rule, task in [(rule_id, r.json["id"]), (rule_id, backfill_id), (other_rule, task_id), (rule_id, 999999)]:
        query = f"since={since}&until={today}&include_store_api=true&preview_task={task}"
        assert owner.get(f"/rules/{rule}/backfill?{query}").status_code == 404, (rule, task)
        assert owner.post(f"/rules/{rule}/backfill/preview/{task}/cancel").status_code == 404, (rule, task)
    assert owner.get(f"/rules/{rule_id}/backfill?preview_task=soon").status_code == 404
