"""A stored SamCart Notify URL delivery → the events it means (the table in docs/samcart.md, "The mapping").

``map_delivery`` is the inbound handler's whole job: notify.py reads the body, dunning.py keeps each subscription's
history, and this module pairs product lines with subscriptions, builds the canonical payloads (validated with
SamCartPayload here, so a body that can never be used is ``Rejected`` with the field that is wrong) and gives each
event its identity (the core hashes it with the trigger; the same identity again is a duplicate).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Mapping

from marshmallow import ValidationError

from hookyard import InboundEvent, Rejected, Unmapped

from . import dunning, notify
from .payload import SamCartPayload

# SamCart sends Prospect Created 2 hours after the prospect was created; the trigger's runs wait 2 hours after
# occurred_at (hookyard_samcart.PROSPECT_DELAY). Dating the event back makes the rules run when SamCart's would.
SAMCART_PROSPECT_DELAY = timedelta(hours=2)

ONCE_PER_ORDER_LINE = ("product_purchased", "product_added_to_order", "product_refunded")
COURSE = ("course_enrolled", "course_removed", "course_started", "course_completed")
_EMPTY: Mapping = MappingProxyType({})


def _identity(*parts: tuple[str, object] | str) -> str:
    """ "name=value|…" of the parts that have a value; a text part is already "name=value|…"."""
    texts = [
        part if isinstance(part, str) else f"{part[0]}={part[1]}"
        for part in parts
        if (part if isinstance(part, str) else part[1]) not in (None, "")
    ]
    return "|".join(texts)


def _flatten(messages, path=()) -> list[str]:
    if isinstance(messages, dict):
        return [line for key, value in messages.items() for line in _flatten(value, (*path, str(key)))]
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{'.'.join(path) or 'body'}: {' '.join(messages)}"]
    return [f"{'.'.join(path) or 'body'}: {messages}"]


def _unmapped(reading: notify.Reading) -> Unmapped:
    if reading.name is None:
        return Unmapped(
            "The body names no SamCart trigger (no type, event or event_type field), so it cannot be "
            "mapped; it is kept as received."
        )
    example = reading.name.replace("=", " ").splitlines()[0][:80] if reading.name else "Name"
    return Unmapped(
        f"Unknown SamCart type {notify.shown(reading.name)}. To map it, add a line "
        f"`{example} = <trigger>` to the connection's type names (Extra notification types), with the "
        "trigger it means (e.g. subscription_canceled; the list is in docs/samcart.md), then process "
        "this delivery again."
    )


class _Builder:
    """One delivery's events: the shared parts of their payloads, and the notes every one of them carries."""

    def __init__(self, reading: notify.Reading, delivery_id: int, received_at: datetime, looked_up: Mapping):
        self.reading, self.delivery_id = reading, delivery_id
        self.trigger = reading.trigger
        self.notes = list(reading.notes)
        # As the core stores it (stripped, lower-cased), so that identities do not depend on how it was typed.
        self.email = (reading.customer.get("email") or "").strip().lower()
        if not self.email:
            raise Rejected(
                "No customer email (customer.email): SamCart's events are about a customer, and every rule acts on one."
            )
        at, time_notes = notify.timestamp(reading, received_at)
        self.notes += time_notes
        if self.trigger == "prospect_created":
            if at is None:
                at = received_at - SAMCART_PROSPECT_DELAY
                self.notes.append(
                    "SamCart sends Prospect Created 2 hours after the prospect was created: dated "
                    "2 hours before it arrived, so its rules run when SamCart's would"
                )
            else:
                self.notes.append(
                    "dated when the prospect was created; its rules run 2 hours after that, as SamCart's do"
                )
        self.occurred_at = (at or received_at).isoformat()
        status = notify.text(looked_up.get("subscription_status"))
        self.looked_up_status = status.lower() if status else None
        self.refs = "|".join(reading.refs)

    def payload(
        self, line: notify.Line | dict | None, subscription_id: str | None = None, *, first_subscription: bool = False
    ) -> dict:
        reading = self.reading
        order = dict(reading.order)
        source = (line.source if isinstance(line, notify.Line) else None) or reading.source
        if source:
            order["purchase_source"] = source
        payload: dict = {"customer": dict(reading.customer), "occurred_at": self.occurred_at}
        if isinstance(line, notify.Line):
            payload["product"] = {
                k: v
                for k, v in (("id", line.id), ("name", line.name), ("price_cents", line.price_cents))
                if v is not None
            }
        elif line:
            payload["product"] = {k: v for k, v in line.items() if v is not None}
        if order:
            payload["order"] = order
        if subscription_id:
            status = reading.subscription_status or (self.looked_up_status if first_subscription else None)
            payload["subscription"] = {"id": subscription_id, **({"status": status} if status else {})}
        if reading.charge:
            payload["charge"] = dict(reading.charge)
        if reading.course:
            payload["course"] = dict(reading.course)
        return payload

    def check(self, trigger: str, payload: dict) -> None:
        """The core validates again; here a body that can never be used is Rejected, naming the field."""
        try:
            SamCartPayload().load(payload)
        except ValidationError as exc:
            raise Rejected("The body cannot make a valid event: " + "; ".join(_flatten(exc.messages))) from None
        if trigger not in COURSE and not (payload.get("product") or {}).get("id"):
            raise Rejected(
                f"No product id (product.id): samcart.{trigger} is about a product, and the body names "
                "none"
                + (" (nor do this subscription's earlier deliveries)" if self.reading.subscription_ids else "")
                + "."
            )

    def occurrence(self) -> str:
        """What tells this occurrence apart from another of the same line: the charge ids and times the body
        carries, else the delivery itself (processing it again repeats the identity, a duplicate; the same thing
        sent again later, say next month's charge, is another delivery and another event)."""
        return self.refs or f"delivery={self.delivery_id}"

    def event(self, trigger: str, payload: dict, identity: str, note: str = "") -> InboundEvent:
        return InboundEvent(
            trigger=f"samcart.{trigger}",
            payload=payload,
            identity=identity,
            note="; ".join(part for part in [note, *self.notes] if part),
        )


