"""The value types plugins build: trigger types, apps, actions, and the outcome of one action run."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import AbstractSet, Any, Callable, Iterable, Literal, Mapping, Protocol

from marshmallow import Schema

from .fields import is_secret

# Payload schemas load to a dict; the core reads these conventional keys from it (all optional
# except where a trigger is product-scoped): customer.email, product.id, product.name, occurred_at.


@dataclass(frozen=True)
class TriggerType:
    key: str
    label: str
    category: str
    description: str
    payload_schema: type[Schema]
    product_scoped: bool = True
    # Runs wait this long after ``occurred_at`` (e.g. cart abandonment: 2 hours).
    delay: timedelta | None = None
    # A delayed run is skipped when an event of one of these trigger keys, for the same email and
    # product, occurred between this event and the run: "they bought after all".
    cancelled_by: tuple[str, ...] = ()
    # The event's natural identity in the validated payload (e.g. order + product + charge), or None when
    # it has none: a second delivery with the same identity is answered with the first event, even without
    # an Idempotency-Key. Must not be the same for two different real-world events.
    dedupe_key: Callable[[Mapping[str, Any]], str | None] | None = None
    # A realistic sample payload (fake people, the plugin's own kind of ids), as a client would send it: what
    # "test a rule with the example" runs on. Loaded through payload_schema when the plugins load, so a broken
    # example stops startup naming its plugin rather than failing the first test. Added in hook API 1.2.
    example: Mapping[str, Any] | None = None
    # What the event means for the customer's access, read by access reconciliation (hookyard.reconcile): "grants"
    # (a purchase, a subscription started), "revokes" (a refund, a cancellation) or None (neither: a charge, an
    # abandoned cart). Added in hook API 1.2.
    access: Literal["grants", "revokes"] | None = None


@dataclass(frozen=True)
class Outcome:
    status: Literal["succeeded", "skipped", "failed"]
    reason: str = ""
    retryable: bool = False
    retry_after: float | None = None  # seconds; a hint from the remote (e.g. Retry-After)
    needs_attention: bool = False  # the connection itself is broken (bad key, plan): tell the operator
    details: Mapping[str, Any] = field(default_factory=dict)  # kept with the attempt, e.g. {"api_calls": 2}

    @classmethod
    def succeeded(cls, note: str = "", *, details: Mapping[str, Any] | None = None) -> "Outcome":
        return cls("succeeded", note, details=details or {})

    @classmethod
    def skipped(cls, reason: str, *, details: Mapping[str, Any] | None = None) -> "Outcome":
        return cls("skipped", reason, details=details or {})

    @classmethod
    def failed(
        cls,
        reason: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        needs_attention: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> "Outcome":
        return cls("failed", reason, retryable, retry_after, needs_attention, details or {})


class Deferred(Exception):
    """Raised (usually by ``RunContext.pace``) to run the action again later without using up an attempt."""

    def __init__(self, seconds: float, reason: str):
        super().__init__(reason)
        self.seconds = seconds
        self.reason = reason


def _no_pacing(bucket: str, limit: int, window: float) -> None:
    return None


def _not_reported(method: str, url: str, **details: Any) -> None:
    return None


@dataclass(frozen=True)
class RunContext:
    """What an action sees when it runs: the event, the rule's parameters and the connection."""

    run_id: int
    attempt: int  # 1 for the first try
    trigger: str
    email: str | None
    payload: Mapping[str, Any]  # the validated, normalised trigger payload
    params: Mapping[str, Any]
    config: Mapping[str, Any]  # the connection's config, secrets decrypted
    info: Mapping[str, Any]  # what verify() returned when the connection was last checked
    options: Mapping[str, Any]  # the option lists cached by the last refresh()
    marketplace_id: int = 0
    integration_id: int = 0
    # Call before each request to a rate-limited remote: ``ctx.pace("circle", limit=1800, window=300)``.
    # The budget is shared by every worker and split fairly between connections; when this
    # connection is over its share it waits briefly or raises Deferred.
    pace: Callable[[str, int, float], None] = _no_pacing
    # A test of the rule (hookyard.ruletest) in dry-run: make the look-ups (reads) for real, send no write, and
    # report each write instead. Only set for an action that declares dry_run=True. Added in hook API 1.2.
    dry_run: bool = False
    # report_call(method, url, *, query=None, body=None, headers=None, status=None, sent=True): one remote call,
    # made (sent=True, with the status answered) or, in a dry-run, not sent (sent=False). Call it for every call,
    # live too: a test shows the calls a rule made. The core masks secrets in what is reported (the connection's
    # secret values, credential-like keys) before anyone sees it; still, never hand it an Authorization header.
    # Outside a test it does nothing. Added in hook API 1.2.
    report_call: Callable[..., None] = _not_reported


