"""Tasks (GET /api/v1/tasks/{id}): a refresh answers 202 at once and runs in a real worker, queued → running →
succeeded with its progress visible; a second click gets the same task; cancel stops it; a dead worker's task does
not stay running; another store's task is a 404; no Redis is a 503, not a task stuck in "queued"."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import update

from hookyard import tasks
from hookyard.app import create_app
from hookyard.jobqueue import queued_count
from hookyard.localredis import free_port
from hookyard.models import Task, utcnow
from hookyard.runtime import build_runtime

from .conftest import ApiClient
from .processes import kill_tree
from .tasking import run_task_here
from .waiting import wait_for

FINAL = ("succeeded", "failed", "cancelled")
FIELDS = {"id", "kind", "status", "done", "total", "message", "params", "result", "created_at", "finished_at"}


def start_refresh(api, iid):
    r = api.post(f"/api/v1/integrations/{iid}/refresh")
    assert r.status_code == 202, r.json
    assert r.headers["Location"] == f"/api/v1/tasks/{r.json['id']}" and int(r.headers["Retry-After"]) > 0
    return r.json


def task_of(api, task_id):
    r = api.get(f"/api/v1/tasks/{task_id}")
    assert r.status_code == 200, r.json
    return r.json


def finished(api, task_id, timeout=60):
    return wait_for(
        lambda: (t := task_of(api, task_id))["status"] in FINAL and t,
        timeout=timeout,
        message=f"task {task_id} did not finish",
    )


def test_a_refresh_runs_in_the_worker_with_its_progress_and_a_second_click_gets_the_same_task(
    circle, fake_circle, api, runtime, circle_worker
):
    for i in range(400):
        fake_circle.add_space(f"Space {i}")  # 402 spaces: five pages of them
    iid = circle.connect()
    fake_circle.reset_requests()
    task = start_refresh(api, iid)
    assert set(task) == FIELDS
    assert (task["kind"], task["status"], task["done"], task["total"], task["finished_at"]) == (
        "integration.refresh",
        "queued",
        0,
        None,
        None,
    )
    assert fake_circle.requests == []  # the request itself called nobody
    assert start_refresh(api, iid)["id"] == task["id"]  # the second click, while it is queued
    assert queued_count(runtime) == 1  # and still one job

    fake_circle.set_latency(0.3)  # each page takes a while, so the progress between pages can be watched
    circle_worker(CIRCLE_TIMEOUT="30")  # not the 1 s read timeout: a loaded machine answers a page late
    running = wait_for(
        lambda: (
            (t := task_of(api, task["id"]))["status"] == "running" and t["total"] and 0 < t["done"] < t["total"] and t
        ),
        timeout=60,
        message="no progress was shown",
    )
    assert running["total"] == 402 + 2 + 2 + 2  # the first page of each list announced the counts
    assert start_refresh(api, iid)["id"] == task["id"]  # a click while it runs
    done = finished(api, task["id"])
    assert done["status"] == "succeeded", done
    assert (done["done"], done["total"]) == (408, 408) and done["finished_at"]
    assert "402 spaces" in done["message"]
    assert len(api.get(f"/api/v1/integrations/{iid}/options").json["spaces"]) == 402
    assert len(fake_circle.requests_for("GET", "/community")) == 1  # one job ran, once
    assert start_refresh(api, iid)["id"] != task["id"]  # once it has ended, a click starts a new one


def test_simultaneous_clicks_start_one_task(circle, api, app, runtime):
    iid = circle.connect()
    clients = [ApiClient(app, api.token, api.marketplace_id) for _ in range(4)]
    barrier, answers = threading.Barrier(len(clients)), []

    def click(client):
        barrier.wait()
        answers.append(client.post(f"/api/v1/integrations/{iid}/refresh"))

    threads = [threading.Thread(target=click, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [202] * 4, [r.json for r in answers]
    assert len({r.json["id"] for r in answers}) == 1
    assert queued_count(runtime) == 1


def test_cancel_stops_a_running_refresh_at_its_next_page(circle, fake_circle, api, runtime, circle_worker):
    for i in range(1000):
        fake_circle.add_space(f"Space {i}")  # ten pages of spaces
    iid = circle.connect()
    fake_circle.set_latency(0.3)
    # The latency keeps the refresh going long enough to be cancelled; the 1 s read timeout of the other Circle
    # tests would fail it instead whenever a loaded machine answers a page a little late (seen in a full run).
    circle_worker(CIRCLE_TIMEOUT="30")
    task = start_refresh(api, iid)
    wait_for(lambda: task_of(api, task["id"])["done"] > 0, timeout=60, message="the refresh did not start")
    r = api.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200 and r.json["status"] in ("running", "cancelled"), r.json
    ended = finished(api, task["id"])
    assert ended["status"] == "cancelled" and ended["done"] < ended["total"], (ended["message"], ended)
    pages = len(fake_circle.requests_for("GET", "/spaces"))
    assert pages < 10  # it stopped before the last page
    integration = api.get(f"/api/v1/integrations/{iid}").json
    assert integration["refreshed_at"] is None  # nothing half-loaded was saved
    assert api.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 200  # cancelling again: no change
    # Nothing goes on in the background: a new refresh runs to the end and loads every page.
    fake_circle.set_latency(0)
    again = start_refresh(api, iid)
    assert again["id"] != task["id"] and finished(api, again["id"])["status"] == "succeeded"
    assert len(api.get(f"/api/v1/integrations/{iid}/options").json["spaces"]) == 1002


def test_a_queued_task_is_cancelled_at_once_and_its_job_never_runs(circle, fake_circle, api, runtime):
    iid = circle.connect()
    task = start_refresh(api, iid)
    r = api.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert r.status_code == 200 and r.json["status"] == "cancelled" and r.json["finished_at"], r.json
    job = Job.fetch(tasks.job_id(task["id"]), connection=runtime.redis, serializer=JSONSerializer)
    assert job.get_status() == "canceled" and queued_count(runtime) == 0
    assert run_task_here(runtime, task["id"]) == "not claimed"  # even if a worker got it, it would do nothing
    assert task_of(api, task["id"])["status"] == "cancelled"
    finished_task = start_refresh(api, iid)
    run_task_here(runtime, finished_task["id"])
    r = api.post(f"/api/v1/tasks/{finished_task['id']}/cancel")
    assert r.status_code == 409 and "already succeeded" in r.json["message"], r.json


def test_another_stores_task_is_a_404_and_stays_as_it_was(circle, api, make_client, runtime):
    iid = circle.connect()
    task = start_refresh(api, iid)
    other = make_client("store-b")
    for r in (
        other.get(f"/api/v1/tasks/{task['id']}"),
        other.post(f"/api/v1/tasks/{task['id']}/cancel"),
        other.get("/api/v1/tasks/2147483647"),
        other.post(f"/api/v1/integrations/{iid}/refresh"),
    ):
        assert r.status_code == 404 and r.json["code"] == 404 and r.json["message"], r.json
    assert task_of(api, task["id"]) == task


def test_a_task_whose_worker_was_killed_is_given_up_and_can_be_started_again(
    circle, fake_circle, api, runtime, circle_worker
):
    iid = circle.connect()
    fast_recovery = dict(HOOKYARD_LEASE_TTL="2", HOOKYARD_SWEEP_INTERVAL="1")
    fake_circle.set_latency(60)  # the refresh hangs on Circle, then its worker dies
    worker = circle_worker(**fast_recovery)
    task = start_refresh(api, iid)
    wait_for(lambda: task_of(api, task["id"])["status"] == "running", timeout=30, message="it did not start")
    kill_tree(worker.pid)
    lease = tasks.lease_key(runtime, task["id"])
    wait_for(lambda: not runtime.redis.exists(lease), timeout=30, message="the lease did not lapse")
    fake_circle.set_latency(0)
    circle_worker(**fast_recovery)  # its sweep finds the task running without a lease
    ended = finished(api, task["id"])
    assert ended["status"] == "failed" and "worker stopped" in ended["message"], ended
    again = start_refresh(api, iid)
    assert again["id"] != task["id"] and finished(api, again["id"])["status"] == "succeeded"


def test_a_click_after_a_dead_worker_starts_afresh_without_waiting_for_the_sweep(circle, api, runtime):
    iid = circle.connect()
    task = start_refresh(api, iid)
    long_ago = utcnow() - timedelta(seconds=runtime.settings.lease_ttl * 3)
    with runtime.db.session() as s:  # claimed by a worker that then vanished: running, and no lease in Redis
        s.execute(update(Task).where(Task.id == task["id"]).values(status="running", started_at=long_ago))
        s.commit()
    again = start_refresh(api, iid)
    assert again["id"] != task["id"]
    old = task_of(api, task["id"])
    assert old["status"] == "failed" and "worker stopped" in old["message"], old


def test_without_redis_a_refresh_is_a_503_and_no_task_is_left_queued(circle, api, settings, runtime):
    iid = circle.connect()
    no_redis = build_runtime(
        dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"), registry=runtime.registry
    )
    client = ApiClient(create_app(runtime=no_redis), api.token, api.marketplace_id)
    for path in (f"/api/v1/integrations/{iid}/refresh", f"/api/v1/integrations/{iid}/options"):
        r = client.post(path) if path.endswith("refresh") else client.get(path)
        assert r.status_code == 503 and r.headers["Retry-After"] and "Redis" in r.json["message"], r.json
    with runtime.db.session() as s:
        assert {t.status for t in s.query(Task)} == {"failed"}
    assert start_refresh(api, iid)["status"] == "queued"  # with Redis back, the next click works
    no_redis.db.dispose()


def test_the_sweep_queues_again_a_task_whose_job_was_lost_and_prunes_old_ones(circle, api, runtime):
    iid = circle.connect()
    task = start_refresh(api, iid)
    runtime.redis.flushdb()  # Redis restarted empty: the job is gone, the task still says queued
    now = utcnow()
    with runtime.db.session() as s:
        s.execute(
            update(Task)
            .where(Task.id == task["id"])
            .values(created_at=now - timedelta(seconds=runtime.settings.sweep_interval * 2))
        )
        s.add(
            Task(
                marketplace_id=api.marketplace_id,
                kind=tasks.REFRESH,
                target_id=iid,
                status="succeeded",
                message="long ago",
                created_at=now - timedelta(days=9),
                finished_at=now - timedelta(days=8),
            )
        )
        s.commit()
    assert tasks.sweep(runtime) == {"given_up": 0, "requeued": 1, "pruned": 1}
    assert queued_count(runtime) == 1
    assert run_task_here(runtime, task["id"]) == "succeeded"
    assert tasks.sweep(runtime) == {"given_up": 0, "requeued": 0, "pruned": 0}
