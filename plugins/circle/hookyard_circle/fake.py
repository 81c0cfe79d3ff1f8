"""A fake of Circle's Admin API v2 (circle.so) as a real HTTP server, for tests and local development.

It follows /work/shared/reference/circle-api.md: paths, parameters, status codes, bodies and limits.
Behaviours the reference marks UNCONFIRMED are switchable attributes, so tests can exercise each
possibility. Faults (5xx, 429, dropped connections, timeouts, latency, a fixed-window rate limiter)
are injected at the HTTP level so a real client and its retry policy see what they would see live.

Standard library only, plus hookyard.fakeserver (the HTTP plumbing the plugins' fakes share, itself standard
library only): the module must stay runnable on its own, with no app, database or worker.

    python -m hookyard_circle.fake --port 8765 --demo
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

from hookyard.fakeserver import FakeServer, Handler, gateway_page, run_until_interrupted, send
from hookyard.fakeserver import Reply as _Reply

BASE_PATH = "/api/admin/v2"
DEFAULT_API_KEY = "test-admin-v2-key"
TOKEN_TYPES = ("admin_v2", "admin_v1", "headless")
FAULT_KINDS = ("500", "502", "503", "429", "drop", "timeout", "drop_after_apply", "timeout_after_apply")
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 10
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

MISSING_RECORD = "Oops! Missing record. Please try again later."
ALREADY_MEMBER = (
    "This user is already a member of this community and has been added to the spaces / space groups specified."
)


# --------------------------------------------------------------------------- records and replies


class Headers(dict):
    """Request headers; names compare case-insensitively, as HTTP says, and are stored Title-Cased."""

    def __init__(self, items=()):
        super().__init__((name.title(), value) for name, value in items)

    def __getitem__(self, name):
        return super().__getitem__(name.title())

    def __contains__(self, name):
        return isinstance(name, str) and super().__contains__(name.title())

    def get(self, name, default=None):
        return super().get(name.title(), default)


@dataclass
class RecordedRequest:
    method: str
    path: str  # relative to /api/admin/v2 (the raw path when outside it)
    query: dict[str, str]
    json: dict | None
    headers: dict[str, str]
    status: int | None = None  # None while in flight and when the response was lost
    at: float = field(default_factory=time.monotonic)


class _ApiError(Exception):
    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(status, body)
        self.reply = _Reply(status, body, headers or {})


def _error(status: int, message: str, details=None, headers: dict | None = None) -> _ApiError:
    """Circle's standard error envelope (reference 6.1)."""
    return _ApiError(
        status, {"success": False, "message": message, "error_details": {} if details is None else details}, headers
    )


def _missing(model: str) -> _ApiError:
    return _error(404, MISSING_RECORD, {"message": f"Missing record: {model}"})


def _too_many(headers: dict | None = None) -> _Reply:
    # Circle documents no Retry-After or X-RateLimit-* headers (reference 6.3), so none by default.
    return _Reply(429, {"success": False, "message": "Too many requests"}, headers or {})


def _limit_error(text: str) -> _ApiError:
    # The invite endpoint's member-limit 403s use `errors`, not `message` (reference 6.1).
    return _ApiError(403, {"success": False, "errors": text})


@dataclass
class _Fault:
    kind: str
    retry_after: float | None = None

    @property
    def loses_response(self) -> bool:
        return self.kind.startswith(("drop", "timeout"))

    @property
    def applies_change(self) -> bool:
        return self.kind.endswith("_after_apply")


@dataclass
class _ScriptedFault:
    remaining: int
    fault: _Fault
    path: str | None
    method: str | None

    def matches(self, rec: RecordedRequest) -> bool:
        return (self.path is None or self.path == rec.path) and (
            self.method is None or self.method.upper() == rec.method
        )


# --------------------------------------------------------------------------- state


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "item"


def _as_id(value) -> int | None:
    """Circle (Rails) coerces numeric strings to ids; anything else finds no record."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_list(value) -> list:
    """Id-list parameters; a lone id counts as a list of one (Rails would wrap it the same way)."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _truthy(value) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _email(value) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


@dataclass
class _Space:
    id: int
    name: str
    slug: str
    space_type: str
    space_group_id: int | None
    is_private: bool = False


@dataclass
class _SpaceGroup:
    id: int
    name: str
    slug: str


@dataclass
class _Event:
    id: int
    name: str
    slug: str
    starts_at: datetime
    ends_at: datetime
    space_id: int | None
    rsvp_disabled: bool
    created_at: datetime


@dataclass
class _Tag:
    id: int
    name: str
    created_at: datetime


@dataclass
class _Member:
    id: int
    user_id: int
    email: str
    name: str | None
    active: bool
    created_at: datetime
    spaces: set = field(default_factory=set)
    space_groups: set = field(default_factory=set)
    member_tags: set = field(default_factory=set)
    events: set = field(default_factory=set)


