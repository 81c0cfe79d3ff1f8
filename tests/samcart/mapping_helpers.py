"""What the mapping tests share: the fixture bodies, a plugin state kept as JSON (as the database keeps it), and a
map() that checks every event it returns would pass the core's own validation."""

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

from hookyard import InboundEvent
from hookyard.emit import validate_payload
from hookyard_samcart import trigger_types
from hookyard_samcart.mapping import map_delivery

BODIES = Path(__file__).parent / "bodies"
RECEIVED = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
TRIGGERS = {t.key: t for t in trigger_types()}


def body(name: str) -> dict:
    return json.loads((BODIES / f"{name}.json").read_text())


class JSONState:
    """PluginState as the core keeps it: JSON documents, so a value that does not survive JSON fails here too."""

    def __init__(self):
        self.docs: dict[str, str] = {}
        self.writes = 0

    def get(self, key):
        return json.loads(self.docs[key]) if key in self.docs else None

    def set(self, key, value):
        assert isinstance(value, dict)
        self.docs[key] = json.dumps(value)
        self.writes += 1

    def snapshot(self) -> dict:
        return copy.deepcopy(self.docs)


def check_event(event: InboundEvent) -> dict:
    """The event as the core will see it: a registered trigger, a payload its schema loads (product required for a
    product-scoped one, the inputs limits), JSON-storable, with an identity."""
    assert isinstance(event, InboundEvent)
    assert event.trigger in TRIGGERS, event.trigger
    json.dumps(event.payload)
    data = validate_payload(TRIGGERS[event.trigger], dict(event.payload))
    assert event.identity
    return data


def map_(b, *, delivery_id=1, received_at=RECEIVED, state=None, **kwargs) -> list[InboundEvent]:
    events = map_delivery(
        b, delivery_id=delivery_id, received_at=received_at, state=JSONState() if state is None else state, **kwargs
    )
    for event in events:
        check_event(event)
    return events


def short(events) -> list[str]:
    return [e.trigger.removeprefix("samcart.") for e in events]