def _line_identity(b: _Builder, trigger: str, line: notify.Line | None) -> str:
    order_id = b.reading.order.get("id")
    if line is None:
        return ""  # never used: a trigger about a product without one is rejected first
    if trigger in ONCE_PER_ORDER_LINE and order_id:
        return _identity(("order", order_id), ("product", line.id))
    if trigger in COURSE:
        course_id = (b.reading.course or {}).get("id")
        return _identity(("customer", b.email), ("course", course_id), ("product", line.id), b.occurrence())
    if trigger == "subscription_started" and order_id:
        return _identity(("order", order_id), ("product", line.id))
    return _identity(
        ("order", order_id), ("product", line.id), ("customer", None if order_id else b.email), b.occurrence()
    )


def _pairs(b: _Builder, state, lines: list[notify.Line]) -> list[tuple[str, notify.Line | dict | None]]:
    """Each subscription id with its product line: pairwise when the counts agree; one id with several lines
    belongs to the first (SamCart's primary product comes first); no line: the product this subscription's
    earlier deliveries named."""
    sids = b.reading.subscription_ids
    if len(sids) > 1 and lines and len(sids) != len(lines):
        b.notes.append(f"{len(sids)} subscription ids for {len(lines)} products: paired in order")
    elif len(sids) == 1 and len(lines) > 1:
        b.notes.append(f"one subscription id for {len(lines)} products: taken as product {lines[0].id}'s")
    pairs = []
    for index, sid in enumerate(sids):
        line = lines[index] if index < len(lines) else (lines[0] if len(sids) == 1 and lines else None)
        if line is None:
            line = dunning.remembered_product(state, sid)
            if line is not None:
                b.notes.append(f"product {line['id']} taken from subscription {sid}'s earlier deliveries")
        pairs.append((sid, line))
    return pairs


def _product_id(line) -> str | None:
    return line.id if isinstance(line, notify.Line) else (line or {}).get("id")


