"""Reading a SamCart Notify URL body: which trigger it names, and the customer, order, product lines, subscriptions,
charge and times it carries. Pure: no database, no HTTP.

SamCart publishes no schema for these bodies (docs/samcart.md, "What SamCart sends"), so every shape the reference
lists is accepted: ``type`` or ``event`` at the top level, or ``event_type`` with the objects under ``data``;
JSON or form fields (then every value is text); comma-joined product lines; dollars as numbers or text. Reading
never raises: what cannot be used is left out and said in ``notes``, and mapping.py decides what is fatal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Mapping

from .payload import PURCHASE_SOURCES

# The plugin's 17 trigger short keys (``samcart.<key>``); tests/test_samcart_triggers.py checks they are the
# registered ones. Kept here, not imported from the package, so that reading a body needs nothing else loaded.
TRIGGER_KEYS = (
    "product_purchased",
    "product_refunded",
    "product_partially_refunded",
    "product_added_to_order",
    "prospect_created",
    "subscription_started",
    "subscription_charged",
    "subscription_charge_failed",
    "subscription_delinquent",
    "subscription_canceled",
    "subscription_recovered",
    "subscription_restarted",
    "subscription_completed",
    "course_enrolled",
    "course_removed",
    "course_started",
    "course_completed",
)

# Received name -> (trigger short key, the purchase source the name itself says). Matched on normalise(name).
# Legacy ``type`` values first (three independent handlers agree on most), then SamCart's trigger names as the
# App Marketplace shows them (§2), then the few other spellings the reference lists.
NAMES: dict[str, tuple[str, str | None]] = {
    # legacy Notify URL types
    "Order": ("product_purchased", None),
    "Refund": ("product_refunded", None),
    "PartialRefund": ("product_partially_refunded", None),
    "Cancel": ("subscription_canceled", None),
    "RecurringPaymentSucceeded": ("subscription_charged", None),
    "RecurringPaymentFailed": ("subscription_charge_failed", None),
    "RecurringPaymentRecovered": ("subscription_recovered", None),
    "SubscriptionRestarted": ("subscription_restarted", None),
    "SubscriptionRecovered": ("subscription_recovered", None),
    # App Marketplace trigger names (current and legacy lists)
    "Product Purchased": ("product_purchased", None),
    "Order Completed": ("product_purchased", None),
    "Upsell Purchased": ("product_purchased", "upsell"),
    "Product Refunded": ("product_refunded", None),
    "Product Partially Refunded": ("product_partially_refunded", None),
    "Product Added to Order": ("product_added_to_order", None),
    "Prospect Created": ("prospect_created", None),
    "Prospect Created (cart abandonment)": ("prospect_created", None),
    "Subscription Started": ("subscription_started", None),
    "Subscription Charged": ("subscription_charged", None),
    "Subscription Charge Failed": ("subscription_charge_failed", None),
    "Subscription Delinquent": ("subscription_delinquent", None),
    "Subscription Canceled": ("subscription_canceled", None),
    "Subscription Cancelled": ("subscription_canceled", None),
    "Subscription Recovered": ("subscription_recovered", None),
    "Subscription Restarted": ("subscription_restarted", None),
    "Subscription Completed": ("subscription_completed", None),
    "Subscription Complete": ("subscription_completed", None),
    # Courses (UNCONFIRMED names: one integrator's map, §2.3, and our own labels)
    "Student Added to Course": ("course_enrolled", None),
    "Student Enrolled in Course": ("course_enrolled", None),
    "Student Removed from Course": ("course_removed", None),
    "Student Started Course": ("course_started", None),
    "Student Finished Course": ("course_completed", None),
    "Student Completed Course": ("course_completed", None),
}
# Our own keys are accepted too, bare or namespaced: product_purchased, samcart.product_purchased, and
# §7's dotted ids (product.purchased, subscription.charge_failed, course.enrolled …) normalise to the same text.
NAMES.update({key: (key, None) for key in TRIGGER_KEYS})
NAMES.update({f"samcart.{key}": (key, None) for key in TRIGGER_KEYS})

# SamCart ids are numbers; anything longer than this is not one (and must fit the plugin state's key).
MAX_ID = 100
# The fields that identify one charge, rebill or moment (issue 10, "Identity and redelivery").
REF_FIELDS = (
    "charge_id",
    "subscription_rebill_id",
    "rebill_id",
    "transaction_id",
    "processor_transaction_id",
    "refund_transaction_id",
    "created_at",
    "occurred_at",
)
_TIME_FIELDS = ("created_at", "occurred_at")
_SOURCES = {
    "primary": "primary",
    "main": "primary",
    "upsell": "upsell",
    "downsell": "upsell",
    "oto": "upsell",
    "bump": "order_bump",
    "orderbump": "order_bump",
    "paymentoption": "payment_option",
}
assert set(_SOURCES.values()) <= set(PURCHASE_SOURCES)
_AMOUNT = re.compile(r"^(?:\d+|\d{1,3}(?:,\d{3})+)?(?:\.\d+)?$")
_AMOUNTS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d])|\d*\.?\d+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_CENTS = 2**63 - 1
_MAX_SHOWN = 80  # characters of a received value quoted back in a note or a reason


def normalise(name: str) -> str:
    """What names are compared on: case, spaces, underscores, hyphens, dots (any punctuation) ignored."""
    return re.sub(r"[\W_]+", "", name.casefold())


_BY_NORMALISED = {normalise(name): value for name, value in NAMES.items()}


def shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…")


# --- the connection's "type names" field ---------------------------------------------------------------------


def parse_aliases(text: str | None) -> dict[str, str]:
    """The connection's optional type names: one ``Received name = trigger`` a line (``samcart.`` optional on the
    trigger), blank lines and ``#`` comments ignored. Returns {received name: trigger short key}; raises ValueError
    naming the line for anything else, so the connection form shows it next to the field."""
    aliases: dict[str, str] = {}
    seen: dict[str, int] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, trigger = line.rpartition("=")
        name, trigger = name.strip(), trigger.strip()
        if not equals or not name:
            raise ValueError(
                f"Line {number}: write `Received name = trigger`, e.g. "
                f"`Student Enrolled = course_enrolled`; got {shown(line)}."
            )
        if not normalise(name):
            raise ValueError(f"Line {number}: the received name {shown(name)} has no letters or digits.")
        key = trigger.removeprefix("samcart.")
        if key not in TRIGGER_KEYS:
            raise ValueError(
                f"Line {number}: {shown(trigger)} is not a SamCart trigger; use one of {', '.join(TRIGGER_KEYS)}."
            )
        earlier = seen.get(normalise(name))
        if earlier is not None:
            raise ValueError(f"Line {number}: {shown(name)} is already named on line {earlier}.")
        seen[normalise(name)] = number
        aliases[name] = key
    return aliases


# --- reading a body --------------------------------------------------------------------------------------------


@dataclass
class Line:
    """One product line of a delivery: SamCart's one ``product`` object, or one piece of comma-joined lists."""

    id: str
    name: str | None = None
    price_cents: int | None = None
    source: str | None = None


