"""The SamCart app's inbound URL: SamCart's Notify URL posts here, and each delivery becomes events (mapping.py)."""

from __future__ import annotations

from datetime import timedelta

from hookyard import Inbound, Unmapped

from . import mapping, notify
from .connection import subscription_status
from .settings import SETTINGS


def redelivery_window() -> timedelta:
    """HOOKYARD_SAMCART_REDELIVERY_WINDOW: seconds, or a number with s, m, h or d (default 1h). A body that carries
    no charge id, rebill id or timestamp is a redelivery only when the same body came within this window."""
    return SETTINGS["HOOKYARD_SAMCART_REDELIVERY_WINDOW"]


def handle(ctx):
    try:
        aliases = notify.parse_aliases(ctx.config.get("type_names"))
    except ValueError as exc:  # saved when it parsed; a later version of the plugin may read it differently
        raise Unmapped(
            f"The connection's “type names” no longer read ({exc}); fix them on the connection, then "
            "process the delivery again."
        ) from exc
    events = mapping.map_delivery(
        ctx.body,
        delivery_id=ctx.delivery_id,
        received_at=ctx.received_at,
        state=ctx.state,
        looked_up=ctx.looked_up,
        aliases=aliases,
    )
    if not events:
        kind = notify.read(ctx.body).name or "notification"
        ctx.note(
            f"SamCart's {kind} changes nothing Hookyard reports: e.g. the 2nd or 3rd failed charge in a row "
            "(only the 1st is Subscription Charge Failed, the 4th Delinquent and Canceled)."
        )
    return events


def lookup(config, body) -> dict:
    """With an API key, the status of the subscription a delivery names (SamCart sends no "completed" notification
    we know of: a limited subscription's last charge is told apart by its status)."""
    if not config.get("api_key"):
        return {}
    ids = mapping.subscription_ids(body)
    status = subscription_status(config, ids[0]) if ids else None
    return {"subscription_status": status} if status else {}


INSTRUCTIONS = (
    "In SamCart, open Apps (the App Marketplace; older accounts: Settings → Integrations), connect the "
    "Notify URL / Webhooks app with this URL, then add a rule per trigger you want (global, or for "
    "some products) with the action “Send Notify URL POST”."
)

INBOUND = Inbound(
    handle=handle,
    identity=mapping.delivery_identity,
    redelivery_window=redelivery_window,
    lookup=lookup,
    secret_fields=("api_key",),
    instructions=INSTRUCTIONS,
)
