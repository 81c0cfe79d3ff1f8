"""Structured logs (hookyard.logformat): one JSON object a line, with the ids of what was being done when it was
logged; X-Request-ID honoured and sent back; real worker and gunicorn processes printing nothing but JSON lines."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import pytest
import requests
from sqlalchemy import select

from hookyard import logformat
from hookyard.jobs import run_rule
from hookyard.models import Run

from .conftest import purchase
from .waiting import wait_for


def json_lines(text: str) -> list[dict]:
    """Every complete line of a process's output, each parsed as JSON (a line that is not JSON fails the test)."""
    complete = text[: text.rfind("\n") + 1]  # the process may be writing its next line right now
    parsed = []
    for line in complete.splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert parsed, "nothing was logged"
    return parsed


@pytest.fixture
def captured(caplog):
    """What the "hookyard" loggers write at INFO, formatted as a process's JSON handler formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logformat.JsonFormatter())
    handler.addFilter(logformat.ContextFilter())
    caplog.set_level(logging.INFO, logger="hookyard")
    logging.getLogger("hookyard").addHandler(handler)
    yield stream
    logging.getLogger("hookyard").removeHandler(handler)


# --- the format ----------------------------------------------------------------------------------------------------


def test_a_record_with_a_traceback_is_one_json_line_with_its_exc_info(captured):
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("hookyard.test").exception("it broke\non two lines")
    [line] = captured.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "hookyard.test"
    assert entry["message"] == "it broke\non two lines"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].rstrip().endswith("KeyError: 'missing'")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry["time"]
    assert list(entry)[:4] == ["time", "level", "logger", "message"]
    assert not any(name in entry for name in logformat.IDS)  # nothing bound: no id fields at all


def test_ids_are_bound_for_a_block_and_reset_after_it(captured):
    log = logging.getLogger("hookyard.test")
    with logformat.ids(run_id=7):
        logformat.bind(event_id=3)
        with logformat.ids(delivery_id=5):
            log.info("inner")
        log.info("outer", extra={"run_id": 99})  # what the caller passes wins
    log.info("after")
    inner, outer, after = (json.loads(line) for line in captured.getvalue().splitlines())
    assert (inner["run_id"], inner["event_id"], inner["delivery_id"]) == (7, 3, 5)
    assert (outer["run_id"], outer["event_id"]) == (99, 3) and "delivery_id" not in outer
    assert not any(name in after for name in logformat.IDS)  # bind()'s event_id went with its block
    with pytest.raises(TypeError, match="not a log id: store"):
        logformat.ids(store=1).__enter__()


def test_the_format_is_json_unless_the_operator_chooses_text():
    assert logformat.chosen({}) == "json" and logformat.chosen({"HOOKYARD_LOG_FORMAT": ""}) == "json"
    assert logformat.chosen({"HOOKYARD_LOG_FORMAT": " Text "}) == "text"
    with pytest.raises(SystemExit, match=r"^HOOKYARD_LOG_FORMAT must be one of json, text, got 'xml'$"):
        logformat.chosen({"HOOKYARD_LOG_FORMAT": "xml"})


def test_configure_writes_the_root_loggers_lines_once_however_often_it_is_called():
    root = logging.getLogger()
    before = (list(root.handlers), root.level, sys.excepthook)
    stream = io.StringIO()
    try:
        logformat.configure(io.StringIO(), "json")
        logformat.configure(stream, "json")  # replaces its first handler rather than adding a second
        logging.getLogger("rq.worker").info("a library's line")
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_hookyard", False)]:
            root.removeHandler(handler)
        root.setLevel(before[1])
        logging.captureWarnings(False)
        sys.excepthook = before[2]
    [entry] = json_lines(stream.getvalue())
    assert (entry["logger"], entry["message"]) == ("rq.worker", "a library's line")
    assert list(root.handlers) == before[0]


# --- a run's lines -------------------------------------------------------------------------------------------------


def test_the_lines_logged_while_a_run_is_processed_carry_its_run_and_event_ids(setup, runtime, in_process, captured):
    setup.rule(setup.integration())
    event = setup.emit(purchase())
    with runtime.db.session() as s:
        [run_id] = s.scalars(select(Run.id).where(Run.event_id == event["id"]))
    assert run_rule(run_id) == "succeeded"
    entries = [json.loads(line) for line in captured.getvalue().splitlines()]
    mine = [e for e in entries if e["logger"] == "hookyard.jobs"]
    assert mine and all((e["run_id"], e["event_id"]) == (run_id, event["id"]) for e in mine), entries
    assert any(f"run {run_id} succeeded" in e["message"] for e in mine), mine
    logging.getLogger("hookyard.test").info("afterwards")
    assert "run_id" not in json.loads(captured.getvalue().splitlines()[-1])


def test_the_lines_a_task_logs_while_it_runs_carry_its_task_id(api, runtime, captured):
    from hookyard import tasks

    with runtime.db.session() as s:
        task_id = tasks.start(runtime, s, api.marketplace_id, tasks.REFRESH, 1).id

    def work(session, task, progress):
        logging.getLogger("hookyard.test").info("working on %s", task.kind)
        return "Done."

    assert tasks.run(runtime, task_id, work) == "succeeded"
    working = [json.loads(line) for line in captured.getvalue().splitlines() if "working on" in line]
    assert [e["task_id"] for e in working] == [task_id]
    assert logformat.current("task_id") is None


# --- the web: X-Request-ID -----------------------------------------------------------------------------------------


def test_the_web_sends_back_the_callers_request_id_or_one_of_its_own(app, api):
    client = app.test_client()
    given = client.get("/healthz", headers={"X-Request-ID": "edge-4f2a.7_b"})
    assert given.status_code == 200 and given.headers["X-Request-ID"] == "edge-4f2a.7_b"
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(2)}
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)  # a new one for each request
    for malformed in ("two words", 'quo"te', "x" * 201, "line\tbreak", "é"):
        answer = client.get("/healthz", headers={"X-Request-ID": malformed})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"]), malformed
    # Error answers too: the API's 401 and 404, a refused query string, a route that does not exist.
    answers = {
        "e1": client.get("/api/v1/integrations", headers={"X-Request-ID": "e1"}),
        "e2": api.get("/api/v1/integrations/999999", headers={"X-Request-ID": "e2"}),
        "e3": client.get(
            "/api/v1/logs", environ_overrides={"QUERY_STRING": "q=\xed\xa0\x80"}, headers={"X-Request-ID": "e3"}
        ),
        "e4": client.get("/no/such/page", headers={"X-Request-ID": "e4"}),
    }
    assert {i: a.status_code for i, a in answers.items()} == {"e1": 401, "e2": 404, "e3": 400, "e4": 404}
    assert all(a.headers["X-Request-ID"] == i for i, a in answers.items())


def test_a_line_logged_while_a_request_is_served_carries_its_request_id(app, captured):
    @app.get("/probe")
    def probe():
        logging.getLogger("hookyard.probe").info("serving")
        return {"ok": True}

    answer = app.test_client().get("/probe")
    [entry] = [json.loads(line) for line in captured.getvalue().splitlines() if '"hookyard.probe"' in line]
    assert entry["request_id"] == answer.headers["X-Request-ID"]
    assert logformat.current("request_id") is None  # unbound when the request ended


# --- real processes ------------------------------------------------------------------------------------------------


def test_a_worker_prints_only_json_lines_and_its_run_lines_name_the_run(setup, api, start_worker, tmp_path):
    start_worker()
    setup.rule(setup.integration())
    event = setup.emit(purchase())

    def run_logged():
        runs = api.get(f"/api/v1/events/{event['id']}").json["runs"]
        if not runs or runs[0]["status"] != "succeeded":
            return None
        text = (tmp_path / "worker-0.log").read_text()
        return runs[0]["id"] if f"run {runs[0]['id']} succeeded" in text else None

    run_id = wait_for(run_logged, timeout=30, message="the worker did not run and log the event's run")
    entries = json_lines((tmp_path / "worker-0.log").read_text())
    assert {"rq.worker", "hookyard.jobs"} <= {e["logger"] for e in entries}
    [done] = [e for e in entries if e["message"].startswith(f"run {run_id} succeeded")]
    assert (done["run_id"], done["event_id"], done["level"]) == (run_id, event["id"], "INFO")


def test_gunicorn_prints_only_json_lines_its_access_lines_with_the_request_id_and_a_masked_path(start_web, tmp_path):
    url = start_web()
    inbound = "/hooks/inbox/" + "K" * 43
    answer = requests.post(url + inbound, json={}, headers={"X-Request-ID": "smoke-1"}, timeout=30)
    assert answer.status_code == 404 and answer.headers["X-Request-ID"] == "smoke-1"
    log = tmp_path / "web-0.log"
    wait_for(lambda: '"smoke-1"' in log.read_text(), message="no access line for the request")
    text = log.read_text()
    entries = json_lines(text)
    assert "K" * 43 not in text
    [access] = [e for e in entries if e.get("request_id") == "smoke-1" and e["logger"] == "gunicorn.access"]
    assert (access["method"], access["path"], access["status"]) == ("POST", "/hooks/inbox/KKKK…", 404)
    assert access["duration_ms"] >= 0 and access["message"] == "POST /hooks/inbox/KKKK… 404"
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in entries)
