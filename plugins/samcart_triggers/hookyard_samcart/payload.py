"""The canonical SamCart payload every trigger shares. Money is integer cents."""
from __future__ import annotations

from datetime import timezone

from marshmallow import EXCLUDE, Schema, fields, post_load, pre_load, validate

PURCHASE_SOURCES = ("primary", "upsell", "order_bump", "payment_option")


class Part(Schema):
    class Meta:
        # Unknown fields are not errors: the core keeps the whole raw payload beside the validated one.
        unknown = EXCLUDE


class Customer(Part):
    email = fields.Email(required=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)

    @pre_load
    def normalise_email(self, data, **_):
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return data


class ProductRef(Part):
    id = fields.String(metadata={"description": "The store's product id."})
    name = fields.String(allow_none=True)

    @pre_load
    def id_as_text(self, data, **_):
        # SamCart ids are numeric; rules match on the text form either way.
        if isinstance(data, dict) and isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
            data = {**data, "id": str(data["id"])}
        return data


class Order(Part):
    id = fields.Raw(allow_none=True)
    total_cents = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0))
    currency = fields.String(allow_none=True, validate=validate.Length(equal=3))
    purchase_source = fields.String(allow_none=True, validate=validate.OneOf(PURCHASE_SOURCES),
                                    metadata={"description": "primary, upsell, order_bump or payment_option"})


class Subscription(Part):
    id = fields.Raw(allow_none=True)
    status = fields.String(allow_none=True)
    interval = fields.String(allow_none=True)


class Charge(Part):
    id = fields.Raw(allow_none=True)


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
    occurred_at = fields.AwareDateTime(default_timezone=timezone.utc, allow_none=True,
                                       metadata={"description": "ISO 8601; defaults to when it was received."})

    @post_load
    def drop_nulls(self, data, **_):
        return {k: v for k, v in data.items() if v is not None}


# The ids that name one real-world SamCart event; occurred_at, when the store sends it, tells apart
# two genuine events of the same subscription (canceled, restarted, canceled again).
IDENTITY = ("order", "product", "subscription", "charge", "course")


def dedupe_key(data) -> str | None:
    """Order + product + subscription + charge (+ course, + occurred_at when given); None when the
    payload names no order, subscription, charge or course, since then nothing identifies the event."""
    ids = {part: (data.get(part) or {}).get("id") for part in IDENTITY}
    if all(ids[part] in (None, "") for part in ("order", "subscription", "charge", "course")):
        return None
    parts = [f"{part}={ids[part]}" for part in IDENTITY if ids[part] not in (None, "")]
    if data.get("occurred_at"):
        parts.append(f"at={data['occurred_at'].isoformat()}")
    return "|".join(parts)
