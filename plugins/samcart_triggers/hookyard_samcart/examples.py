"""A sample payload per trigger, as SamCart's events come out of the Notify URL mapping (hookyard_samcart.mapping):
what "test a rule with the example" runs on. The people are made up (example.com addresses), the ids look like
SamCart's (numeric, as text), money is integer cents."""

from __future__ import annotations

JANE = {"email": "jane@example.com", "first_name": "Jane", "last_name": "Doe", "phone": "+15555550123", "id": "9081726"}
COURSE_STUDENT = {"email": "sam.lee@example.com", "first_name": "Sam", "last_name": "Lee", "id": "9081733"}
MEMBERSHIP = {"id": "31337", "name": "Creator Circle Membership", "price_cents": 4900}
COURSE_PRODUCT = {"id": "31340", "name": "Launch Your Course in 30 Days", "price_cents": 29700}
AT = "2026-11-30T15:04:05+00:00"
ORDER = {"id": "5520931", "total_cents": 4900, "currency": "USD", "purchase_source": "primary"}
SUBSCRIPTION = {"id": "770112", "status": "active", "interval": "monthly"}


def _purchase(**extra) -> dict:
    return {"customer": JANE, "product": MEMBERSHIP, "order": ORDER, "occurred_at": AT, **extra}


def _subscription(status: str, **extra) -> dict:
    return _purchase(subscription={**SUBSCRIPTION, "status": status}, **extra)


def _course() -> dict:
    return {
        "customer": COURSE_STUDENT,
        "product": COURSE_PRODUCT,
        "course": {"id": "8804", "name": "Launch Your Course in 30 Days"},
        "occurred_at": AT,
    }


EXAMPLES = {
    "product_purchased": _purchase(),
    "product_refunded": _purchase(charge={"id": "66120045"}),
    "product_partially_refunded": _purchase(charge={"id": "66120046"}),
    "product_added_to_order": _purchase(
        product={"id": "31338", "name": "Office Hours Add-on", "price_cents": 1900},
        order={**ORDER, "total_cents": 6800, "purchase_source": "order_bump"},
    ),
    "prospect_created": {"customer": JANE, "product": MEMBERSHIP, "occurred_at": AT},
    "subscription_started": _subscription("active", charge={"id": "66120050"}),
    "subscription_charged": _subscription("active", charge={"id": "66120051", "rebill_id": "4410021"}),
    "subscription_charge_failed": _subscription("active", charge={"id": "66120052", "rebill_id": "4410022"}),
    "subscription_delinquent": _subscription("delinquent", charge={"id": "66120053", "rebill_id": "4410023"}),
    "subscription_canceled": _subscription("canceled"),
    "subscription_recovered": _subscription("active", charge={"id": "66120054", "rebill_id": "4410024"}),
    "subscription_restarted": _subscription("active"),
    "subscription_completed": _subscription("completed", charge={"id": "66120055", "rebill_id": "4410025"}),
    "course_enrolled": _course(),
    "course_removed": _course(),
    "course_started": _course(),
    "course_completed": _course(),
}
