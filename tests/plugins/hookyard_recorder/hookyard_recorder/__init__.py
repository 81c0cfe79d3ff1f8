"""A throwaway app for Hookyard's own tests. Its action POSTs what it was asked to do to a recorder
HTTP server (tests/recorder.py), and the recorder's answer decides the outcome, so tests can drive
every outcome through a real worker."""

import requests
from marshmallow import Schema, fields

from hookyard import Action, App, ConnectionFailed, Inbound, InboundEvent, Outcome, Rejected, Unmapped, hookimpl


class Config(Schema):
    endpoint = fields.Url(required=True, require_tld=False)
    token = fields.String(required=True, metadata={"secret": True})


class RecordParams(Schema):
    channel = fields.String(required=True, metadata={"options": "channels"})
    note = fields.String(load_default="")


def _get(config, path):
    try:
        return requests.get(
            config["endpoint"] + path, headers={"Authorization": f"Bearer {config['token']}"}, timeout=5
        )
    except requests.RequestException as exc:
        raise ConnectionFailed(f"recorder unreachable: {exc.__class__.__name__}", field="endpoint") from exc


def verify(config):
    response = _get(config, "/verify")
    if response.status_code == 401:
        raise ConnectionFailed("The recorder rejected this token.", field="token")
    response.raise_for_status()
    return response.json()


def refresh(config, info):
    return _get(config, "/options").json()


def record(ctx):
    try:
        response = requests.post(
            ctx.config["endpoint"] + "/record",
            json={
                "run_id": ctx.run_id,
                "attempt": ctx.attempt,
                "trigger": ctx.trigger,
                "email": ctx.email,
                "params": dict(ctx.params),
                "payload": dict(ctx.payload),
            },
            headers={"Authorization": f"Bearer {ctx.config['token']}"},
            timeout=5,
        )
    except requests.RequestException as exc:
        return Outcome.failed(f"recorder unreachable: {exc.__class__.__name__}", retryable=True)
    text = response.text[:200]
    if response.ok:
        return Outcome.succeeded(text)
    if response.status_code == 409:
        return Outcome.skipped(text)
    if response.status_code == 401:
        return Outcome.failed(text, needs_attention=True)
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = response.headers.get("Retry-After")
        return Outcome.failed(text, retryable=True, retry_after=float(retry_after) if retry_after else None)
    return Outcome.failed(text)


class InboxConfig(Schema):
    label = fields.String(load_default="")


def inbox_handle(ctx):
    """A webhook-receiving test app: the body says what to make of it, so tests drive every outcome of a
    delivery. {"events": [{"trigger", "payload", "identity"?, "note"?}], "kind"?: unknown | reject | boom,
    "count"?: key (counted in the plugin state, the count put in each payload's order.id)}."""
    kind = ctx.body.get("kind")
    if kind == "unknown":
        raise Unmapped(f"unknown kind {kind!r}")
    if kind == "reject":
        raise Rejected("asked to reject it")
    if kind == "boom":
        raise RuntimeError("the inbox plugin broke")
    count = None
    if ctx.body.get("count"):
        state = ctx.state.get(ctx.body["count"]) or {"n": 0}
        state["n"] += 1
        ctx.state.set(ctx.body["count"], state)
        count = state["n"]
    events = ctx.body.get("events") or []
    if not events:
        ctx.note("the body listed no events")
    for item in events:
        payload = dict(item["payload"])
        if count is not None:
            payload["order"] = {"id": count}
        yield InboundEvent(item["trigger"], payload, identity=item.get("identity"), note=item.get("note", ""))


INBOX = Inbound(
    handle=inbox_handle,
    identity=lambda body: body.get("delivery_id"),
    secret_fields=("secret",),
    instructions="Post JSON here.",
)


@hookimpl
def register_apps(register):
    register(
        App(
            key="inbox",
            name="Inbox",
            config_schema=InboxConfig,
            verify=lambda config: {},
            actions=(),
            inbound=INBOX,
            products=lambda config, info: iter([[{"id": "p1", "name": "One"}]]),
        )
    )
    register(
        App(
            key="recorder",
            name="Recorder",
            config_schema=Config,
            verify=verify,
            refresh=refresh,
            actions=(Action("record", "Record the call", RecordParams, record),),
        )
    )
