"""Running a task's job in the test's own process, as the worker would (the first tier of RQ testing: the job
function called directly), for tests that only need a refresh done. tests/test_tasks.py runs them on real workers."""

from __future__ import annotations

from hookyard import runtime as runtime_module
from hookyard import taskjobs


def run_task_here(runtime, task_id: int, job=taskjobs.refresh_integration) -> str:
    """``job`` (a task kind's job function: a refresh by default) for ``task_id``, against the test's runtime."""
    previous = runtime_module._installed
    runtime_module.install(runtime)
    try:
        return job(task_id)
    finally:
        runtime_module.install(previous)


def refresh(client, runtime, integration_id: int, expect: str = "succeeded") -> dict:
    """POST …/refresh (202 and its task), its job run here; returns the task as it ended."""
    r = client.post(f"/api/v1/integrations/{integration_id}/refresh")
    assert r.status_code == 202, r.json
    assert r.headers["Location"] == f"/api/v1/tasks/{r.json['id']}"
    run_task_here(runtime, r.json["id"])
    task = client.get(r.headers["Location"]).json
    assert task["status"] == expect, task
    return task
