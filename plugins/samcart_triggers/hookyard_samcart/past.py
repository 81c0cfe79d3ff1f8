"""Past orders from SamCart's API, as the events their Notify URL deliveries would have made (App.past_events, for a
backfill: docs/samcart.md, "Past orders from the API").

Each order is rewritten as the body SamCart's Notify URL sends for it (samcart.md §9: ``type`` "Order", the
customer, ``order.id``, the product lines with decimal-dollar prices) and handed to the same mapping as a delivery
(mapping.map_delivery), so an order read here has the same trigger, payload shape and identity (order + product) as
the one the Notify URL delivered: the core finds it already stored instead of storing it twice.
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


def past_events(config, info, since: datetime, until: datetime, progress=None) -> Iterator[list[InboundEvent]]:
    """Pages of the events of the orders placed in [since, until), 100 orders a page. ``progress(orders_read,
    None, message)`` after each page (it may raise Cancelled). An order without a customer email or products is
    left out (the Notify URL would reject it too). Raises ConnectionFailed without an API key and for every way
    SamCart fails."""
    key = (config or {}).get("api_key")
    if not isinstance(key, str) or not key.strip():
        raise ConnectionFailed(
            "Reading past orders needs a SamCart API key: ask SamCart support (support@samcart.com) for one and "
            "add it to this connection.",
            field="api_key",
        )
    customers: dict = {}
    read = 0
    query = {"created_at_min": _stamp(since), "created_at_max": _stamp(until)}
    with SamCart(key.strip()) as client:
        for page in client.pages("/orders", query):
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
