"""Webhook for Hookyard: one app whose action POSTs the event to a URL, signed the Standard Webhooks way, behind
an SSRF guard (docs/webhook.md)."""

import base64

from hookyard import App, hookimpl

from . import settings
from .actions import SEND_POST
from .connection import WebhookConfig, verify

# The hook API this plugin is written for: one outside the range is refused at load (docs/plugins/loading.md).
HOOKYARD_API = ">=1.2,<2"

# A plain hook glyph on a dark tile: enough to tell the app apart in the UI's app list.
LOGO = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><rect width="40" height="40" rx="10" '
        b'fill="#1f2937"/><path d="M20 9v14a5 5 0 1 1-5-5" fill="none" stroke="#fff" stroke-width="4" '
        b'stroke-linecap="round"/></svg>'
    ).decode()
)

WEBHOOK = App(
    key="webhook",
    name="Webhook",
    config_schema=WebhookConfig,
    verify=verify,
    actions=(SEND_POST,),
    description="POST events as signed JSON (Standard Webhooks) to a URL of your own.",
    logo_url=LOGO,
)


@hookimpl
def register_apps(register):
    register(WEBHOOK)


@hookimpl
def register_settings(register):
    register(settings.SETTINGS)  # checked when the plugins load: a malformed WEBHOOK_* stops the server at start


@hookimpl
def register_commands(register):
    from .commands import webhook

    register(webhook)