# One thing in an app's remote that people are in or not: ("community", None), ("space", 12), ("member_tag", 7).
Target = tuple[str, Any]


@dataclass(frozen=True)
class Access:
    """What an action does to the customer's access: it ``grants`` or ``revokes`` the targets ``targets(params)``
    names for the rule's parameters (Circle: an invite grants the community and the spaces, groups and tags it
    names). Read by access reconciliation (hookyard.reconcile). Added in hook API 1.2."""

    kind: Literal["grants", "revokes"]
    targets: Callable[[Mapping[str, Any]], Iterable[Target]]


@dataclass(frozen=True)
class Action:
    key: str
    label: str
    params_schema: type[Schema]
    run: Callable[[RunContext], Outcome]
    description: str = ""
    # The action honours RunContext.dry_run (reads for real, writes reported and not sent): it can be tested in
    # dry-run. One that does not can only be tested live, for one email. Added in hook API 1.2.
    dry_run: bool = False
    # The access it gives or takes (Access), or None: it gives and takes none (an event RSVP, a webhook). Added in
    # hook API 1.2.
    access: Access | None = None


@dataclass(frozen=True)
class Holders:
    """Who holds each target, as ``Members.read`` found it (lower-cased emails). A target in ``partial`` was only
    asked about for the candidates ``read`` was handed (the remote would not list it), so who else is in it is
    unknown."""

    members: Mapping[Target, AbstractSet[str]]
    partial: AbstractSet[Target] = frozenset()


@dataclass(frozen=True)
class Members:
    """Declares that an app can tell who holds each target its actions' Access names, for access reconciliation.
    ``read(config, info, candidates, progress=None, pace=None)`` is handed {target: the emails the store's events
    name for it} and returns Holders, making the fewest calls the remote allows and reporting each with
    ``count_calls()``; ``progress`` is a Progress (it raises Cancelled: let it propagate); ``pace`` is the
    connection's share of the remote's budget, as ``RunContext.pace`` is to an action (call it before each request),
    except that it waits rather than defers. ``option_lists`` names, per target type, the
    option list that holds its ids' names ({"space": "spaces"}); ``labels`` the type's word for people
    ({"space_group": "space group"}). Added in hook API 1.2."""

    read: Callable[..., Holders]
    option_lists: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # The target that holds every other (Circle: the community): whoever was taken out of it since is in none of
    # the others either, so they are never reported missing from them.
    root: Target | None = None


@dataclass(frozen=True)
class PastEvents:
    """Declares that an app can list what its remote's API says happened, for a backfill that reads the store's
    API (hook API 1.2). ``read(config, info, since, until, progress=None, triggers=None)`` yields pages (lists) of
    InboundEvent in [since, until), made the way the inbound handler makes them (same identities); ``triggers``,
    a set of trigger keys, is what the backfill wants (skip reading what makes none of them). ``triggers`` here
    names every trigger key ``read`` can make: a backfill of a rule with another trigger does not offer the read,
    and a key no plugin registers stops startup."""

    read: Callable[..., Iterable[list[InboundEvent]]]
    triggers: tuple[str, ...]