# `sort` values -> (key, reverse). Sorts Circle documents but the fake has no data for (likes,
# activity...) fall back to the list's default order.
_BY_ID_OR_NAME = {
    "oldest": (lambda r: r.id, False),
    "newest": (lambda r: r.id, True),
    "alphabetical": (lambda r: r.name.lower(), False),
    "alphabetical_desc": (lambda r: r.name.lower(), True),
}
_EVENT_ORDERS = {
    "oldest": (lambda e: e.id, False),
    "newest": (lambda e: e.id, True),
    "start_date": (lambda e: e.starts_at, False),
    "start_date_desc": (lambda e: e.starts_at, True),
}


def _ordered(records, query: dict, orders: dict, default: str) -> list:
    key, reverse = orders.get(query.get("sort"), orders[default])
    return sorted(records, key=key, reverse=reverse)


def _named(records, query: dict) -> list:
    """The `name` filter: a case-insensitive substring match."""
    wanted = query.get("name", "").lower()
    return [r for r in records if wanted in r.name.lower()]


# --------------------------------------------------------------------------- routes

# (method, path pattern relative to BASE_PATH, FakeCircle method). The first pattern that matches
# with the right method wins, which is how /community_members/search beats /community_members/{id}.
_ROUTES = [
    ("GET", r"/community", "_get_community"),
    ("GET", r"/community_members", "_list_members"),
    ("POST", r"/community_members", "_create_member"),
    ("GET", r"/community_members/search", "_search_member"),
    ("GET", r"/community_members/([^/]+)", "_show_member"),
    ("DELETE", r"/community_members/([^/]+)", "_remove_member"),
    ("PUT", r"/community_members/([^/]+)/delete_member", "_delete_member_permanently"),
    ("PUT", r"/community_members/([^/]+)/ban_member", "_ban_member"),
    ("POST", r"/space_members", "_add_space_member"),
    ("DELETE", r"/space_members", "_remove_space_member"),
    ("GET", r"/space_member", "_show_space_member"),
    ("GET", r"/space_members", "_list_space_members"),
    ("POST", r"/space_group_members", "_add_group_member"),
    ("DELETE", r"/space_group_members", "_remove_group_member"),
    ("GET", r"/space_group_member", "_show_group_member"),
    ("GET", r"/space_group_members", "_list_group_members"),
    ("POST", r"/event_attendees", "_rsvp"),
    ("DELETE", r"/event_attendees", "_unrsvp"),
    ("POST", r"/tagged_members", "_tag_member"),
    ("DELETE", r"/tagged_members", "_untag_member"),
    ("GET", r"/member_tags", "_list_tags"),
    ("GET", r"/member_tags/([^/]+)", "_show_tag"),
    ("GET", r"/spaces", "_list_spaces"),
    ("GET", r"/space_groups", "_list_space_groups"),
    ("GET", r"/events", "_list_events"),
]
_COMPILED_ROUTES = [(method, re.compile(pattern), name) for method, pattern, name in _ROUTES]


