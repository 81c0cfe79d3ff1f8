"""The SamCart connection: its fields, the optional API key's cheap verify, the product import's pages, and the
subscription status the dunning logic asks for. The Notify URL needs no key, so everything here works without one:
no call is made and the answer says so."""

from __future__ import annotations

import logging
import re

from marshmallow import Schema, ValidationError, fields, validate, validates

from hookyard import ConnectionFailed, Secret

from .client import SamCart, SamCartFailed, verify_timeout
from .notify import parse_aliases

log = logging.getLogger(__name__)

SUBSCRIPTION_STATUS_BUDGET = 5.0  # seconds: it runs in the worker just before a delivery is handled
# SamCart ids are numbers; a subscription id comes from an unauthenticated Notify body, so it is checked before it
# goes into a URL path.
_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class SamCartConfig(Schema):
    api_key = Secret(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=500),
        metadata={
            "label": "API key",
            "description": "Optional. SamCart issues API keys on request (support@samcart.com); the Notify URL works "
            "without one. With a key Hookyard can import your products and tell when a limited "
            "subscription completes.",
        },
    )
    type_names = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=4000),
        metadata={
            "label": "Extra notification types",
            "multiline": True,
            "description": "Extra notification types, one per line: `Received name = trigger`, e.g. "
            "`Student Enrolled = course_enrolled`.",
        },
    )

    @validates("type_names")
    def _check_type_names(self, value, **_):
        if not value:
            return
        try:  # the mapping's own parser: one reading of the text, here and when a delivery is handled
            parse_aliases(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


def _key(config) -> str | None:
    key = (config or {}).get("api_key")
    return key.strip() if isinstance(key, str) and key.strip() else None


def verify(config) -> dict:
    """Without a key: no call, ``{"api_connected": False}``. With one: GET /products?limit=1, then
    ``{"api_connected": True}``; all of it, 429 waits included, within SAMCART_VERIFY_TIMEOUT seconds (it runs
    inside a web request). A refused key, an unreachable API and a busy one each raise their own ConnectionFailed."""
    key = _key(config)
    if key is None:
        return {"api_connected": False}
    with SamCart(key, budget=verify_timeout()) as client:
        client.get("/products", {"limit": 1})
    return {"api_connected": True}


def _name(product: dict) -> str:
    for field in ("product_name", "internal_product_name", "name"):
        value = product.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _no_progress(done, total=None, message=None) -> None:
    return None


def products(config, info=None, progress=None):
    """Pages (lists) of the store's products as ``{"id": "<SamCart id>", "name": …}``, 100 a page, following
    SamCart's pagination to the end. ``progress(fetched_so_far, None, message)`` is called after each page is
    fetched, before it is yielded (SamCart announces no total); it may raise Cancelled to stop. Records without
    an id are skipped. Raises ConnectionFailed without a key, and for every way SamCart fails."""
    key = _key(config)
    if key is None:
        raise ConnectionFailed(
            "Importing products needs a SamCart API key: ask SamCart support "
            "(support@samcart.com) for one and add it to this connection.",
            field="api_key",
        )
    progress = progress or _no_progress
    fetched = 0
    with SamCart(key) as client:
        for page in client.pages("/products"):
            rows = [
                {"id": str(p["id"]), "name": _name(p)}
                for p in page
                if isinstance(p, dict) and p.get("id") not in (None, "") and not isinstance(p.get("id"), bool)
            ]
            fetched += len(rows)
            progress(fetched, None, f"Fetched {fetched} products from SamCart.")
            yield rows


def subscription_status(config, subscription_id) -> str | None:
    """The subscription's status from GET /subscriptions/{id} (active, canceled, delinquent, completed, paused,
    …), or None: without a key, for an id that is not one, and on any failure (logged, without the key). Bounded
    by SUBSCRIPTION_STATUS_BUDGET seconds in all, 429 waits included; never raises."""
    key = _key(config)
    wanted = str(subscription_id).strip() if isinstance(subscription_id, (str, int)) else ""
    if key is None or isinstance(subscription_id, bool) or not _ID.match(wanted):
        return None
    try:
        with SamCart(key, budget=SUBSCRIPTION_STATUS_BUDGET, max_wait=2.0) as client:
            body = client.get(f"/subscriptions/{wanted}")
    except SamCartFailed as exc:
        log.warning("SamCart subscription %s: status not fetched: %s", wanted, exc.message)
        return None
    except Exception:  # a bug here must not stop the delivery being handled
        log.exception("SamCart subscription %s: status not fetched", wanted)
        return None
    status = body.get("status")
    return status.strip().lower() if isinstance(status, str) and status.strip() else None