class ConnectionFailed(Exception):
    """Raised by ``App.verify``/``App.refresh`` with a message a merchant can act on.

    ``transient`` says the remote is busy or down (429, 5xx): worth a retry, not the merchant's attention.
    ``timed_out`` says the remote did not answer in time (a connect or read timeout): the request that
    called ``verify`` answers 504 with ``Retry-After`` (``retry_after`` seconds when given) instead of 422.
    A timeout is always transient.
    """

    def __init__(
        self,
        message: str,
        field: str | None = None,
        transient: bool = False,
        *,
        timed_out: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.timed_out = timed_out
        self.transient = transient or timed_out
        self.retry_after = retry_after


class Cancelled(Exception):
    """Raised by a refresh's ``progress`` callback when its task was cancelled (or given up): stop there and let it
    propagate. Catching it, or a bare ``except Exception`` around ``progress``, keeps a cancelled refresh running."""


# ``progress(done, total=None, message=None)``: what a long refresh has done so far, e.g. records loaded out of
# the total the remote announced. Shown on the task (GET /api/v1/tasks/{id}); raises Cancelled when cancelled.
Progress = Callable[..., None]


# --- inbound webhooks: an app whose connections receive deliveries (e.g. SamCart's Notify URL) ----------------


@dataclass(frozen=True)
class InboundEvent:
    """One event an inbound handler makes of a delivery; it goes through the same path as ``POST /api/v1/events``
    (validated with the trigger's schema, deduplicated, matched, queued)."""

    trigger: str  # a registered trigger key, e.g. "samcart.product_purchased"
    payload: Mapping[str, Any]
    # The event's identity, used instead of the trigger's dedupe_key: two events of one trigger with the same
    # identity (in one store) are one event, whichever delivery, connection or API call made them first.
    identity: str | None = None
    note: str = ""  # why the handler made it, for the delivery log (e.g. "the 4th failed charge in a row")


class Unmapped(Exception):
    """Raised by a handler for a delivery it does not know how to map (e.g. an unknown ``type``): the delivery is
    kept and shown as ``unmapped`` with this reason, and can be processed again once the mapping knows it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Rejected(Exception):
    """Raised by a handler for a body it can never use (no customer email, an amount that is not a number): the
    delivery is kept as ``rejected`` with this reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PluginState(Protocol):
    """Small JSON documents a plugin keeps between deliveries, per store (marketplace) and app, e.g. the history
    of one subscription. Reads and writes are part of the delivery's transaction: a failed delivery changes
    nothing, and deliveries of one connection are handled one at a time, oldest first."""

    def get(self, key: str) -> dict | None: ...

    def set(self, key: str, value: dict) -> None: ...


@dataclass(frozen=True)
class InboundContext:
    """What an inbound handler sees for one stored delivery."""

    delivery_id: int
    body: Mapping[str, Any]  # the parsed JSON object, or the form fields (``a[b]=1`` nested as {"a": {"b": "1"}})
    received_at: datetime  # aware, UTC
    config: Mapping[str, Any]  # the connection's config, secrets decrypted
    info: Mapping[str, Any]
    looked_up: Mapping[str, Any]  # what Inbound.lookup returned for this delivery ({} without one)
    state: PluginState
    marketplace_id: int = 0
    integration_id: int = 0
    # note("…") explains the outcome in the delivery log, e.g. why a delivery made no event ("the 2nd failed charge
    # in a row: nothing new"); each InboundEvent carries its own note.
    note: Callable[[str], None] = lambda text: None


@dataclass(frozen=True)
class Inbound:
    """Declares that an app's connections receive webhooks: each gets an unguessable URL
    (``/hooks/<app>/<id>``); every delivery is stored as received, then ``handle`` turns it into events in the
    worker. ``handle`` returns InboundEvents (none is fine), or raises Unmapped or Rejected; any other exception
    is a plugin bug, shown as ``failed`` on the delivery with the server log holding the traceback."""

    handle: Callable[[InboundContext], Iterable[InboundEvent]]
    # The delivery's own identity (charge id, rebill id, timestamp…) or None when the body carries none. The same
    # identity again is a redelivery at any time; a body without one is a redelivery only when it is identical to
    # a body received within redelivery_window().
    identity: Callable[[Mapping[str, Any]], str | None] | None = None
    redelivery_window: Callable[[], timedelta] = lambda: timedelta(hours=1)
    # Read-only calls to the app's remote that ``handle`` needs, made first and outside any database transaction:
    # lookup(config, body) -> a mapping handed to handle as ctx.looked_up. Raise nothing: return what is known.
    lookup: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]] | None = None
    # Body keys (at any depth) whose values are replaced by a mask before the delivery is stored.
    secret_fields: tuple[str, ...] = ()
    instructions: str = ""  # where the merchant pastes the URL, shown beside it


# --- usage: calls an app's remote counts against a quota (e.g. Circle's monthly requests per community) ---------


@dataclass(frozen=True)
class Usage:
    """Declares that an app's remote meters its calls: the core counts them per scope (the remote's account) and UTC
    calendar month, in the database, shows them on the connection and the dashboard, and warns at 80% and 100% of
    the quota. Two connections whose info names the same scope share one count. The plugin reports each call the
    remote counts with ``count_calls()``; the core writes them once, at the end of each call into the plugin (an
    action run, a verify, a refresh)."""

    # scope(info) -> the account the remote counts calls for (e.g. Circle's community id), from what verify()
    # returned; None when unknown (the calls are then not recorded).
    scope: Callable[[Mapping[str, Any]], Any]
    # quota(config) -> calls allowed per UTC calendar month, or None when there is none to warn about.
    quota: Callable[[Mapping[str, Any]], int | None] = lambda config: None
    label: str = "API requests"  # what is counted, for people: "Circle API requests"
    # plan(config) -> the plan's name for people (e.g. "Business"), or None.
    plan: Callable[[Mapping[str, Any]], str | None] = lambda config: None