class FakeCircle(FakeServer):
    """Circle's Admin API v2 on 127.0.0.1.

    Public attributes set in __init__ are meant to be read or switched by tests. Besides the
    UNCONFIRMED switches for re-runs (existing_member_invite, already_in_space, already_rsvped,
    already_tagged) there are: existing_member_status (200/201 for the "already a member" answer),
    skip_invitation_creates_active, rsvp_disabled_event, unrsvp_accepts_query, daily_member_limit and
    plan_member_limit; and from the reference's corrections (§9) missing_event_record (what a 404 calls an event),
    error_details_shape (a 404's details as an object, a string or an array) and wrong_token_status (403 or 401
    for a token of the wrong type); member_lists ("yes", or "404"/"405" for a Circle without GET /space_members and
    /space_group_members, the lists access reconciliation reads). connections_opened counts TCP connections (keep-alive checks); started_at is
    the monotonic time the rate-limit windows are aligned to.

    Order of a request: recorded -> latency -> rate-limit window counted -> scripted fault (fail_next),
    else random fault, else the limiter's 429 -> malformed JSON (400) -> routing (404/405) -> auth
    (401/403) -> the endpoint, under the one lock.
    """

    def __init__(
        self, port: int = 0, api_key: str = DEFAULT_API_KEY, community_name="Test Community", slug="test-community"
    ):
        super().__init__(port, BASE_PATH, "fake-circle")
        self.api_key = api_key
        self.community_name = community_name
        self.slug = slug
        self.community_id = 4242

        # Auth and plan.
        self._tokens: dict[str, str] = {api_key: "admin_v2"}
        self.plan_eligible = True
        self.accepted_schemes: tuple = ("Bearer", "Token")

        # Switchable UNCONFIRMED behaviours (reference 3.1 and 8).
        self.existing_member_invite = "already"  # "already" | "422"
        self.existing_member_status = 200  # status of the "already" answer: 200 or 201
        self.skip_invitation_creates_active = False  # open question 2; the spec example shows active: false
        self.already_in_space = "ok"  # "ok" | "422"
        self.already_rsvped = "ok"  # "ok" | "422"
        self.already_tagged = "ok"  # "ok" | "422"
        self.rsvp_disabled_event = "ok"  # "ok" | "422": RSVP to an event with rsvp_disabled
        self.unrsvp_accepts_query = False  # open question 4; the spec puts them in a JSON body
        # Corrections from Circle's own spec (reference §9).
        self.missing_event_record = "post"  # "post" | "posts/event" | "event": a 404's model for an event
        self.error_details_shape = "object"  # "object" | "string" | "array": how a 404 carries its model
        self.wrong_token_status = 403  # 403 (Circle's docs) | 401 (reported for a v1 token on v2)
        # GET /space_members and /space_group_members (the lists of one space's or group's members): Circle's Admin
        # v2 API has them but the reference does not document them. "404" or "405" answers as if it had not.
        self.member_lists = "yes"  # "yes" | "404" | "405"
        self.daily_member_limit: int | None = None
        self.plan_member_limit: int | None = None  # the plan's member cap; None = unlimited

        # Observations.
        self.requests: list[RecordedRequest] = []
        self.invitations_sent: list[str] = []
        self.quota_used = 0
        self.rate_limited_count = 0
        self.hold_seconds = 10.0
        self.random_faults = 0  # faults injected by fail_randomly since it was last called

        self._lock = threading.RLock()
        self._ids = itertools.count(1001)  # one sequence for every kind, so a mixed-up id never matches
        self._spaces: dict[int, _Space] = {}
        self._groups: dict[int, _SpaceGroup] = {}
        self._events: dict[int, _Event] = {}
        self._tags: dict[int, _Tag] = {}
        self._members: dict[str, _Member] = {}  # by lower-cased email
        self._membership_ids: dict[tuple, int] = {}
        self._created_on: tuple[date, int] = (_now().date(), 0)

        self._latency = 0.0
        self._scripted: list[_ScriptedFault] = []
        self._random: tuple[float, list[str], random.Random, float | None] | None = None
        self._rate: tuple[int, float] | None = None
        self._window: tuple[int, int] = (-1, 0)  # (window index, requests counted in it)

        self.started_at = time.monotonic()  # rate-limit windows are aligned to this

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeCircle:
        self.started_at = time.monotonic()  # before serving, so no request predates its window
        return super().start()

    # ------------------------------------------------------------------ tokens and seed data

    def add_token(self, token: str, token_type: str = "admin_v2"):
        if token_type not in TOKEN_TYPES:
            raise ValueError(f"token_type must be one of {TOKEN_TYPES}")
        with self._lock:
            self._tokens[token] = token_type

    def add_space_group(self, name) -> int:
        with self._lock:
            group = _SpaceGroup(next(self._ids), name, _slugify(name))
            self._groups[group.id] = group
            return group.id

    def add_space(self, name, space_group_id=None, space_type="basic") -> int:
        with self._lock:
            if space_group_id is not None and space_group_id not in self._groups:
                raise ValueError(f"unknown space group {space_group_id}")
            space = _Space(next(self._ids), name, _slugify(name), space_type, space_group_id)
            self._spaces[space.id] = space
            return space.id

    def add_event(self, name, starts_at: datetime, space_id=None, rsvp_disabled=False) -> int:
        if starts_at.tzinfo is None:
            starts_at = starts_at.replace(tzinfo=timezone.utc)
        starts_at = starts_at.astimezone(timezone.utc)  # date filters compare UTC dates
        with self._lock:
            if space_id is not None and space_id not in self._spaces:
                raise ValueError(f"unknown space {space_id}")
            event = _Event(
                next(self._ids),
                name,
                _slugify(name),
                starts_at,
                starts_at + timedelta(hours=1),
                space_id,
                rsvp_disabled,
                _now(),
            )
            self._events[event.id] = event
            return event.id

    def delete_event(self, event_id: int):
        """The event is deleted in Circle (its RSVPs with it), as a merchant might after a rule names it."""
        with self._lock:
            del self._events[event_id]
            for member in self._members.values():
                member.events.discard(event_id)

    def add_member_tag(self, name) -> int:
        with self._lock:
            tag = _Tag(next(self._ids), name, _now())
            self._tags[tag.id] = tag
            return tag.id

    def add_member(self, email, name=None, active=True, space_ids=(), space_group_ids=(), member_tag_ids=()) -> int:
        with self._lock:
            try:
                self._check_ids(space_ids, space_group_ids, member_tag_ids)
            except _ApiError as exc:
                raise ValueError(exc.reply.body["error_details"]["message"]) from None
            member = self._new_member(email, name, active)
            self._grant(member, space_ids, space_group_ids, member_tag_ids)
            return member.id

    def _new_member(self, email, name, active) -> _Member:
        member = _Member(next(self._ids), next(self._ids), _email(email), name, active, _now())
        self._members[member.email] = member
        return member

    # ------------------------------------------------------------------ inspection

    def member(self, email) -> dict | None:
        with self._lock:
            m = self._members.get(_email(email))
            if m is None:
                return None
            return {
                "id": m.id,
                "email": m.email,
                "name": m.name,
                "active": m.active,
                "spaces": set(m.spaces),
                "space_groups": set(m.space_groups),
                "member_tags": set(m.member_tags),
                "events": set(m.events),
            }

    def requests_for(self, method=None, path=None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            ]

    def reset_requests(self):
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ faults

    def set_latency(self, seconds: float):
        with self._lock:
            self._latency = max(0.0, seconds)

    def fail_next(
        self, n: int, kind: str, retry_after: float | None = None, path: str | None = None, method: str | None = None
    ):
        """The next `n` requests matching `path` (relative, exact) and `method` fail with `kind`."""
        self._check_kinds([kind])
        with self._lock:
            self._scripted.append(_ScriptedFault(n, _Fault(kind, retry_after), path, method))

    def fail_randomly(self, ratio: float, kinds: list[str], seed: int = 0, retry_after: float | None = None):
        """Each request fails with probability ``ratio``, with one of ``kinds``; a 429 carries ``retry_after``."""
        self._check_kinds(kinds)
        with self._lock:
            self._random = (ratio, list(kinds), random.Random(seed), retry_after) if ratio > 0 and kinds else None
            self.random_faults = 0

    def rate_limit(self, limit: int | None, window_seconds: float = 300.0):
        with self._lock:
            self._rate = (limit, window_seconds) if limit else None
            self._window = (-1, 0)

    def clear_faults(self):
        """Removes scripted and random failures, latency and the rate limit; counters are kept."""
        with self._lock:
            self._scripted.clear()
            self._random = None
            self._latency = 0.0
            self._rate = None

    @staticmethod
    def _check_kinds(kinds):
        unknown = [k for k in kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; expected one of {FAULT_KINDS}")

    def _pick_fault(self, rec: RecordedRequest) -> _Fault | None:
        for scripted in self._scripted:
            if scripted.remaining > 0 and scripted.matches(rec):
                scripted.remaining -= 1
                return scripted.fault
        if self._random:
            ratio, kinds, rng, retry_after = self._random
            if rng.random() < ratio:
                self.random_faults += 1
                return _Fault(rng.choice(kinds), retry_after)
        return None

    def _over_rate_limit(self, at: float) -> bool:
        """Counts the request in its fixed window; True when the window's limit is exceeded."""
        if not self._rate:
            return False
        limit, window = self._rate
        index = int((at - self.started_at) // window)
        current, count = self._window
        self._window = (index, (count if index == current else 0) + 1)
        return self._window[1] > limit

    def _fault_reply(self, fault: _Fault) -> _Reply:
        if fault.kind == "429":
            return _too_many({} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"})
        if fault.kind == "500":
            return _error(500, "Internal server error").reply
        return _Reply(int(fault.kind), gateway_page(int(fault.kind)))

    # ------------------------------------------------------------------ request pipeline

    def _handle(self, handler: Handler):
        rec, bad_json = self._record(handler)
        with self._lock:
            latency = self._latency
        if latency:
            self._stopping.wait(latency)
        fault, limited = self._admit(rec)
        if fault and fault.loses_response and not fault.applies_change:
            return self._lose(handler, fault)
        reply = self._reply_for(rec, fault, limited, bad_json)
        if fault and fault.loses_response:
            return self._lose(handler, fault)
        with self._lock:
            rec.status = reply.status  # before sending, so a client that has the answer sees it recorded
            if reply.status < 500:
                self.quota_used += 1
        send(handler, reply)

    def _admit(self, rec: RecordedRequest) -> tuple[_Fault | None, bool]:
        """The fault to inject, if any, and whether the rate limiter refuses the request."""
        with self._lock:
            # The limiter counts every request, but a scripted or random fault takes precedence.
            limited = self._over_rate_limit(rec.at)
            fault = self._pick_fault(rec)
            limited = limited and fault is None
            self.rate_limited_count += limited
        return fault, limited

    def _reply_for(self, rec: RecordedRequest, fault: _Fault | None, limited: bool, bad_json: bool) -> _Reply:
        if fault and not fault.loses_response:
            return self._fault_reply(fault)
        if limited:
            return _too_many()
        if bad_json:
            return _error(400, "Invalid JSON in request body").reply
        return self._dispatch(rec)

    def _record(self, handler: Handler) -> tuple[RecordedRequest, bool]:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        if path == BASE_PATH or path.startswith(BASE_PATH + "/"):
            path = path[len(BASE_PATH) :] or "/"
        raw = handler.rfile.read(_as_int(handler.headers.get("Content-Length"), 0))
        body, bad_json = None, False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        rec = RecordedRequest(
            handler.command,
            path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            body if isinstance(body, dict) else None,
            Headers(handler.headers.items()),
        )
        with self._lock:
            self.requests.append(rec)
        return rec, bad_json

    def _lose(self, handler: Handler, fault: _Fault):
        if fault.kind.startswith("timeout"):
            self._stopping.wait(self.hold_seconds)
        handler.close_connection = True

    def _dispatch(self, rec: RecordedRequest) -> _Reply:
        try:
            action, args = self._route(rec)
            with self._lock:
                self._authenticate(rec.headers)
                return action(rec, *args)
        except _ApiError as exc:
            return self._shaped(exc.reply)
        except Exception:  # a bug in the fake: answer like Circle would, and say why on stderr
            traceback.print_exc()
            return _error(500, "Internal server error (fake)").reply

    def _shaped(self, reply: _Reply) -> _Reply:
        """A 404's {"message": "Missing record: …"} details as a string or an array, when switched (reference §9)."""
        details = reply.body.get("error_details") if isinstance(reply.body, dict) else None
        if self.error_details_shape == "object" or not (isinstance(details, dict) and "message" in details):
            return reply
        text = details["message"]
        shaped = text if self.error_details_shape == "string" else [text]
        return _Reply(reply.status, {**reply.body, "error_details": shaped}, reply.headers)

    def _route(self, rec: RecordedRequest):
        allowed = []
        for method, pattern, name in _COMPILED_ROUTES:
            match = pattern.fullmatch(rec.path)
            if match and method == rec.method:
                return getattr(self, name), match.groups()
            if match:
                allowed.append(method)
        if allowed:
            raise _error(405, "Method not allowed", headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise _error(404, "Not found")

    def _authenticate(self, headers: Headers):
        scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
        schemes = {s.lower() for s in self.accepted_schemes}
        token_type = self._tokens.get(token.strip()) if scheme.lower() in schemes else None
        if token_type is None:
            raise _error(401, "The API token is invalid.")
        if token_type != "admin_v2" and self.wrong_token_status == 401:
            raise _error(401, "The API token is invalid.")
        if token_type != "admin_v2":
            raise _error(403, "Your API token type does not have access to this API.")
        if not self.plan_eligible:
            raise _error(403, "The community is not eligible for admin API v2 access.")

    # ------------------------------------------------------------------ lookups (under the lock)

    def _find(self, table: dict, raw_id, model: str):
        record = table.get(_as_id(raw_id))
        if record is None:
            raise _missing(model)
        return record

    def _find_member(self, email, model: str) -> _Member:
        member = self._members.get(_email(email))
        if member is None:
            raise _missing(model)
        return member

    def _member_by_id(self, raw_id) -> _Member:
        wanted = _as_id(raw_id)
        for member in self._members.values():
            if member.id == wanted:
                return member
        raise _missing("community member")

    def _check_ids(self, space_ids, group_ids, tag_ids):
        for ids, table, model in (
            (space_ids, self._spaces, "space"),
            (group_ids, self._groups, "space group"),
            (tag_ids, self._tags, "member tag"),
        ):
            for raw in ids or ():
                self._find(table, raw, model)

    def _group_space_ids(self, group_id: int) -> set[int]:
        return {s.id for s in self._spaces.values() if s.space_group_id == group_id}

    def _grant(self, member: _Member, space_ids=(), group_ids=(), tag_ids=()):
        member.spaces.update(_as_id(i) for i in space_ids or ())
        for group_id in map(_as_id, group_ids or ()):
            member.space_groups.add(group_id)
            member.spaces.update(self._group_space_ids(group_id))  # a group grants access to its spaces
        member.member_tags.update(_as_id(i) for i in tag_ids or ())

    def _membership_id(self, *key) -> int:
        if key not in self._membership_ids:
            self._membership_ids[key] = next(self._ids)
        return self._membership_ids[key]

    # ------------------------------------------------------------------ serialisers

    def _member_json(self, m: _Member) -> dict:
        first, _, last = (m.name or "").partition(" ")
        public_uid = f"{m.id * 2654435761 % 2**32:08x}"
        confirmed = _iso(m.created_at) if m.active else None
        return {
            "id": m.id,
            "email": m.email,
            "name": m.name,
            "first_name": first or None,
            "last_name": last or None,
            "headline": None,
            "active": m.active,
            "accepted_invitation": confirmed,
            "profile_confirmed_at": confirmed,
            "created_at": _iso(m.created_at),
            "member_tags": [{"id": t, "name": self._tags[t].name} for t in sorted(m.member_tags)],
            "public_uid": public_uid,
            "profile_url": f"https://{self.slug}.circle.so/u/{public_uid}",
            "user_id": m.user_id,
        }

    def _space_json(self, s: _Space) -> dict:
        group = self._groups.get(s.space_group_id)
        return {
            "id": s.id,
            "name": s.name,
            "slug": s.slug,
            "space_type": s.space_type,
            "is_private": s.is_private,
            "url": f"https://{self.slug}.circle.so/c/{s.slug}",
            "community_id": self.community_id,
            "space_group_id": s.space_group_id,
            "space_group": {"id": group.id, "name": group.name} if group else None,
        }

    def _group_json(self, g: _SpaceGroup) -> dict:
        members = sum(g.id in m.space_groups for m in self._members.values())
        return {
            "id": g.id,
            "name": g.name,
            "slug": g.slug,
            "community_id": self.community_id,
            "spaces_count": len(self._group_space_ids(g.id)),
            "space_group_members_count": members,
            "is_hidden_from_non_members": False,
        }

    def _event_json(self, e: _Event) -> dict:
        space = self._spaces.get(e.space_id)
        path = f"c/{space.slug}" if space else "events"
        return {
            "id": e.id,
            "name": e.name,
            "slug": e.slug,
            "starts_at": _iso(e.starts_at),
            "ends_at": _iso(e.ends_at),
            "url": f"https://{self.slug}.circle.so/{path}/{e.slug}",
            "rsvp_disabled": e.rsvp_disabled,
            "location_type": "virtual",
            "created_at": _iso(e.created_at),
            "space": {"id": space.id, "name": space.name, "slug": space.slug} if space else None,
        }

    def _tag_json(self, t: _Tag) -> dict:
        tagged = sum(t.id in m.member_tags for m in self._members.values())
        return {
            "id": t.id,
            "name": t.name,
            "emoji": None,
            "color": "#6b7280",
            "is_public": True,
            "tagged_members_count": tagged,
            "display_format": "label",
            "created_at": _iso(t.created_at),
        }

    def _membership_json(self, kind: str, owner_id: int, member: _Member, **extra) -> dict:
        return {
            "id": self._membership_id(kind, owner_id, member.id),
            f"{kind}_id": owner_id,
            "community_member_id": member.id,
            "status": "active",
            "moderator": False,
            **extra,
            "community_member": self._member_json(member),
        }

    @staticmethod
    def _paginate(query: dict, records: list) -> dict:
        page = max(_as_int(query.get("page"), 1), 1)
        per_page = min(max(_as_int(query.get("per_page"), DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
        page_count = math.ceil(len(records) / per_page)
        return {
            "page": page,
            "per_page": per_page,
            "has_next_page": page < page_count,
            "count": len(records),
            "page_count": page_count,
            "records": records[(page - 1) * per_page : page * per_page],
        }

    # ------------------------------------------------------------------ endpoints: community and members

    def _get_community(self, rec):
        return _Reply(
            200,
            {
                "id": self.community_id,
                "name": self.community_name,
                "slug": self.slug,
                "locale": "en",
                "is_private": False,
                "prefs": {},
                "community_setting": {},
            },
        )

    def _list_members(self, rec):
        status = rec.query.get("status")
        members = [
            m
            for m in sorted(self._members.values(), key=lambda m: m.id)
            if status not in ("active", "inactive") or m.active == (status == "active")
        ]
        return _Reply(200, self._paginate(rec.query, [self._member_json(m) for m in members]))

    def _search_member(self, rec):
        return _Reply(200, self._member_json(self._find_member(rec.query.get("email"), "community member")))

    def _show_member(self, rec, raw_id):
        return _Reply(200, self._member_json(self._member_by_id(raw_id)))

    def _create_member(self, rec):
        body = rec.json or {}
        email = _email(body.get("email"))
        if not EMAIL_RE.match(email):
            raise _error(422, "Invalid email address.")
        spaces, groups, tags = (_as_list(body.get(k)) for k in ("space_ids", "space_group_ids", "member_tag_ids"))
        self._check_ids(spaces, groups, tags)
        existing = self._members.get(email)
        if existing:
            return self._invite_existing(existing, spaces, groups, tags)
        self._check_member_limits()
        skip_invitation = _truthy(body.get("skip_invitation"))
        member = self._new_member(email, body.get("name"), skip_invitation and self.skip_invitation_creates_active)
        self._grant(member, spaces, groups, tags)
        if not skip_invitation:
            self.invitations_sent.append(email)
        return _Reply(
            201,
            {"message": self._created_message(email, spaces, groups), "community_member": self._member_json(member)},
        )

    def _invite_existing(self, member: _Member, spaces, groups, tags) -> _Reply:
        if self.existing_member_invite == "422":
            raise _error(422, "Email has already been taken")
        self._grant(member, spaces, groups, tags)
        return _Reply(
            self.existing_member_status, {"message": ALREADY_MEMBER, "community_member": self._member_json(member)}
        )

    def _check_member_limits(self):
        today, created = self._created_on
        if today != _now().date():
            today, created = _now().date(), 0
        if self.daily_member_limit is not None and created >= self.daily_member_limit:
            raise _limit_error("Daily member limit exceeded.")
        if self.plan_member_limit is not None and len(self._members) >= self.plan_member_limit:
            raise _limit_error("You have reached the maximum limit of members supported by your plan.")
        self._created_on = (today, created + 1)

    def _created_message(self, email, spaces, groups) -> str:
        message = f"{email} has been added to the community"
        if spaces:
            message += " and to the spaces: " + ", ".join(self._spaces[_as_id(i)].name for i in spaces)
        if groups:
            message += " and to the space groups: " + ", ".join(self._groups[_as_id(i)].name for i in groups)
        return message + "."

    def _remove_member(self, rec, raw_id):
        del self._members[self._member_by_id(raw_id).email]
        return _Reply(200, {"message": "The community member has been removed from the community."})

    def _delete_member_permanently(self, rec, raw_id):
        # Exists so tests can assert it was never called: it also deletes the member's content.
        del self._members[self._member_by_id(raw_id).email]
        return _Reply(200, {"message": "The community member has been deleted."})

    def _ban_member(self, rec, raw_id):
        del self._members[self._member_by_id(raw_id).email]
        return _Reply(200, {"message": "The community member has been banned."})

    # ------------------------------------------------------------------ endpoints: spaces and space groups

    def _add_space_member(self, rec):
        body = rec.json or {}
        space = self._find(self._spaces, body.get("space_id"), "space")
        member = self._find_member(body.get("email"), "user")
        if space.id in member.spaces and self.already_in_space == "422":
            raise _error(422, "User not added to space.")
        member.spaces.add(space.id)
        return _Reply(200, {"message": "User added to space"})

    def _space_and_member(self, query) -> tuple[_Space, _Member]:
        space = self._find(self._spaces, query.get("space_id"), "space")
        member = self._find_member(query.get("email"), "user")
        if space.id not in member.spaces:
            raise _missing("space member")
        return space, member

    def _remove_space_member(self, rec):
        space, member = self._space_and_member(rec.query)
        member.spaces.discard(space.id)
        return _Reply(200, {"message": "Member removed from space"})

    def _show_space_member(self, rec):
        space, member = self._space_and_member(rec.query)
        access = "private" if space.is_private else "open"
        return _Reply(200, self._membership_json("space", space.id, member, access_type=access))

    def _without_member_lists(self):
        """The switch member_lists: answer as a Circle without these list endpoints would."""
        if self.member_lists == "404":
            raise _error(404, "Not found")
        if self.member_lists == "405":
            raise _error(405, "Method not allowed", headers={"Allow": "POST, DELETE"})

    def _membership_page(self, rec, kind: str, owner_id: int) -> _Reply:
        key = "spaces" if kind == "space" else "space_groups"
        members = sorted((m for m in self._members.values() if owner_id in getattr(m, key)), key=lambda m: m.id)
        return _Reply(200, self._paginate(rec.query, [self._membership_json(kind, owner_id, m) for m in members]))

    def _list_space_members(self, rec):
        self._without_member_lists()
        space = self._find(self._spaces, rec.query.get("space_id"), "space")
        return self._membership_page(rec, "space", space.id)

    def _list_group_members(self, rec):
        self._without_member_lists()
        group = self._find(self._groups, rec.query.get("space_group_id"), "space group")
        return self._membership_page(rec, "space_group", group.id)

    def _add_group_member(self, rec):
        body = rec.json or {}
        group = self._find(self._groups, body.get("space_group_id"), "space group")
        member = self._members.get(_email(body.get("email")))
        if member is None:
            raise _error(422, "User is not a member of community")
        if group.id in member.space_groups:
            return _Reply(200, {"success": True, "message": "User is already added to the space group."})
        self._grant(member, group_ids=[group.id])
        return _Reply(200, {"success": True, "message": "User has been added to the space group."})

    def _remove_group_member(self, rec):
        group = self._find(self._groups, rec.query.get("space_group_id"), "space group")
        member = self._members.get(_email(rec.query.get("email")))
        if member is None or group.id not in member.space_groups:
            raise _missing("user")  # Circle does not say which: unknown user or not in the group
        member.space_groups.discard(group.id)
        member.spaces -= self._group_space_ids(group.id)
        return _Reply(200, {"success": True, "message": "User removed from the space group and its spaces"})

    def _show_group_member(self, rec):
        group = self._find(self._groups, rec.query.get("space_group_id"), "space group")
        member = self._find_member(rec.query.get("email"), "user")
        if group.id not in member.space_groups:
            raise _missing("space group member")
        return _Reply(200, self._membership_json("space_group", group.id, member))

    # ------------------------------------------------------------------ endpoints: events

    def _rsvp(self, rec):
        body = rec.json or {}
        event = self._find(self._events, body.get("event_id"), self.missing_event_record)
        member = self._find_member(body.get("member_email"), "community member")
        if event.rsvp_disabled and self.rsvp_disabled_event == "422":
            raise _error(422, "RSVP is disabled for this event.")
        if event.id in member.events and self.already_rsvped == "422":
            raise _error(422, "Validation failed: Community member has already been taken")
        member.events.add(event.id)
        return _Reply(200, {"message": "RSVP'd to the event."})

    def _unrsvp(self, rec):
        params = rec.json or {}
        if self.unrsvp_accepts_query and not params:
            params = rec.query
        if not params.get("event_id") or not params.get("member_email"):
            raise _error(422, "event_id and member_email are required")
        event = self._find(self._events, params.get("event_id"), self.missing_event_record)
        member = self._find_member(params.get("member_email"), "community member")
        if event.id not in member.events:
            raise _missing("event attendee")
        member.events.discard(event.id)
        return _Reply(200, {"message": "Un-RSVP successful from the event"})

    def _list_events(self, rec):
        events = _ordered(self._filter_events(rec.query), rec.query, _EVENT_ORDERS, "newest")
        return _Reply(200, self._paginate(rec.query, [self._event_json(e) for e in events]))

    def _filter_events(self, query) -> list[_Event]:
        events = list(self._events.values())
        if "space_id" in query:
            events = [e for e in events if e.space_id == _as_id(query["space_id"])]
        for param, keep in (
            ("filter_date[start_date]", lambda day, e: e.starts_at.date() >= day),
            ("filter_date[end_date]", lambda day, e: e.starts_at.date() <= day),
        ):
            try:
                day = date.fromisoformat(query[param])
            except (KeyError, ValueError):
                continue  # absent or unparseable: no filter
            events = [e for e in events if keep(day, e)]
        return events

    # ------------------------------------------------------------------ endpoints: tags

    def _tag_member(self, rec):
        body = rec.json or {}
        tag = self._find(self._tags, body.get("member_tag_id"), "member tag")
        member = self._find_member(body.get("user_email"), "user")
        if tag.id in member.member_tags and self.already_tagged == "422":
            raise _error(422, "Validation failed: Member tag has already been taken")
        member.member_tags.add(tag.id)
        return _Reply(201, {"message": "Person tagged successfully!"})

    def _untag_member(self, rec):
        tag = self._tags.get(_as_id(rec.query.get("member_tag_id")))
        member = self._members.get(_email(rec.query.get("user_email")))
        if tag is None or member is None or tag.id not in member.member_tags:
            raise _missing("member tag")  # the documented ambiguity: every failure says "member tag"
        member.member_tags.discard(tag.id)
        return _Reply(200, {"message": "Tag has been removed"})

    def _show_tag(self, rec, raw_id):
        return _Reply(200, self._tag_json(self._find(self._tags, raw_id, "member tag")))

    def _list_tags(self, rec):
        tags = _ordered(_named(self._tags.values(), rec.query), rec.query, _BY_ID_OR_NAME, "oldest")
        return _Reply(200, self._paginate(rec.query, [self._tag_json(t) for t in tags]))

    # ------------------------------------------------------------------ endpoints: lists

    def _list_spaces(self, rec):
        spaces = _ordered(self._spaces.values(), rec.query, _BY_ID_OR_NAME, "oldest")
        return _Reply(200, self._paginate(rec.query, [self._space_json(s) for s in spaces]))

    def _list_space_groups(self, rec):
        groups = _ordered(_named(self._groups.values(), rec.query), rec.query, _BY_ID_OR_NAME, "oldest")
        return _Reply(200, self._paginate(rec.query, [self._group_json(g) for g in groups]))


# --------------------------------------------------------------------------- CLI


def seed_demo(fake: FakeCircle):
    """A small community to click around in: spaces, a space group, upcoming events, tags, a member."""
    welcome = fake.add_space("Welcome")
    fake.add_space("Announcements")
    fake.add_space("General Chat", space_type="chat")
    group = fake.add_space_group("Members Area")
    lounge = fake.add_space("Members Lounge", space_group_id=group)
    fake.add_space("Members Resources", space_group_id=group, space_type="course")
    soon = _now().replace(minute=0, second=0, microsecond=0) + timedelta(days=7)
    fake.add_event("Monthly Q&A", soon, space_id=lounge)
    fake.add_event("Onboarding Workshop", soon + timedelta(days=7), space_id=welcome)
    vip = fake.add_member_tag("VIP")
    fake.add_member_tag("Customer")
    fake.add_member_tag("Beta Tester")
    fake.add_member("demo@example.com", name="Demo Member", space_ids=[welcome], member_tag_ids=[vip])


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m hookyard_circle.fake", description="A fake Circle Admin API v2 server on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the Admin V2 token the fake accepts")
    parser.add_argument("--demo", action="store_true", help="seed spaces, a space group, events, tags and a member")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    fake = FakeCircle(port=args.port, api_key=args.api_key)
    fake.log_requests = not args.quiet
    fake.start()
    if args.demo:
        seed_demo(fake)
    print(f"Fake Circle Admin API v2: {fake.base_url}", flush=True)
    print(f"API key (Admin V2): {fake.api_key}", flush=True)
    run_until_interrupted(fake)


if __name__ == "__main__":
    main()
