"""`hookyard rules backfill --include-store-api`: the counts come from the rule's preview task, which a real worker
runs against the fake SamCart (a real HTTP server): followed on stderr, printed with what the store's API reports,
nothing stored or run by a preview; a refusal, an unreachable Redis and Ctrl-C each end the command with the
reason, and a start then backfills what the preview counted."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hookyard.models import Event, Run, Task

from .conftest import worker_env
from .test_backfill import NOW, SINCE, cli, store_events

PREVIEW_KIND = "rule.backfill_preview"


def samcart_connection(api) -> dict:
    from .samcart.fixtures import SAMCART_API_KEY

    r = api.post(
        "/api/v1/integrations", json={"app": "samcart", "name": "Store", "config": {"api_key": SAMCART_API_KEY}}
    )
    assert r.status_code == 201, r.json
    return r.json


def past_orders(fake_samcart, count: int) -> None:
    """``count`` orders placed five days ago in SamCart that never reached the Notify URL."""
    product = fake_samcart.add_product("Community", price=4900)
    placed = (NOW - timedelta(days=5)).strftime("%Y-%m-%d %H:%M:%S")
    for i in range(count):
        customer = fake_samcart.add_customer(f"api{i}@example.com")
        fake_samcart.add_order(customer, [product], order_date=placed, created_at=placed)


def stored(runtime) -> tuple[int, int]:
    with runtime.db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Event)),
            session.scalar(select(func.count()).select_from(Run)),
        )


def preview_tasks(runtime) -> list[tuple[str, str]]:
    with runtime.db.session() as session:
        return [
            (t.status, t.message)
            for t in session.scalars(select(Task).where(Task.kind == PREVIEW_KIND).order_by(Task.id))
        ]


def range_args(rule_id) -> list[str]:
    return [str(rule_id), "--since", SINCE.isoformat(), "--until", datetime.now(timezone.utc).isoformat()]


def store_api_preview_command(rule_id) -> list[str]:
    """The command line of a preview that reads the store's API, for a test that runs it with its own process
    options (another environment, or signalled while it waits)."""
    hookyard = str(Path(sys.executable).parent / "hookyard")
    return [hookyard, "rules", "backfill", *range_args(rule_id), "--preview", "--include-store-api"]


@pytest.mark.e2e
def test_a_preview_with_the_store_api_prints_what_the_api_adds_and_stores_nothing_then_a_start_runs_it(
    setup, api, runtime, settings, plugin_site, fake_samcart, start_worker, recorder
):
    samcart_connection(api)
    store_events(runtime, api.marketplace_id, 2)  # received before the rule existed: it never ran for them
    past_orders(fake_samcart, 3)
    rule_id = setup.rule(setup.integration())
    start_worker()  # after fake_samcart: it reads SAMCART_API_BASE_URL from the environment it is given
    before = stored(runtime)

    shown = cli(settings, plugin_site, *range_args(rule_id), "--preview", "--include-store-api")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"rule {rule_id}: 5 past events in range, 5 would run, 0 already run;"), shown
    assert shown.stdout.rstrip().endswith(
        "; the store's API reports 3 past events of this rule in the range, 3 never received"
    ), shown.stdout
    assert len(shown.stdout.splitlines()) == 1, shown.stdout
    assert "preview task" in shown.stderr, shown.stderr  # its progress goes to stderr, one line per message
    assert stored(runtime) == before  # a preview stores no event and makes no run
    assert [status for status, _ in preview_tasks(runtime)] == ["succeeded"]

    # Without --preview: the same counts, the confirmation asks for the total, and "no" starts nothing.
    declined = subprocess.run(
        [str(Path(sys.executable).parent / "hookyard"), "rules", "backfill", *range_args(rule_id)]
        + ["--include-store-api"],
        input="n\n",
        capture_output=True,
        text=True,
        env=worker_env(settings, plugin_site),
        timeout=60,
        check=False,
    )
    assert declined.returncode != 0, declined
    assert f"Create 5 runs of rule {rule_id}? [y/N]" in declined.stdout, declined.stdout
    assert stored(runtime) == before

    # --yes: the backfill reads the API again, stores the 3 orders and runs the rule for all 5.
    done = cli(settings, plugin_site, *range_args(rule_id), "--include-store-api", "--yes")
    assert done.returncode == 0, done.stderr
    assert "3 never received" in done.stdout.splitlines()[0], done.stdout
    assert done.stdout.rstrip().endswith("runs: 5 succeeded, 0 skipped, 0 failed"), done.stdout
    emails = sorted(c["email"] for c in recorder.calls)
    assert emails == sorted([f"api{i}@example.com" for i in range(3)] + ["buyer0@example.com", "buyer1@example.com"])
    assert stored(runtime) == (before[0] + 3, before[1] + 5)


@pytest.mark.e2e
def test_a_refused_api_key_fails_the_preview_and_the_command_says_why(
    setup, api, runtime, settings, plugin_site, fake_samcart, start_worker
):
    from .samcart.fixtures import SAMCART_API_KEY

    samcart_connection(api)
    past_orders(fake_samcart, 2)
    rule_id = setup.rule(setup.integration())
    fake_samcart.add_api_key(SAMCART_API_KEY, allowed=False)  # revoked since the connection was made: 403
    start_worker()
    before = stored(runtime)
    for extra in (["--preview"], ["--yes"]):
        failed = cli(settings, plugin_site, *range_args(rule_id), "--include-store-api", *extra)
        assert failed.returncode == 1, failed
        assert failed.stdout == "", failed.stdout  # no counts, no start
        assert "Error: “Store”: SamCart refused the API key (HTTP 403" in failed.stderr, failed.stderr
        assert failed.stderr.rstrip().endswith("Nothing was counted."), failed.stderr
    assert [status for status, _ in preview_tasks(runtime)] == ["failed", "failed"]
    assert stored(runtime) == before


def test_an_unreachable_redis_fails_the_preview_before_it_is_queued(
    setup, api, runtime, settings, plugin_site, fake_samcart
):
    from hookyard.localredis import free_port

    rule_id = setup.rule(setup.integration())
    samcart_connection(api)
    shown = subprocess.run(
        store_api_preview_command(rule_id),
        capture_output=True,
        text=True,
        env=worker_env(settings, plugin_site, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"),
        timeout=60,
        check=False,
    )
    assert shown.returncode == 1, shown
    assert "Error: It could not be queued: the job queue (Redis) is unreachable." in shown.stderr, shown.stderr
    assert shown.stdout == ""


def test_ctrl_c_while_the_preview_waits_for_a_worker_cancels_it_and_exits_130(
    setup, api, runtime, settings, plugin_site, fake_samcart
):
    rule_id = setup.rule(setup.integration())
    samcart_connection(api)
    proc = subprocess.Popen(
        store_api_preview_command(rule_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=worker_env(settings, plugin_site),
    )
    try:
        lines = []
        for line in proc.stderr:  # no worker: it stays queued; this line is printed while the CLI follows it
            lines.append(line)
            if line.strip() == "Waiting for a worker.":
                break
        assert lines and lines[-1].strip() == "Waiting for a worker.", lines
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "cancelled: Cancelled before it started." in err, err
    assert out == ""
    assert preview_tasks(runtime) == [("cancelled", "Cancelled before it started.")]
