"""The Webhook connection: the receiver's URL and the signing secret; verify checks the URL against the guard."""

from __future__ import annotations

import requests
from marshmallow import Schema, fields

from hookyard import ConnectionFailed, Secret

from . import guard
from .signing import PREFIX, new_secret, validate_secret


class WebhookConfig(Schema):
    # require_tld=False: an operator-allowed receiver may well be "http://billing.internal:8080".
    url = fields.Url(
        required=True,
        schemes={"https", "http"},
        require_tld=False,
        metadata={
            "label": "URL",
            "description": "Where to POST, e.g. https://example.com/hooks/hookyard. https is strongly "
            "advised: over http anyone on the way can read the payload.",
        },
    )
    # Left empty, the core generates it (generate=, not load_default: the core then shows it once, in the answer
    # to the create, which a load_default's value never reaches). Stored encrypted and masked on every read like
    # any secret field; `hookyard webhook secret` reads or replaces it on the server (docs/webhook.md).
    secret = Secret(
        generate=new_secret,
        validate=validate_secret,
        metadata={
            "label": "Signing secret",
            "description": f"The Standard Webhooks secret ({PREFIX}…) the receiver checks signatures with. Leave it "
            "empty to have Hookyard generate one: it is shown once, right after the connection is created. "
            "Paste one to reuse a receiver's existing secret.",
        },
    )


def verify(config) -> dict:
    """No request is sent (a POST would be a delivery); the URL's host is resolved and checked by the SSRF guard,
    so a URL that every run would refuse is refused now, under config.url."""
    host = guard.host_of(config["url"])
    try:
        address = guard.check_url(config["url"])
    except guard.Refused as exc:
        raise ConnectionFailed(f"Refused: {exc}.", field="url") from exc
    except requests.RequestException as exc:  # the host does not resolve (requests-hardened: "Failed to resolve")
        raise ConnectionFailed(
            f"{host} could not be resolved ({exc}); check the URL's host name.", field="url"
        ) from exc
    info = {"host": host, "operator_allowed": address == "allowed"}
    if config["url"].startswith("http://"):
        info["warnings"] = [
            {
                "code": "plain_http",
                "message": "This URL is http, not https: payloads (customer "
                "emails, orders) and signatures travel unencrypted. Use https if the receiver has it.",
            }
        ]
    return info
