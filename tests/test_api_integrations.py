"""Integrations: verified before saving, secrets write-only, refresh, options, delete disables rules."""

import logging

from sqlalchemy import func, select

from hookyard.models import Integration

from .recorder import TOKEN
from .tasking import refresh


def body(recorder, **overrides):
    return {"app": "recorder", "name": "Main", "config": {"endpoint": recorder.url, "token": TOKEN}, **overrides}


def test_create_verifies_then_saves_with_the_secret_masked(api, recorder, runtime):
    r = api.post("/api/v1/integrations", json=body(recorder))
    assert r.status_code == 201, r.json
    assert r.json["config"] == {"endpoint": recorder.url, "token": "********"}
    assert r.json["status"] == "connected" and r.json["verified_at"] and r.json["refreshed_at"] is None
    assert ("GET", "/verify") in recorder.requests
    with runtime.db.session() as s:
        row = s.get(Integration, r.json["id"])
        assert TOKEN not in row.secrets and TOKEN not in str(row.config)  # encrypted at rest
        assert runtime.secret_box.open(row.secrets) == {"token": TOKEN}


def test_a_rejected_credential_is_a_422_naming_the_field_and_saves_nothing(api, recorder, runtime):
    r = api.post("/api/v1/integrations", json=body(recorder, config={"endpoint": recorder.url, "token": "wrong"}))
    assert r.status_code == 422
    assert r.json["message"] == "The recorder rejected this token."
    assert r.json["errors"]["json"]["config"]["token"] == ["The recorder rejected this token."]
    with runtime.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Integration)) == 0


def test_unreachable_host_is_a_clear_422(api, runtime):
    r = api.post(
        "/api/v1/integrations",
        json={"app": "recorder", "name": "x", "config": {"endpoint": "http://127.0.0.1:9", "token": "t"}},
    )
    assert r.status_code == 422
    assert "unreachable" in r.json["message"]


def test_unknown_app_missing_config_and_duplicate_name_are_field_errors(api, recorder):
    r = api.post("/api/v1/integrations", json=body(recorder, app="nope"))
    assert r.status_code == 422 and "app" in r.json["errors"]["json"]
    r = api.post("/api/v1/integrations", json=body(recorder, config={"endpoint": "not a url"}))
    assert r.status_code == 422
    assert set(r.json["errors"]["json"]["config"]) == {"endpoint", "token"}
    assert api.post("/api/v1/integrations", json=body(recorder)).status_code == 201
    r = api.post("/api/v1/integrations", json=body(recorder))
    assert r.status_code == 422 and "name" in r.json["errors"]["json"]


def test_secrets_never_come_back_and_never_reach_the_log(api, recorder, runtime, caplog):
    caplog.set_level(logging.DEBUG)
    created = api.post("/api/v1/integrations", json=body(recorder)).json
    task = refresh(api, runtime, created["id"])  # the worker's side of a refresh logs nothing secret either
    responses = [
        api.get("/api/v1/integrations"),
        api.get(f"/api/v1/integrations/{created['id']}"),
        api.patch(f"/api/v1/integrations/{created['id']}", json={"name": "Renamed"}),
        api.get(f"/api/v1/tasks/{task['id']}"),
    ]
    for r in responses:
        assert r.status_code == 200, r.json
        assert TOKEN not in r.get_data(as_text=True)
    assert TOKEN not in caplog.text


def test_edit_keeps_an_omitted_secret_and_reverifies_a_changed_one(api, recorder, runtime):
    iid = api.post("/api/v1/integrations", json=body(recorder)).json["id"]
    r = api.patch(f"/api/v1/integrations/{iid}", json={"config": {"endpoint": recorder.url}})
    assert r.status_code == 200, r.json
    r = api.patch(f"/api/v1/integrations/{iid}", json={"config": {"token": "********"}})
    assert r.status_code == 200, r.json  # the mask sent back means "unchanged"
    r = api.patch(f"/api/v1/integrations/{iid}", json={"config": {"token": "wrong"}})
    assert r.status_code == 422
    # the rejected edit changed nothing: a refresh still works with the old token
    refresh(api, runtime, iid)


