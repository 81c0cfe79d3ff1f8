"""An example third-party Hookyard plugin: one app, "Hello webhook", with one action that POSTs a
greeting for the customer to a URL. Read it with docs/plugins/index.md; it is the template to copy."""

import requests
from marshmallow import Schema, fields

from hookyard import Action, App, ConnectionFailed, Outcome, Secret, hookimpl

# The hook API this plugin is written for: one outside the range is refused at load (docs/plugins/loading.md).
HOOKYARD_API = ">=1.0,<2"


class Config(Schema):
    url = fields.Url(required=True, require_tld=False, metadata={"label": "Webhook URL"})
    secret = Secret(load_default="", metadata={"label": "Shared secret"})


class GreetParams(Schema):
    greeting = fields.String(load_default="Hello", metadata={"label": "Greeting"})


def verify(config):
    # A real app would make one cheap authenticated call here; a webhook only has to exist.
    try:
        requests.head(config["url"], timeout=5)
    except requests.RequestException as exc:
        raise ConnectionFailed(f"Cannot reach {config['url']}: {exc.__class__.__name__}", field="url") from exc
    return {}


def greet(ctx):
    first_name = (ctx.payload.get("customer") or {}).get("first_name") or "there"
    try:
        response = requests.post(
            ctx.config["url"],
            timeout=10,
            json={"text": f"{ctx.params['greeting']}, {first_name}!", "email": ctx.email},
            headers={"X-Hello-Secret": ctx.config.get("secret", "")},
        )
    except requests.RequestException as exc:
        return Outcome.failed(f"webhook unreachable: {exc.__class__.__name__}", retryable=True)
    if response.status_code >= 500 or response.status_code == 429:
        return Outcome.failed(f"webhook answered {response.status_code}", retryable=True)
    if not response.ok:
        return Outcome.failed(f"webhook answered {response.status_code}")
    return Outcome.succeeded()


@hookimpl
def register_apps(register):
    register(
        App(
            key="hello",
            name="Hello webhook",
            config_schema=Config,
            verify=verify,
            description="Greets each customer through a webhook.",
            actions=(Action("greet", "Send a greeting", GreetParams, greet),),
        )
    )
