"""The Webhook plugin is a distribution of its own, found through its entry point like any third party's."""

from hookyard.plugins import load_registry


def test_it_loads_from_its_entry_point(plugin_site):
    registry = load_registry(disabled=set())
    assert registry.owner("app", "webhook") == "webhook"
    assert [a.key for a in registry.apps["webhook"].actions] == ["send_post"]
    assert registry.apps["webhook"].secret_fields == ("secret",)


def test_the_api_describes_its_fields(api):
    plugins = {p["name"]: p for p in api.get("/api/v1/plugins").json}
    assert plugins["webhook"]["apps"] == ["webhook"] and plugins["webhook"]["commands"] == ["webhook"]
    assert plugins["webhook"]["version"] == "0.1.0"
    app = api.get("/api/v1/apps/webhook").json
    fields = {f["name"]: f for f in app["config_fields"]}
    assert fields["url"]["required"] is True and fields["secret"]["secret"] is True
    assert fields["secret"]["required"] is False  # left out, it is generated
    [action] = app["actions"]
    assert (action["key"], action["label"]) == ("send_post", "Send a POST")
    assert [(f["name"], f["type"]) for f in action["params_fields"]] == [("fields", "array")]


def test_a_rule_with_a_malformed_path_is_refused_field_by_field(api, dns):
    dns["hooks.example.test"] = "93.184.215.14"
    r = api.post(
        "/api/v1/integrations",
        json={"app": "webhook", "name": "Hook", "config": {"url": "https://hooks.example.test/in"}},
    )
    assert r.status_code == 201, r.json
    r = api.post(
        "/api/v1/rules",
        json={
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": r.json["id"],
            "action": "send_post",
            "params": {"fields": ["customer.email", ".oops"]},
        },
    )
    assert r.status_code == 422, r.json
    assert "fields" in str(r.json["errors"]) and "dotted path" in str(r.json["errors"])
