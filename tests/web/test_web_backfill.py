"""A rule's "Apply to past events" in the browser: the rule page links to it, the preview counts what would run
and what is skipped, Start shows the progress page (reloaded by the browser, no script) until a real worker has
made every run; and the test client's checks: the prompt after enabling, refusals, cancel, another store's ids."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from ..test_backfill import store_events
from .browser import checked


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