# The meter of the core call being served (an action run, a verify, a refresh), set by hookyard.usage around it.
# A context variable: each thread (and asyncio task) sees its own; a plugin that calls its remote from a thread it
# started itself must count from the thread that the core called it on.
_meter: ContextVar[Any] = ContextVar("hookyard_usage_meter", default=None)


def count_calls(n: int = 1, *, status: int | None = None) -> None:
    """Reports ``n`` calls to the app's remote that its quota counts (e.g. every answer but a 5xx), made for the core
    call being served. Cheap (no I/O): call it once per request. Outside a metered call it does nothing.
    ``status``: the HTTP status they were answered with, when known; the core counts the calls, and the 429s among
    them, per app for the operator's GET /metrics (hookyard_outbound_calls_total, ..._rate_limited_total)."""
    meter = _meter.get()
    if meter is not None:
        meter.add(n, status)


# --- settings: what the server's operator sets for a plugin, in the environment (CIRCLE_TIMEOUT=…) -------------


@dataclass(frozen=True)
class Setting:
    """One deployment setting of a plugin: an environment variable, declared with its type, default and description
    in a ``hookyard.PluginSettings`` that the plugin registers (``register_settings``) and reads its values through.
    Listed by ``hookyard plugins --settings`` and ``GET /api/v1/plugins`` with its default, never its value."""

    name: str  # the variable, with the plugin's own prefix: CIRCLE_… (or HOOKYARD_CIRCLE_…) for the plugin "circle"
    type: type  # str, int, float (finite), bool (1/0, true/false, yes/no, on/off) or list (comma-separated strings)
    default: Any  # a value of that type (None: no value), read when the variable is unset or blank
    description: str
    secret: bool = False  # its value is never echoed, not even in the message that refuses it
    # parse(value) -> what the plugin reads, from the value of ``type`` (e.g. "1800/300" -> (1800, 300.0)); raises
    # ValueError("must be more than 0") to refuse it. The default goes through it too.
    parse: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class App:
    key: str
    name: str
    config_schema: type[Schema]  # secret fields are hookyard.fields.Secret() (or the deprecated metadata secret)
    # verify(config) returns facts about the account (stored as the integration's info). Its reserved key
    # "warnings", a list of {"code": str, "message": str}, is for what works but deserves a look (e.g. a URL of
    # another account): shown as the integration's warnings, in the API and on its page, until the next verify.
    # A verify that also takes a ``known`` keyword (verify(config, known=None)) is handed the info of the
    # connection's last successful check (None when connecting), e.g. to try the auth scheme that worked last time
    # first instead of paying for a refused call on every refresh.
    verify: Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
    actions: tuple[Action, ...]
    # refresh(config, info) returns option lists for action parameters: {"spaces": [{"id": 1, "name": "…"}]};
    # info is what verify() just returned. It runs in the worker; one that also takes a ``progress`` keyword
    # (refresh(config, info, progress=None)) is handed a Progress callback to report how far it got.
    refresh: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, list]] | None = None
    # The names of the lists refresh() returns, e.g. ("spaces", "events"): an Option naming any other is refused at
    # startup (a misspelt list would otherwise turn its validation off). Empty: not declared, not checked.
    option_lists: tuple[str, ...] = ()
    description: str = ""
    logo_url: str | None = None
    inbound: Inbound | None = None
    # products(config, info, progress=None) yields pages (lists) of the store's products, {"id": …, "name": …}, for
    # POST /api/v1/integrations/{id}/products/import; each page is saved before the next is asked for.
    products: Callable[..., Iterable[list[Mapping[str, Any]]]] | None = None
    usage: Usage | None = None  # the remote meters calls against a quota: count and show them (see Usage)
    members: Members | None = None  # who holds what its actions grant, for access reconciliation (hook API 1.2)
    # The store's API can list past events for a backfill (see PastEvents; hook API 1.2). They are stored without
    # matching any rule; those already received are found, not doubled.
    past_events: PastEvents | None = None
    _by_key: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def action(self, key: str) -> Action | None:
        if not self._by_key:
            self._by_key.update({a.key: a for a in self.actions})
        return self._by_key.get(key)

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return tuple(name for name, f in self.config_schema().fields.items() if is_secret(f))