def map_delivery(
    body: Mapping,
    *,
    delivery_id: int,
    received_at: datetime,
    state,
    looked_up: Mapping = _EMPTY,
    aliases: Mapping[str, str] = _EMPTY,
) -> list[InboundEvent]:
    """The events one delivery means. Raises Unmapped for a type it does not know (or none), Rejected for a body
    that can never make an event. Every payload is checked, and every Rejected raised, before the state is touched."""
    if not isinstance(body, Mapping):
        raise Rejected("The body is not an object (JSON object or form fields): there is nothing to read.")
    if received_at.tzinfo is None:  # the contract says aware UTC; a naive one is taken as UTC, as SamCart's are
        received_at = received_at.replace(tzinfo=timezone.utc)
    reading = notify.read(body, aliases)
    if reading.trigger is None:
        raise _unmapped(reading)
    b = _Builder(reading, delivery_id, received_at, looked_up)
    trigger, lines = reading.trigger, reading.lines
    pairs = _pairs(b, state, lines) if reading.subscription_ids else []
    sid_of_line = {id(line): sid for sid, line in pairs if isinstance(line, notify.Line)}
    outcome = trigger if trigger in dunning.OUTCOMES else None
    planned: list[tuple[str, dict, str, str]] = []  # (trigger, payload, identity, note)
    # Whatever the body is about, the subscriptions it names keep their history (their product, their completion);
    # for the subscription outcomes (charged, failed, …) the history decides the events.
    histories: list[tuple[str, dict]] = []  # (subscription id, payload)

    def plan(kind: str, payload: dict, identity: str, note: str = "") -> None:
        b.check(kind, payload)
        planned.append((kind, payload, identity, note))

    if outcome is not None and pairs:
        for index, (sid, line) in enumerate(pairs):
            payload = b.payload(line, sid, first_subscription=index == 0)
            b.check(trigger, payload)
            histories.append((sid, payload))
    elif outcome is not None:
        for line in lines or [None]:  # None: raises, no product
            plan(
                trigger,
                b.payload(line),
                _line_identity(b, trigger, line),
                "no subscription id: reported as sent, without the subscription's history",
            )
    elif trigger == "subscription_started" and pairs:
        for index, (sid, line) in enumerate(pairs):
            payload = b.payload(line, sid, first_subscription=index == 0)
            plan(trigger, payload, _identity(("subscription", sid), ("product", _product_id(line))))
            histories.append((sid, payload))
    elif trigger in COURSE and not lines:
        plan(
            trigger,
            b.payload(None),
            _identity(("customer", b.email), ("course", (reading.course or {}).get("id")), b.occurrence()),
        )
        histories += [
            (sid, b.payload(line, sid, first_subscription=index == 0))
            for index, (sid, line) in enumerate(pairs)
            if _product_id(line)
        ]
    else:
        for line in lines or [None]:
            sid = sid_of_line.get(id(line))
            plan(
                trigger,
                b.payload(line, sid, first_subscription=bool(pairs) and sid == pairs[0][0]),
                _line_identity(b, trigger, line),
            )
        for index, (sid, line) in enumerate(pairs):
            if not _product_id(line):
                continue  # more subscription ids than product lines: the product lines were all made above
            payload = b.payload(line, sid, first_subscription=index == 0)
            if trigger == "product_purchased":
                plan(
                    "subscription_started",
                    payload,
                    _identity(("subscription", sid), ("product", _product_id(line))),
                    "the purchased product carries a subscription id",
                )
            histories.append((sid, payload))

    events = [b.event(kind, payload, identity, note) for kind, payload, identity, note in planned]
    delivery = dunning.Delivery(delivery_id, received_at, b.refs or None)
    for index, (sid, payload) in enumerate(histories):
        product = payload.get("product")
        completed = index == 0 and b.looked_up_status == "completed"
        for derived in dunning.apply(state, sid, outcome, delivery, product=product, completed=completed):
            identity = _identity(("subscription", sid), ("product", (product or {}).get("id")), derived.key)
            events.append(b.event(derived.trigger, payload, identity, derived.note))
    return events


def delivery_identity(body) -> str | None:
    """The delivery's own identity when its body carries a charge id, rebill id or time (for a subscription's later
    events, not the order's time: SamCart reuses the original order on every rebill); None when it carries none.
    Built with the type, the order id, the product ids and the subscription ids, so two charges at one second
    of two subscriptions stay two deliveries."""
    if not isinstance(body, Mapping):
        return None
    reading = notify.read(body)
    if not reading.refs:
        return None
    return "|".join(
        [
            f"type={notify.normalise(reading.name or '')}",
            f"order={reading.order.get('id', '')}",
            f"products={','.join(line.id for line in reading.lines)}",
            f"subscriptions={','.join(reading.subscription_ids)}",
            *reading.refs,
        ]
    )


def subscription_ids(body) -> list[str]:
    """The subscription ids a body names, first the order's (for the API lookup of the first one's status)."""
    return notify.read(body).subscription_ids if isinstance(body, Mapping) else []