def test_refresh_loads_options_and_options_are_served_from_the_cache(api, recorder, runtime):
    iid = api.post("/api/v1/integrations", json=body(recorder)).json["id"]
    r = api.get(f"/api/v1/integrations/{iid}/options")  # never loaded: a refresh task starts, nothing waits
    assert r.status_code == 202 and r.headers["Location"] == f"/api/v1/tasks/{r.json['id']}", r.json
    assert ("GET", "/options") not in recorder.requests
    assert api.get(f"/api/v1/integrations/{iid}/options").json["id"] == r.json["id"]  # the same task
    from .tasking import run_task_here

    run_task_here(runtime, r.json["id"])
    r = api.get(f"/api/v1/integrations/{iid}/options")
    assert r.status_code == 200
    assert r.json == recorder.options and r.headers["Last-Modified"]
    loads = recorder.requests.count(("GET", "/options"))
    api.get(f"/api/v1/integrations/{iid}/options")
    assert recorder.requests.count(("GET", "/options")) == loads
    recorder.options = {"channels": [{"id": "new", "name": "New"}]}
    refresh(api, runtime, iid)
    assert api.get(f"/api/v1/integrations/{iid}").json["refreshed_at"]
    assert api.get(f"/api/v1/integrations/{iid}/options").json == recorder.options


def test_a_failed_refresh_marks_the_connection_as_needing_attention(api, recorder, runtime):
    iid = api.post("/api/v1/integrations", json=body(recorder)).json["id"]
    with runtime.db.session() as s:  # the key was revoked on the app's side
        row = s.get(Integration, iid)
        row.secrets = runtime.secret_box.seal({"token": "revoked"})
        s.commit()
    task = refresh(api, runtime, iid, expect="failed")
    assert task["message"] == "The recorder rejected this token." and task["finished_at"]
    shown = api.get(f"/api/v1/integrations/{iid}").json
    assert shown["status"] == "needs_attention" and shown["status_reason"] == "The recorder rejected this token."


def test_verify_warnings_are_shown_apart_from_info_and_malformed_ones_dropped(
    api, recorder, runtime, monkeypatch, caplog
):
    from dataclasses import replace

    app = runtime.registry.apps["recorder"]
    warned = {"account": "test", "warnings": [{"code": "odd", "message": "Worth a look."}, {"code": 1}, "text"]}
    monkeypatch.setitem(runtime.registry.apps, "recorder", replace(app, verify=lambda config: dict(warned)))
    r = api.post("/api/v1/integrations", json=body(recorder))
    assert r.status_code == 201, r.json
    assert r.json["warnings"] == [{"code": "odd", "message": "Worth a look."}]
    assert r.json["info"] == {"account": "test"}
    assert "app recorder returned malformed warnings" in caplog.text
    # A verify without warnings (the next edit or refresh) clears them.
    monkeypatch.setitem(runtime.registry.apps, "recorder", app)
    iid = r.json["id"]
    refresh(api, runtime, iid)
    assert api.get(f"/api/v1/integrations/{iid}").json["warnings"] == []


def test_delete_disables_the_rules_that_used_it(setup, api, runtime):
    iid = setup.integration()
    rule = setup.rule(iid)
    r = api.delete(f"/api/v1/integrations/{iid}")
    assert r.status_code == 200 and r.json == {"id": iid, "disabled_rules": [rule]}
    assert api.get(f"/api/v1/integrations/{iid}").status_code == 404
    shown = api.get(f"/api/v1/rules/{rule}").json
    assert shown["enabled"] is False and shown["integration_id"] is None


def test_apps_list_their_config_fields_and_actions(api):
    apps = {a["key"]: a for a in api.get("/api/v1/apps").json}
    recorder = apps["recorder"]
    assert {f["name"]: f.get("secret", False) for f in recorder["config_fields"]} == {"endpoint": False, "token": True}
    action = recorder["actions"][0]
    assert action["key"] == "record"
    assert {f["name"]: f.get("options") for f in action["params_fields"]}["channel"] == "channels"
    assert api.get("/api/v1/apps/recorder").json == recorder
    assert api.get("/api/v1/apps/nope").status_code == 404
