"""Past orders and subscriptions from SamCart's API, as the events their Notify URL deliveries would have made
(App.past_events, for a backfill: docs/samcart.md, "Past orders and subscriptions from the API").

Each order is rewritten as the body SamCart's Notify URL sends for it (samcart.md §9: ``type`` "Order", the
customer, ``order.id``, the product lines with decimal-dollar prices), and each subscription as a "Subscription
Started" body (the customer, the subscription's id and status, its product), and handed to the same mapping as a
delivery (mapping.map_delivery). So what is read here has the same trigger, payload shape and identity (order +
product; subscription + product) as what the Notify URL delivered: the core finds it already stored instead of
storing it twice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

from hookyard import ConnectionFailed, InboundEvent, Rejected, Unmapped

from . import mapping, notify
from .client import SamCart
from .connection import _ID


def _stamp(moment: datetime) -> str:
    # SamCart's own date format (§4.4): UTC, no zone marker; created_at_min/max take it.
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _dollars(cents) -> str | None:
    if isinstance(cents, bool) or not isinstance(cents, int):
        return None
    return f"{cents / 100:.2f}"


def _body(order: dict, customer: dict) -> dict:
    """The Notify URL body of an order (no subscription ids: a subscription's later events are not orders)."""
    lines = [
        {
            "id": item.get("product_id"),
            "name": item.get("product_name") or item.get("internal_product_name"),
            **(
                {"price": _dollars(item.get("initial_price_total"))}
                if _dollars(item.get("initial_price_total"))
                else {}
            ),
        }
        for item in order.get("cart_items") or []
        if isinstance(item, dict) and item.get("product_id") not in (None, "") and item.get("status") != "refunded"
    ]
    return {
        "type": "Order",
        "created_at": order.get("order_date") or order.get("created_at"),
        "customer": {k: customer.get(k) for k in ("email", "first_name", "last_name") if customer.get(k)},
        "order": {
            "id": order.get("id"),
            **({"total": _dollars(order["total"])} if _dollars(order.get("total")) else {}),
        },
        "products": lines,
    }


# A subscription's status as the API reports it now (samcart.md §9, and §4.4's past_due). A backfill brings in the
# subscriptions that are still paid for, or were paid in full (completed), or are in dunning (past_due,
# sca_required, invalid_processor: SamCart has not ended them yet; its Delinquent comes after 4 failed charges).
# One that ended (canceled, delinquent, deleted) is left out: its Subscription Started would grant what its end took
# away, and the API does not say when it ended, so that end cannot be stored beside it. Paused, and any status this
# list does not know, are left out too: nothing says the customer should have access.
LIVE = frozenset({"active", "completed", "past_due", "sca_required", "invalid_processor"})
ENDED = frozenset({"canceled", "cancelled", "delinquent", "deleted"})


class _Forgotten:
    """The subscription history (hookyard_samcart.dunning) of an event read from the API: read and kept by nobody.
    The history is made of deliveries, in the order they came; a subscription listed today is not one."""

    def get(self, key, default=None):
        return default

    def set(self, key, value) -> None:
        pass


def _subscription_body(subscription: dict, customer: dict, status: str) -> dict:
    return {
        "type": "Subscription Started",
        "created_at": subscription.get("start_date") or subscription.get("created_at"),
        "customer": {k: customer.get(k) for k in ("email", "first_name", "last_name") if customer.get(k)},
        "subscription": {"id": subscription.get("id"), "status": status},
        "products": [{"id": subscription.get("product_id")}],
    }


# What each list brings in: an order its Product Purchased events, a subscription its Subscription Started.
FROM_ORDERS, FROM_SUBSCRIPTIONS = "samcart.product_purchased", "samcart.subscription_started"


def past_events(
    config, info, since: datetime, until: datetime, progress=None, triggers=None
) -> Iterator[list[InboundEvent]]:
    """Pages of the events of the orders placed in [since, until), then of the subscriptions started in it, 100
    records a page. ``progress(records_read, None, message)`` after each page (it may raise Cancelled). An order or
    a subscription without a customer email or a product is left out (the Notify URL would reject it too), and so
    is a subscription that is not live now (LIVE). ``triggers``: the trigger keys wanted (None: all); a list that
    brings in none of them is not read (no call). Raises ConnectionFailed without an API key and for every way
    SamCart fails."""
    key = (config or {}).get("api_key")
    if not isinstance(key, str) or not key.strip():
        raise ConnectionFailed(
            "Reading past orders and subscriptions needs a SamCart API key: ask SamCart support (support@samcart.com) for one and "
            "add it to this connection.",
            field="api_key",
        )
    customers: dict = {}
    read = 0
    query = {"created_at_min": _stamp(since), "created_at_max": _stamp(until)}
    wanted = (lambda trigger: True) if triggers is None else (lambda trigger: trigger in triggers)
    with SamCart(key.strip()) as client:
        for page in client.pages("/orders", query) if wanted(FROM_ORDERS) else ():
            events: list[InboundEvent] = []
            for order in page:
                if not isinstance(order, dict) or order.get("test_mode") is True:
                    continue
                placed = notify.instant(order.get("order_date") or order.get("created_at"), until)
                if placed is None or not since <= placed < until:
                    continue
                customer_id = order.get("customer_id")
                if isinstance(customer_id, bool) or not _ID.match(str(customer_id or "")):
                    continue  # it goes into a URL path
                if customer_id not in customers:
                    customers[customer_id] = client.get(f"/customers/{customer_id}")
                try:
                    events += mapping.map_delivery(
                        _body(order, customers[customer_id]), delivery_id=0, received_at=placed, state=None
                    )
                except (Rejected, Unmapped):
                    continue  # no email, no product: nothing a rule could act on
            read += len(page)
            if progress is not None:
                progress(read, None, f"Read {read} orders from SamCart.")
            yield events
        subscriptions = 0
        left_out: dict[str, int] = {}
        for page in client.pages("/subscriptions", query) if wanted(FROM_SUBSCRIPTIONS) else ():
            events = []
            for subscription in page:
                event = _subscription_event(client, customers, subscription, since, until, left_out)
                if event is not None:
                    events.append(event)
            subscriptions += len(page)
            if progress is not None:
                ended = ", ".join(f"{n} {status}" for status, n in sorted(left_out.items()))
                progress(
                    read + subscriptions,
                    None,
                    (
                        f"Read {read} orders and {subscriptions} subscriptions from SamCart"
                        if read
                        else f"Read {subscriptions} subscriptions from SamCart"
                    )
                    + (f"; left out as not live now: {ended}." if ended else "."),
                )
            yield events


def _subscription_event(client, customers: dict, subscription, since, until, left_out: dict) -> InboundEvent | None:
    """The Subscription Started event of a live subscription started in [since, until), else None (``left_out``
    counts the statuses that kept one out)."""
    if not isinstance(subscription, dict) or subscription.get("test_mode") is True:
        return None
    started = notify.instant(subscription.get("start_date") or subscription.get("created_at"), until)
    if started is None or not since <= started < until:
        return None
    status = notify.text(subscription.get("status"))
    status = status.strip().lower() if status else "(no status)"
    if status not in LIVE:
        left_out[status] = left_out.get(status, 0) + 1
        return None
    customer_id = subscription.get("customer_id")
    if isinstance(customer_id, bool) or not _ID.match(str(customer_id or "")):
        return None  # it goes into a URL path
    if customer_id not in customers:
        customers[customer_id] = client.get(f"/customers/{customer_id}")
    try:
        events = mapping.map_delivery(
            _subscription_body(subscription, customers[customer_id], status),
            delivery_id=0,
            received_at=started,
            state=_Forgotten(),
        )
    except (Rejected, Unmapped):
        return None  # no email, no product: nothing a rule could act on
    # The planned event comes first; a history's derived ones (none for a fresh history) would follow it.
    return next((e for e in events if e.trigger.rpartition(".")[2] == "subscription_started"), None)
