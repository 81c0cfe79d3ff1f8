"""Inputs that once answered 500 (issue 9 §4): each is now a 4xx naming the field, and nothing is stored.

The limits live in one place, hookyard.inputs, applied to every JSON body as it is parsed, to every BaseSchema
(body, query string, headers) and to every trigger payload in emit.validate_payload, whatever the plugin's
schema; see docs/api.md#errors."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from marshmallow import Schema, ValidationError, fields
from sqlalchemy import func, select

from hookyard import inputs
from hookyard.api.events import EmitSchema
from hookyard.contract import TriggerType
from hookyard.emit import validate_payload
from hookyard.models import Event, Integration, Product, Rule, Run

from .conftest import purchase
from .recorder import TOKEN
from .web.session import WebClient, add_user

SURROGATE = "\ud800"
NESTING = "Nested too deeply: at most 32 levels of objects and arrays."


def stored(runtime) -> dict:
    with runtime.db.session() as s:
        return {
            m.__name__: s.scalar(select(func.count()).select_from(m)) for m in (Event, Run, Product, Integration, Rule)
        }


def post_json(api, path, body: str, method="post"):
    """Sends the JSON text as it is: json.dumps itself could not encode 900 levels, nor keep a 5,000-digit number."""
    return getattr(api, method)(path, data=body, content_type="application/json")


def error_at(response, *path):
    assert response.status_code == 422, response.text
    assert response.json["code"] == 422 and response.json["message"]
    node = response.json["errors"]
    for key in path:
        assert key in node, f"no error at {'.'.join(path)}: {response.json['errors']}"
        node = node[key]
    return node


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def event_body(payload_json: str, trigger="samcart.product_purchased") -> str:
    return f'{{"trigger": "{trigger}", "payload": {payload_json}}}'


# -- JSON nested 900+ levels ----------------------------------------------------------------------------------


def test_json_nested_900_levels_is_refused_at_its_field_and_deeper_than_the_parser_goes_as_a_whole(api, setup, runtime):
    integration = setup.integration()
    before = stored(runtime)
    # Within what the parser can read: refused by the walk, at the field holding it.
    deep = post_json(
        api,
        "/api/v1/events",
        event_body(f'{{"customer": {{"email": "ada@example.com"}}, "product": {{"id": "1"}}, "extra": {nested(900)}}}'),
    )
    messages = error_at(deep, "json")
    assert messages == {"payload": {"extra": [NESTING]}} or messages == [NESTING]
    assert error_at(
        post_json(
            api, "/api/v1/events", event_body(f'{{"customer": {{"email": "ada@example.com"}}, "extra": {nested(100)}}}')
        ),
        "json",
        "payload",
        "extra",
    ) == [NESTING]
    # Deeper than Python's recursion limit: the parser's RecursionError, refused as the body as a whole.
    assert error_at(post_json(api, "/api/v1/events", event_body(nested(100_000))), "json") == [NESTING]
    # Anywhere a body takes free-form JSON: rule parameters, a connection's config.
    assert error_at(
        post_json(
            api,
            "/api/v1/rules",
            json.dumps(
                {
                    "product_id": None,
                    "trigger": "samcart.product_purchased",
                    "integration_id": integration,
                    "action": "record",
                }
            )[:-1]
            + f', "params": {{"channel": {nested(900)}}}}}',
        ),
        "json",
    ) in ({"params": {"channel": [NESTING]}}, [NESTING])
    assert error_at(
        post_json(api, f"/api/v1/integrations/{integration}", f'{{"config": {nested(200)}}}', "patch"), "json", "config"
    ) == [NESTING]
    assert stored(runtime) == before


def test_values_nested_deeper_than_the_recursion_limit_are_refused_by_the_schemas_without_recursing():
    # Python values, not JSON text: what a caller other than the API (or a schema's own walk) would hand over.
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValidationError) as refused:
        EmitSchema().load({"trigger": "samcart.product_purchased", "payload": {"x": deep}})
    assert refused.value.messages == {"payload": {"x": [NESTING]}}


# -- a lone surrogate in any string ---------------------------------------------------------------------------

SURROGATE_CASES = {
    "event product name": (
        "post",
        "/api/v1/events",
        lambda ids: {
            "trigger": "samcart.product_purchased",
            "payload": purchase() | {"product": {"id": "1", "name": SURROGATE}},
        },
        ("payload", "product", "name"),
    ),
    "event product id": (
        "post",
        "/api/v1/events",
        lambda ids: {"trigger": "samcart.product_purchased", "payload": purchase() | {"product": {"id": SURROGATE}}},
        ("payload", "product", "id"),
    ),
    "event email": (
        "post",
        "/api/v1/events",
        lambda ids: {"trigger": "samcart.product_purchased", "payload": purchase(email=f"a{SURROGATE}@example.com")},
        ("payload", "customer", "email"),
    ),
    "a field name in a payload": (
        "post",
        "/api/v1/events",
        lambda ids: {"trigger": "samcart.product_purchased", "payload": purchase() | {SURROGATE: 1}},
        ("payload", SURROGATE),
        "The field name is not valid. " + inputs.SURROGATE_MESSAGE,
    ),
    "POST /products name": ("post", "/api/v1/products", lambda ids: {"external_id": "9", "name": SURROGATE}, ("name",)),
    "PATCH /products name": (
        "patch",
        "/api/v1/products/{product}",
        lambda ids: {"name": f"VIP {SURROGATE}"},
        ("name",),
    ),
    "POST /integrations name": (
        "post",
        "/api/v1/integrations",
        lambda ids: {"app": "recorder", "name": SURROGATE, "config": {"endpoint": ids["endpoint"], "token": TOKEN}},
        ("name",),
    ),
    "PATCH /integrations name": (
        "patch",
        "/api/v1/integrations/{integration}",
        lambda ids: {"name": SURROGATE},
        ("name",),
    ),
    "rule parameters": (
        "post",
        "/api/v1/rules",
        lambda ids: {
            "product_id": None,
            "trigger": "samcart.product_purchased",
            "integration_id": ids["integration"],
            "action": "record",
            "params": {"channel": SURROGATE},
        },
        ("params", "channel"),
    ),
    "the bulk retry's q": ("post", "/api/v1/logs/retry", lambda ids: {"q": SURROGATE}, ("q",)),
}


@pytest.mark.parametrize("case", list(SURROGATE_CASES))
def test_a_lone_surrogate_is_refused_at_its_field(api, setup, runtime, recorder, case):
    method, path, body, where, *message = SURROGATE_CASES[case]
    ids = {"integration": setup.integration(), "product": setup.product("1"), "endpoint": recorder.url}
    before = stored(runtime)
    # json.dumps writes the surrogate as the escape "\ud800": valid JSON text that is not valid Unicode.
    response = post_json(api, path.format(**ids), json.dumps(body(ids)), method)
    assert error_at(response, "json", *where) == (message or [inputs.SURROGATE_MESSAGE])
    assert stored(runtime) == before
    with runtime.db.session() as s:  # renames too: nothing changed
        assert s.get(Product, ids["product"]).name == "Community"
        assert s.get(Integration, ids["integration"]).name == "Recorder"


def test_a_surrogate_pair_is_a_character_and_is_accepted(api, setup):
    # "\ud83d\ude00" in JSON is one character (U+1F600), not two lone surrogates.
    created = post_json(api, "/api/v1/products", '{"external_id": "9", "name": "VIP \\ud83d\\ude00"}')
    assert created.status_code == 201 and created.json["name"] == "VIP \U0001f600"


def test_a_query_string_that_is_not_utf8_is_a_400_not_a_500(api, app):
    # Percent-encoded, werkzeug keeps invalid UTF-8 as the text "%ED%A0%80"; sent raw, decoding it raised.
    for path in ("/api/v1/logs", "/api/v1/products", "/api/v1/events"):
        assert api.get(f"{path}?q={quote(SURROGATE.encode('utf-8', 'surrogatepass'))}").status_code == 200
        raw = api.get(path, environ_overrides={"QUERY_STRING": "q=\xed\xa0\x80"})
        assert raw.status_code == 400, raw.text
        assert raw.json["errors"] == {
            "query": ["The query string is not valid UTF-8; percent-encode its characters as UTF-8."]
        }
    page = app.test_client().get("/sign-in", environ_overrides={"QUERY_STRING": "next=\xed\xa0\x80"})
    assert page.status_code == 400 and "not valid UTF-8" in page.text  # the web UI's error page


def test_an_idempotency_key_with_a_nul_character_is_refused(api, runtime):
    response = api.post(
        "/api/v1/events",
        json={"trigger": "samcart.product_purchased", "payload": purchase()},
        headers={"Idempotency-Key": "order-1\x00"},
    )
    assert error_at(response, "headers", "Idempotency-Key") == [inputs.NUL_MESSAGE]
    assert stored(runtime)["Event"] == 0


# -- a 5,000-digit integer ------------------------------------------------------------------------------------


def test_a_5000_digit_integer_in_a_payload_field_is_refused_at_its_field(api, runtime):
    for field in ("total_cents", "id"):  # a typed field and a free one (fields.Raw)
        body = event_body(
            f'{{"customer": {{"email": "ada@example.com"}}, "product": {{"id": "1"}}, '
            f'"order": {{"{field}": {"9" * 5000}}}}}'
        )
        assert error_at(post_json(api, "/api/v1/events", body), "json", "payload", "order", field) == [
            inputs.INT_MESSAGE
        ]
    # Past 64 bits is refused too (no database column or JSON reader downstream holds it), and so are the
    # numbers Python's json reads although JSON has none (PostgreSQL's JSON type refuses them).
    for number, message in (
        (str(2**63), inputs.INT_MESSAGE),
        ("NaN", inputs.NUMBER_MESSAGE),
        ("-Infinity", inputs.NUMBER_MESSAGE),
        ("1e400", inputs.NUMBER_MESSAGE),
    ):
        body = event_body(
            f'{{"customer": {{"email": "ada@example.com"}}, "product": {{"id": "1"}}, "order": {{"id": {number}}}}}'
        )
        assert error_at(post_json(api, "/api/v1/events", body), "json", "payload", "order", "id") == [message]
    assert error_at(
        post_json(api, "/api/v1/rules", '{"integration_id": ' + "1" * 5000 + "}"), "json", "integration_id"
    ) == [inputs.INT_MESSAGE]
    assert stored(runtime)["Event"] == 0
    # The largest 64-bit whole number is fine.
    body = event_body(
        f'{{"customer": {{"email": "ada@example.com"}}, "product": {{"id": "1"}}, "order": {{"id": {2**63 - 1}}}}}'
    )
    assert post_json(api, "/api/v1/events", body).status_code == 202


# -- instants with no UTC equivalent --------------------------------------------------------------------------


@pytest.mark.parametrize("occurred_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_an_occurred_at_with_no_utc_instant_is_refused_at_its_field(api, runtime, occurred_at):
    response = api.post(
        "/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase(occurred_at=occurred_at)}
    )
    assert error_at(response, "json", "payload", "occurred_at") == [inputs.INSTANT_MESSAGE]
    # The same instants as a log filter, in the query string and in the bulk retry's body.
    assert error_at(api.get(f"/api/v1/logs?since={quote(occurred_at)}"), "query", "since") == [inputs.INSTANT_MESSAGE]
    assert error_at(api.post("/api/v1/logs/retry", json={"until": occurred_at}), "json", "until") == [
        inputs.INSTANT_MESSAGE
    ]
    assert stored(runtime)["Event"] == 0
    # The extremes themselves are fine.
    for edge in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"):
        assert (
            api.post(
                "/api/v1/events", json={"trigger": "samcart.product_purchased", "payload": purchase(occurred_at=edge)}
            ).status_code
            == 202
        )


# -- a delayed trigger whose runs would be due after the last instant -----------------------------------------


def test_a_prospect_created_whose_2_hour_delay_overflows_is_refused_at_occurred_at(api, setup, runtime):
    setup.rule(setup.integration(), trigger="samcart.prospect_created")
    response = api.post(
        "/api/v1/events",
        json={"trigger": "samcart.prospect_created", "payload": purchase(occurred_at="9999-12-31T23:00:00Z")},
    )
    assert error_at(response, "json", "payload", "occurred_at") == [
        "Too late for this trigger: its rules run 2 h after it, which would be after 9999-12-31T23:59:59Z, "
        "the last instant Hookyard can store."
    ]
    assert stored(runtime)["Event"] == 0 and stored(runtime)["Run"] == 0
    # The delay is what is checked: the same instant for a trigger without one, or 2 h earlier, is accepted.
    assert (
        api.post(
            "/api/v1/events",
            json={"trigger": "samcart.product_purchased", "payload": purchase(occurred_at="9999-12-31T23:00:00Z")},
        ).status_code
        == 202
    )
    assert (
        api.post(
            "/api/v1/events",
            json={"trigger": "samcart.prospect_created", "payload": purchase(occurred_at="9999-12-31T21:59:59Z")},
        ).status_code
        == 202
    )


class PlainPayload(Schema):
    """A plugin's schema that knows nothing of Hookyard's BaseSchema: any value, any offset."""

    anything = fields.Raw()
    occurred_at = fields.AwareDateTime()


def test_the_payload_checks_cover_any_plugins_schema_and_any_delayed_trigger():
    trigger = TriggerType(
        key="other.thing",
        label="Thing",
        category="Other",
        description="",
        payload_schema=PlainPayload,
        product_scoped=False,
        delay=timedelta(days=1),
    )
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    cases = [
        ({"anything": deep}, {"anything": [NESTING]}),
        ({"anything": {"name": SURROGATE}}, {"anything": {"name": [inputs.SURROGATE_MESSAGE]}}),
        ({"anything": 2**64}, {"anything": [inputs.INT_MESSAGE]}),
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, {"occurred_at": [inputs.INSTANT_MESSAGE]}),
    ]
    for payload, messages in cases:
        with pytest.raises(ValidationError) as refused:
            validate_payload(trigger, payload)
        assert refused.value.messages == messages
    with pytest.raises(ValidationError) as refused:
        validate_payload(trigger, {"occurred_at": "9999-12-31T00:00:01Z"})
    assert "its rules run 24 h after it" in refused.value.messages["occurred_at"][0]
    assert validate_payload(trigger, {"occurred_at": "9999-12-30T23:59:59Z"})


# -- the web UI's forms ---------------------------------------------------------------------------------------


def test_the_web_forms_never_answer_500_for_what_a_browser_cannot_even_send(app, runtime, setup):
    add_user(runtime, "owner@example.com", "owner")
    web = WebClient(app).sign_in("owner@example.com")
    integration = setup.integration()

    def post_raw(path, fields_text: bytes):
        web.get("/products")  # a fresh CSRF token
        return web.client.post(
            path,
            data=b"csrf_token=" + web.csrf.encode() + b"&" + fields_text,
            content_type="application/x-www-form-urlencoded",
        )

    # A browser has no way to send a lone surrogate: its UTF-8 form (ED A0 80) is not valid UTF-8, and werkzeug
    # reads it percent-encoded as the text "%ED%A0%80", raw as nothing at all. Either way the page answers.
    for encoded in (b"%ED%A0%80", b"\xed\xa0\x80"):
        assert post_raw("/products", b"external_id=w1&name=" + encoded).status_code < 500
        assert post_raw(f"/integrations/{integration}/edit", b"name=" + encoded).status_code < 500
    with runtime.db.session() as s:
        names = [p.name for p in s.scalars(select(Product))] + [i.name for i in s.scalars(select(Integration))]
    assert all(inputs.text_problem(name) is None for name in names), names
    # The rule wizard carries its parameters as JSON in a hidden field: there, "\ud800" is plain ASCII.
    for params_json in ('{"channel": "\\ud800"}', '{"channel": %s}' % nested(900), '{"channel": 1e400}'):
        wizard = web.post(
            "/rules/new",
            {
                "step": "trigger",
                "integration_id": str(integration),
                "action": "record",
                "trigger": "samcart.product_purchased",
                "params_json": params_json,
            },
        )
        assert wizard.status_code < 500, wizard.text[:500]
    with runtime.db.session() as s:
        assert all(inputs.problems(rule.params) is None for rule in s.scalars(select(Rule)))


def test_a_remotes_answer_with_nul_and_a_lone_surrogate_is_stored_readably(api, setup, recorder, in_process):
    """The other direction: text a remote sends back (an action's reason) is stored on every database, with
    what cannot be stored replaced, instead of failing the write and leaving the run unrecorded."""
    from hookyard.jobs import run_rule

    setup.rule(setup.integration())
    recorder.answer("odd@example.com", (422, "no such\x00space"))
    [run] = api.get(f"/api/v1/events/{setup.emit(purchase(email='odd@example.com'))['id']}").json["runs"]
    assert run_rule(run["id"]) == "failed"
    entry = api.get(f"/api/v1/logs/{run['id']}").json
    assert entry["reason"] == "no such\ufffdspace" == entry["history"][0]["reason"]
    assert inputs.storable("a\ud800b") == "a\ufffdb"