@dataclass
class Reading:
    name: str | None  # the type as sent (None: the body names none)
    trigger: str | None  # its trigger short key (None: unknown)
    source: str | None  # the purchase source the name says (Upsell Purchased)
    customer: dict
    lines: list[Line]
    order: dict  # id, total_cents, currency, purchase_source (only those found)
    subscription_ids: list[str]
    subscription_status: str | None
    charge: dict  # id, rebill_id
    course: dict | None
    refs: list[str]  # "place.field=value" for each charge/rebill id or time found, in a fixed order
    notes: list[str] = field(default_factory=list)
    objects: Mapping = field(default_factory=dict)  # where the customer/order/product objects live
    envelope: Mapping = field(default_factory=dict)  # the body itself

    @property
    def recurring(self) -> bool:
        """A subscription's event after its start: its order is the original purchase's (SamCart reuses it)."""
        return (
            bool(self.trigger) and self.trigger.startswith("subscription_") and self.trigger != "subscription_started"
        )


def _mapping(value) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def text(value) -> str | None:
    """A scalar as text (form bodies send everything as text, JSON sends numbers); None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = int(value) if value.is_integer() and abs(value) < 1e18 else value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        # Text no database can store (NUL, a lone surrogate) is as good as absent: the event must still be made.
        if "\x00" in value or _SURROGATE.search(value):
            return None
        return value.strip() or None
    return None


def as_id(value) -> str | None:
    found = text(value)
    return found if found is not None and len(found) <= MAX_ID and found.isprintable() else None


def _pieces(value) -> list:
    """A comma-joined text (or a form's list) as its pieces; a lone scalar as itself."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value:
        return [piece.strip() for piece in value.split(",")]
    return [] if value is None else [value]


def cents(value) -> int | None:
    """Decimal dollars ("49.00", "$1,049.00", 49, 49.5) as integer cents, rounded half up; None when it is not
    a non-negative amount. Decimal, not float: 0.1 + 0.2 dollars is 30 cents, not 30.000000000000004."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > 1e15:
            return None
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        raw = value.strip().removeprefix("$").strip()
        if raw.upper().startswith("USD"):
            raw = raw[3:].strip()
        if not raw or len(raw) > 32 or not any(c.isdigit() for c in raw) or not _AMOUNT.match(raw):
            return None
        amount = Decimal(raw.replace(",", ""))
    else:
        return None
    try:
        result = int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        return None
    return result if 0 <= result <= _MAX_CENTS else None


def instant(value, received_at: datetime) -> datetime | None:
    """SamCart's "YYYY-MM-DD HH:MM:SS" (UTC, no zone) or ISO 8601, as an aware UTC datetime; None when it is not a
    time, or not a plausible one (before 1970, or more than a day after the delivery arrived)."""
    raw = text(value) if isinstance(value, str) else None
    if raw is None or len(raw) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        parsed = parsed.astimezone(timezone.utc)
    except OverflowError:
        return None
    earliest = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return parsed if earliest <= parsed <= received_at + timedelta(days=1) else None


def _name_candidates(body: Mapping, objects: Mapping) -> list:
    seen = []
    for where in (body, objects):
        for key in ("type", "event", "event_type"):
            if key in where and where[key] not in seen:
                seen.append(where[key])
    return seen


def _objects(body: Mapping) -> Mapping:
    """The ``event_type`` / ``data`` shape (§9) keeps the objects under ``data``; the legacy shape at the top."""
    data = body.get("data")
    if isinstance(data, Mapping) and (
        "event_type" in body or not any(k in body for k in ("customer", "order", "product"))
    ):
        return data
    return body


def recognise(body: Mapping, aliases: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(the name as sent, its trigger short key or None, the purchase source it says). The first of ``type``,
    ``event``, ``event_type`` (top level, then under ``data``) that maps wins; the merchant's names come first."""
    by_alias = {normalise(name): key for name, key in aliases.items() if isinstance(name, str)}
    first = None
    for candidate in _name_candidates(body, _objects(body)):
        name = text(candidate)
        if name is None:
            continue
        first = first or name
        key = normalise(name)
        if key in by_alias and by_alias[key] in TRIGGER_KEYS:
            return name, by_alias[key], None
        if key in _BY_NORMALISED:
            return (name, *_BY_NORMALISED[key])
    return first, None, None


def _customer(objects: Mapping) -> dict:
    # SamCart sends a customer object; a prospect's shape is UNCONFIRMED, so a prospect object or top-level
    # contact fields stand in when there is no customer.
    person = next(
        (
            candidate
            for candidate in (objects.get("customer"), objects.get("prospect"))
            if isinstance(candidate, Mapping)
        ),
        objects,
    )
    found = {
        "email": text(person.get("email")),
        "first_name": text(person.get("first_name")),
        "last_name": text(person.get("last_name")),
        "phone": text(person.get("phone_number")) or text(person.get("phone")),
        "id": as_id(person.get("id")) or as_id(person.get("customer_id")),
    }
    return {k: v for k, v in found.items() if v is not None}


def _source(value, notes: list[str]) -> str | None:
    raw = text(value)
    if raw is None:
        return None
    source = _SOURCES.get(normalise(raw)) or (raw if raw in PURCHASE_SOURCES else None)
    if source is None:
        notes.append(f"purchase source {shown(raw)} is not one of {', '.join(PURCHASE_SOURCES)}: left out")
    return source


def _split_prices(value, count: int) -> list | None:
    """The prices of ``count`` lines, or None when they do not pair up. In text, commas both join the list and
    group thousands ("1,049.00,19.00"): when the text reads as amounts, that reading decides, so "1,049.00" for
    two products is one price (left out), never $1 and $0.49. Text that does not read as amounts is split on its
    commas, and each piece that is not an amount is left out on its own."""
    if not isinstance(value, str):
        pieces = _pieces(value)
        return pieces if len(pieces) == count else None
    compact = value.replace("$", "").replace(" ", "")
    tokens = _AMOUNTS.findall(compact)
    if ",".join(tokens) == compact:
        return tokens if len(tokens) == count else None
    pieces = _pieces(value)
    return pieces if len(pieces) == count else None


def _lines_of(product: Mapping, notes: list[str]) -> list[Line]:
    raw_ids = product.get("id", product.get("product_id"))
    pieces = _pieces(raw_ids)
    ids = [as_id(piece) for piece in pieces]
    if None in ids:
        notes.append(f"product id {shown(raw_ids)} has pieces that are not ids: those were left out")
    if not any(ids):
        return []
    count = len(pieces)  # pairing is by position among what was sent, so a bad piece shifts nothing
    price = product.get("price")
    prices = [price] if count == 1 else (_split_prices(price, count) if price is not None else None)
    if price is not None and prices is None:
        notes.append(
            f"{count} product ids but price {shown(price)} does not split into {count} amounts: "
            "the prices were left out"
        )
    name = product.get("name")
    names = [name] if count == 1 else _pieces(name) if isinstance(name, str) else None
    if name is not None and (names is None or len(names) != count):
        notes.append(
            f"{count} product ids but the name {shown(name)} does not split into {count} names: the names were left out"
        )
        names = None
    raw_source = product.get("purchase_source", product.get("source"))
    source = _source(raw_source, notes)
    lines = []
    for index, product_id in enumerate(ids):
        if product_id is None:
            continue
        line = Line(product_id, name=text(names[index]) if names else None, source=source)
        if prices is not None:
            line.price_cents = cents(prices[index])
            if line.price_cents is None and prices[index] is not None:
                notes.append(f"product {product_id}: price {shown(prices[index])} is not an amount: left out")
        lines.append(line)
    return lines


def _lines(objects: Mapping, notes: list[str]) -> list[Line]:
    product = objects.get("product")
    if product is None and isinstance(objects.get("products"), (list, tuple)):
        product = objects["products"]
    if isinstance(product, Mapping):
        return _lines_of(product, notes)
    if isinstance(product, (list, tuple)):
        lines = []
        for item in product:
            if isinstance(item, Mapping):
                lines += _lines_of(item, notes)
            else:
                notes.append(f"a product entry {shown(item)} is not an object: left out")
        return lines
    if product is not None:
        notes.append(f"product {shown(product)} is not an object: left out")
    return []


def _order(objects: Mapping, notes: list[str]) -> dict:
    order = _mapping(objects.get("order"))
    if objects.get("order") is not None and not order:
        notes.append(f"order {shown(objects.get('order'))} is not an object: left out")
    found: dict = {"id": as_id(order.get("id")) or as_id(objects.get("order_id"))}
    total = order.get("total", objects.get("total") if "order" not in objects else None)
    if total is not None:
        found["total_cents"] = cents(total)
        if found["total_cents"] is None and text(total) is not None:
            notes.append(f"order total {shown(total)} is not an amount: left out")
    currency = text(order.get("currency", objects.get("currency")))
    if currency is not None:
        if re.fullmatch(r"[A-Za-z]{3}", currency):
            found["currency"] = currency.upper()
        else:
            notes.append(f"currency {shown(currency)} is not a 3-letter code: left out")
    source = order.get("purchase_source", objects.get("purchase_source"))
    if source is not None:
        found["purchase_source"] = _source(source, notes)
    return {k: v for k, v in found.items() if v is not None}


def _subscription_ids(objects: Mapping) -> list[str]:
    subscription = _mapping(objects.get("subscription"))
    found: list[str] = []
    for raw in (
        _mapping(objects.get("order")).get("subscription_id"),
        objects.get("subscription_id"),
        subscription.get("id"),
    ):
        for piece in _pieces(raw):
            sid = as_id(piece)
            if sid is not None and sid not in found:
                found.append(sid)
    return found


def _places(body: Mapping, objects: Mapping) -> list[tuple[str, Mapping]]:
    places = [("", body)]
    if isinstance(body.get("data"), Mapping):
        places.append(("data.", body["data"]))
    return places + [(f"{name}.", _mapping(objects.get(name))) for name in ("order", "charge", "product")]


def _refs(body: Mapping, objects: Mapping, recurring: bool) -> list[str]:
    refs = []
    for prefix, where in _places(body, objects):
        names = ("id",) + REF_FIELDS if prefix == "charge." else REF_FIELDS
        for name in names:
            if recurring and prefix == "order." and name in _TIME_FIELDS:
                continue  # a rebill carries its original order: the order's time is the first purchase's
            if prefix == "product." and name in _TIME_FIELDS:
                continue  # when the product was made, not when anything happened to it
            value = text(where.get(name)) if name in where else None
            if value is not None and len(value) <= 200:
                refs.append(f"{prefix}{name}={value}")
    return refs


def _course(objects: Mapping) -> dict | None:
    course = _mapping(objects.get("course"))
    found = {
        "id": as_id(course.get("id")) or as_id(objects.get("course_id")),
        "name": text(course.get("name")) or text(objects.get("course_name")),
    }
    found = {k: v for k, v in found.items() if v is not None}
    return found or None


def _charge(objects: Mapping) -> dict:
    charge, order = _mapping(objects.get("charge")), _mapping(objects.get("order"))
    found = {
        "id": as_id(charge.get("id")) or as_id(objects.get("charge_id")) or as_id(order.get("charge_id")),
        "rebill_id": as_id(objects.get("subscription_rebill_id"))
        or as_id(order.get("subscription_rebill_id"))
        or as_id(charge.get("subscription_rebill_id")),
    }
    return {k: v for k, v in found.items() if v is not None}


def read(body: Mapping, aliases: Mapping[str, str] | None = None) -> Reading:
    """Everything mapping.py needs from a body; never raises, whatever the body holds."""
    objects = _objects(body)
    name, trigger, source = recognise(body, aliases or {})
    notes: list[str] = []
    reading = Reading(
        name=name,
        trigger=trigger,
        source=source,
        customer=_customer(objects),
        lines=_lines(objects, notes),
        order=_order(objects, notes),
        subscription_ids=_subscription_ids(objects),
        subscription_status=text(_mapping(objects.get("subscription")).get("status")),
        charge=_charge(objects),
        course=_course(objects),
        refs=[],
        notes=notes,
        objects=objects,
        envelope=body,
    )
    reading.refs = _refs(body, objects, reading.recurring)
    return reading


def timestamp(reading: Reading, received_at: datetime) -> tuple[datetime | None, list[str]]:
    """When the event happened, by the body: the first plausible time among occurred_at, the charge's created_at,
    created_at (and the order's, except for a subscription's later events); None when the body gives none."""
    objects, body = reading.objects, reading.envelope
    order, charge = _mapping(objects.get("order")), _mapping(objects.get("charge"))
    prospect = _mapping(objects.get("prospect"))
    if reading.trigger == "prospect_created":  # when the prospect was created, not when SamCart told us
        candidates = [("created_at", objects), ("created_at", prospect), ("created_at", body)]
    else:
        candidates = [
            ("occurred_at", objects),
            ("occurred_at", body),
            ("created_at", charge),
            ("created_at", objects),
            ("created_at", body),
        ]
        if not reading.recurring:
            candidates.append(("created_at", order))
    notes = []
    for name, where in candidates:
        if name in where and text(where.get(name)) is not None:
            found = instant(where.get(name), received_at)
            if found is not None:
                return found, notes
            notes.append(f"{name} {shown(where.get(name))} is not a plausible time: not used")
    return None, notes
