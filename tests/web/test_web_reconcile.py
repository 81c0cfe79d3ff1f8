"""Check access in the browser: the Circle integration's page starts a check, the report page reloads itself (no
script) until a real worker has read the fake Circle, then shows the counts, each person's reason and the
checkboxes; "Fix selected" and "Fix all" queue runs and the report links to them. And the test client's checks:
refusals, viewers, another store's ids."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from ..test_reconcile import T0, Store, all_finished, email
from .browser import checked


def seed(store: Store) -> None:
    for n in range(4):
        store.event("subscription_started", email(n), T0 + timedelta(minutes=n), order=2000 + n)
    store.event("product_refunded", email(3), T0 + timedelta(days=9), order=2003)
    fake = store.fake
    fake.add_member(email(0), space_ids=[store.space], member_tag_ids=[store.tag])
    fake.add_member(email(1), member_tag_ids=[store.tag])  # removed from the space by hand
    fake.add_member(email(3), space_ids=[store.space], member_tag_ids=[store.tag])  # refunded, still in
    fake.add_member("staff@example.com", space_ids=[store.space])  # no rule put them there
    store.enable()


def test_check_access_then_fix_selected_and_all_from_the_report(owner_page, api, runtime, fake_circle, circle_worker):
    page = owner_page
    store = Store(api, runtime, fake_circle)
    seed(store)
    circle_worker()
    page.goto(f"/integrations/{store.iid}")
    page.get_by_role("button", name="Check access").click()
    expect(page).to_have_url(re.compile(r"/reconcile-reports/\d+$"))
    expect(page.get_by_role("heading", name=re.compile("Access check"))).to_contain_text("Ready", timeout=30_000)
    counts = page.locator("[data-counts]")
    expect(counts.locator("[data-kind=missing]")).to_have_text("4")  # email 1's space; email 2's three
    expect(counts.locator("[data-kind=should_be_gone]")).to_have_text("1")
    expect(counts.locator("[data-kind=untouched]")).to_have_text("2")  # staff: the community and the space
    table = page.get_by_role("table", name="Differences")
    expect(table).to_contain_text("Product Refunded on 2026-10-10 (Membership, order 2003) but still in the community")
    expect(table).to_contain_text(
        "Subscription Started on 2026-10-01 (Membership, order 2001) but not in space Members"
    )
    checked(page, "reconcile-report")
    page.get_by_role("checkbox", name=f"Fix {email(3)} (Should be gone)").check()
    page.get_by_role("button", name="Fix selected").click()
    expect(page.get_by_role("status").first).to_contain_text("1 fix queued as runs")
    page.get_by_role("button", name="Fix all (4)").click()
    expect(page.get_by_role("status").first).to_contain_text("2 fixes queued as runs")
    links = page.get_by_role("link", name=re.compile(r"^run #\d+$"))
    expect(links).to_have_count(5)  # email 2's three differences share one run
    run_ids = sorted({int(text.removeprefix("run #")) for text in links.all_inner_texts()})
    assert len(run_ids) == 3
    assert all_finished_eventually(runtime, run_ids)
    assert fake_circle.member(email(3)) is None and store.space in fake_circle.member(email(2))["spaces"]
    assert fake_circle.member("staff@example.com")["spaces"] == {store.space}  # left alone
    page.get_by_role("link", name=f"run #{run_ids[0]}").first.click()
    expect(page).to_have_url(re.compile(rf"/logs/{run_ids[0]}$"))


def all_finished_eventually(runtime, run_ids) -> bool:
    from ..waiting import wait_for

    return wait_for(lambda: all_finished(runtime, run_ids), timeout=30, message="the fixes did not finish")


def test_refusals_viewers_and_another_stores_report(owner, api, runtime, fake_circle, make_client):
    from .session import WebClient, add_user

    store = Store(api, runtime, fake_circle)
    # No governing rule enabled yet: the check is refused with the reason, nothing started.
    refused = owner.post(f"/integrations/{store.iid}/reconcile")
    assert refused.status_code == 302
    assert "No enabled rule" in owner.get(refused.location).text
    seed(store)
    started = owner.post(f"/integrations/{store.iid}/reconcile")
    assert started.status_code == 302 and re.search(r"/reconcile-reports/\d+$", started.location)
    running = owner.get(started.location)
    assert running.status_code == 200 and running.headers["Refresh"] == "2"
    add_user(runtime, "viewer@example.com", "viewer")
    viewer = WebClient(owner.client.application).sign_in("viewer@example.com")
    assert viewer.get(started.location).status_code == 200
    assert viewer.post(started.location + "/fix", data={"all": "1"}).status_code == 403
    add_user(runtime, "other@example.com", "owner", marketplace="store-b")
    other = WebClient(owner.client.application).sign_in("other@example.com")
    assert other.get(started.location).status_code == 404
    assert other.post(started.location + "/fix", data={"all": "1"}).status_code == 404
    assert other.post(f"/integrations/{store.iid}/reconcile").status_code == 404
