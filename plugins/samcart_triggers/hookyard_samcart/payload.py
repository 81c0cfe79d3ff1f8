"""The canonical SamCart payload every trigger shares. Money is integer cents."""

from __future__ import annotations

from datetime import timezone

from marshmallow import EXCLUDE, Schema, fields, post_load, pre_load, validate

PURCHASE_SOURCES = ("primary", "upsell", "order_bump", "payment_option")
# What the core's tables hold (products.external_id and products.name): a longer one is a 422, not a database error.
MAX_PRODUCT_ID, MAX_PRODUCT_NAME = 200, 500


def _id_as_text(data, *names):
    # SamCart ids are numeric; rules and identities compare their text form either way.
    if not isinstance(data, dict):
        return data
    changed = {
        name: str(data[name])
        for name in names
        if isinstance(data.get(name), int) and not isinstance(data.get(name), bool)
    }
    return {**data, **changed} if changed else data


class Part(Schema):
    class Meta:
        # Unknown fields are not errors: the core keeps the whole raw payload beside the validated one.
        unknown = EXCLUDE


class Customer(Part):
    email = fields.Email(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True, metadata={"description": "SamCart's Notify URL sends it as phone_number."})
    id = fields.String(allow_none=True, metadata={"description": "The store's customer id."})

    @pre_load
    def normalise_email(self, data, **_):
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return _id_as_text(data, "id")


class ProductRef(Part):
    id = fields.String(
        validate=validate.Length(max=MAX_PRODUCT_ID), metadata={"description": "The store's product id."}
    )
    name = fields.String(allow_none=True, validate=validate.Length(max=MAX_PRODUCT_NAME))
    price_cents = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0),
        metadata={"description": "This product line's price, in cents."},
    )

    @pre_load
    def id_as_text(self, data, **_):
        return _id_as_text(data, "id")


class Order(Part):
    id = fields.Raw(allow_none=True)
    total_cents = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0))
    currency = fields.String(allow_none=True, validate=validate.Length(equal=3))
    purchase_source = fields.String(
        allow_none=True,
        validate=validate.OneOf(PURCHASE_SOURCES),
        metadata={"description": "primary, upsell, order_bump or payment_option"},
    )


class Subscription(Part):
    id = fields.Raw(allow_none=True)
    status = fields.String(allow_none=True)
    interval = fields.String(allow_none=True)


class Charge(Part):
    id = fields.Raw(allow_none=True)
    rebill_id = fields.Raw(allow_none=True, metadata={"description": "SamCart's subscription_rebill_id."})


class Course(Part):
    id = fields.Raw(allow_none=True)
    name = fields.String(allow_none=True)


class SamCartPayload(Part):
    customer = fields.Nested(Customer, required=True)
    product = fields.Nested(ProductRef, allow_none=True)
    order = fields.Nested(Order, allow_none=True)
    subscription = fields.Nested(Subscription, allow_none=True)
    charge = fields.Nested(Charge, allow_none=True)
    course = fields.Nested(Course, allow_none=True)
    occurred_at = fields.AwareDateTime(
        default_timezone=timezone.utc,
        allow_none=True,
        metadata={"description": "ISO 8601; defaults to when it was received."},
    )

    @post_load
    def drop_nulls(self, data, **_):
        return {k: v for k, v in data.items() if v is not None}


# The ids that name one real-world SamCart event; occurred_at, when the store sends it, tells apart
# two genuine events of the same subscription (canceled, restarted, canceled again).
IDENTITY = ("order", "product", "subscription", "charge", "course")


def dedupe_key(data) -> str | None:
    """Order + product + subscription + charge (+ course, + occurred_at when given); None when the
    payload names no order, subscription, charge or course, since then nothing identifies the event.

    Also None for a subscription's event that carries neither a charge (id or rebill id) nor occurred_at:
    SamCart reuses the original order id on every rebill, so order + product + subscription alone would
    merge month 2's charge into month 1's. Such events are told apart only by an Idempotency-Key."""
    ids = {part: (data.get(part) or {}).get("id") for part in IDENTITY}
    rebill = (data.get("charge") or {}).get("rebill_id")
    if all(ids[part] in (None, "") for part in ("order", "subscription", "charge", "course")) and rebill in (None, ""):
        return None
    if (
        ids["subscription"] not in (None, "")
        and ids["charge"] in (None, "")
        and rebill in (None, "")
        and not data.get("occurred_at")
    ):
        return None
    parts = [f"{part}={ids[part]}" for part in IDENTITY if ids[part] not in (None, "")]
    if rebill not in (None, ""):
        parts.append(f"rebill={rebill}")
    if data.get("occurred_at"):
        parts.append(f"at={data['occurred_at'].isoformat()}")
    return "|".join(parts)
