"""A small client for Circle's Admin API v2: one requests.Session, paced and counted calls, and
replies parsed defensively (Circle's success and error bodies are not uniform). Connections to Circle are kept
alive between runs, one pool per thread."""

from __future__ import annotations

import functools
import os
import re
import threading
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

from hookyard import count_calls

from .settings import SETTINGS

PER_PAGE = 100
# "Missing record: space", "… member tag", and for an event "post" or "posts/event" (circle-api.md §9).
_MISSING = re.compile(r"Missing record:\s*([a-z][a-z /_]*)", re.I)


def base_url() -> str:
    # A deployment setting (tests and staging point it at the fake), never a per-connection field.
    return SETTINGS["CIRCLE_API_BASE_URL"]


def timeout() -> tuple[float, float]:
    """(connect, read) seconds for one call made in the worker (actions, a refresh)."""
    return SETTINGS["CIRCLE_CONNECT_TIMEOUT"], SETTINGS["CIRCLE_TIMEOUT"]


def verify_timeout() -> float:
    """Seconds a whole verify may take, all its calls together. It runs inside a web request (connecting or editing
    a connection), so it must end well within the web worker's timeout (HOOKYARD_WEB_TIMEOUT, 30 s by default)
    however slowly Circle answers: past it the request answers 504 and the web worker is free again."""
    return SETTINGS["CIRCLE_VERIFY_TIMEOUT"]


def rate_limit() -> tuple[int, float]:
    """CIRCLE_RATE_LIMIT as (requests, seconds)."""
    return SETTINGS["CIRCLE_RATE_LIMIT"]


@dataclass
class Reply:
    status: int
    body: dict
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    # A list page's envelope (reference 5.1): page, per_page, has_next_page, count (all records), records.
    @property
    def records(self) -> list:
        records = self.body.get("records")
        return records if isinstance(records, list) else []

    @property
    def has_next_page(self) -> bool:
        return bool(self.body.get("has_next_page"))

    @property
    def count(self) -> int:
        count = self.body.get("count")
        return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else len(self.records)

    @property
    def message(self) -> str:
        text = self.body.get("message") or self.body.get("errors") or ""
        return text if isinstance(text, str) else "; ".join(_texts(text)) or str(text)

    @property
    def missing(self) -> str | None:
        """The model of a 404 "Missing record: <model>", lower-cased (space, user, member tag, …)."""
        # error_details may be a string, an object or an array (circle-api.md §9): search every text in it.
        for text in (*_texts(self.body.get("error_details")), self.message):
            match = _MISSING.search(text)
            if match:
                return match.group(1).strip().lower()
        return None


_local = threading.local()


def _connections() -> HTTPAdapter:
    """This thread's pool of connections to Circle, kept from one run to the next: a new Session per connection's
    client, but not a new TCP connection and TLS handshake per call. Per thread, because a worker's threads and a web
    process's run clients at once (hookyard.worker_threads); only the TCP and TLS session is shared, never a header:
    each Session sends its own connection's key."""
    adapter = getattr(_local, "adapter", None)
    if adapter is None:
        adapter = _local.adapter = HTTPAdapter()
    return adapter


# What Circle answers each write it accepts (circle-api.md §3), for a dry-run to hand the action in its place: the
# action's own success path then runs to its end, so the test shows every call a real run would make. None of these
# messages says "already", which would send an action down its "already a member" path.
_DRY_RUN_REPLIES = {
    ("POST", "/community_members"): (201, "This user has been invited to the community."),
    ("DELETE", "/community_members/"): (200, "The community member has been removed from the community."),
    ("POST", "/space_members"): (200, "User added to space"),
    ("DELETE", "/space_members"): (200, "Member removed from space"),
    ("POST", "/space_group_members"): (200, "User has been added to the space group."),
    ("DELETE", "/space_group_members"): (200, "User removed from the space group and its spaces"),
    ("POST", "/event_attendees"): (200, "RSVP'd to the event."),
    ("DELETE", "/event_attendees"): (200, "Un-RSVP successful from the event"),
    ("POST", "/tagged_members"): (201, "Person tagged successfully!"),
    ("DELETE", "/tagged_members"): (200, "Tag has been removed"),
}


def dry_run_reply(method: str, path: str) -> Reply:
    """The synthetic success a dry-run answers a write with (it was not sent)."""
    for (verb, prefix), (status, message) in _DRY_RUN_REPLIES.items():
        if method == verb and (path == prefix or (prefix.endswith("/") and path.startswith(prefix))):
            return Reply(status, {"message": message, "dry_run": True}, None)
    return Reply(200, {"message": "Not sent (dry run).", "dry_run": True}, None)


def _not_reported(method, url, **details) -> None:
    return None


@functools.lru_cache(maxsize=8)
def _environment(url: str) -> tuple[dict, str | bool]:
    """(proxies, verify) that requests would read from the environment for ``url`` on every call: HTTPS_PROXY /
    NO_PROXY and REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, read once per process instead (a process's environment is set
    when it starts). Reading them per call was a tenth of a worker's CPU per run: requests walks os.environ twice."""
    proxies = requests.utils.get_environ_proxies(url)
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return proxies, verify


class Circle:
    """``report`` (a RunContext.report_call) hears of every call; with ``dry_run`` only reads (GET) are sent, and each
    write is reported unsent and answered with the success Circle would give (``dry_run_reply``). This is the one
    place a dry-run is decided, so no action can send a write by mistake. Reports never carry the key: no headers."""

    def __init__(self, api_key: str, scheme: str = "Bearer", pace=None, *, report=None, dry_run: bool = False):
        self.session = requests.Session()
        for prefix in ("https://", "http://"):
            self.session.mount(prefix, _connections())
        self.session.headers.update({"Authorization": f"{scheme} {api_key}", "Accept": "application/json"})
        # The environment's proxies and CA bundle, as requests would apply them, without reading it on each call.
        self.session.trust_env = False
        proxies, self.session.verify = _environment(base_url())
        self.session.proxies.update(proxies)
        self.pace = pace
        self.report = report or _not_reported
        self.dry_run = dry_run
        self.calls = 0

    def request(
        self, method: str, path: str, *, params=None, json=None, timeouts: tuple[float, float] | None = None
    ) -> Reply:
        """One call; transport failures (timeouts, refused or dropped connections) raise requests' errors.
        ``timeouts`` (connect, read) replaces the worker's defaults, e.g. for what is left of a verify's budget."""
        method = method.upper()
        if self.dry_run and method != "GET":
            # Not paced nor counted: nothing goes out.
            self.report(method, base_url() + path, query=params, body=json, status=None, sent=False)
            return dry_run_reply(method, path)
        if self.pace is not None:
            self.pace("circle", *rate_limit())
        self.calls += 1
        try:
            response = self.session.request(
                method, base_url() + path, params=params, json=json, timeout=timeouts or timeout()
            )
        except requests.RequestException:
            # Made, but unanswered (it may have reached Circle): reported with no status.
            self.report(method, base_url() + path, query=params, body=json, status=None, sent=True)
            raise
        self.report(method, base_url() + path, query=params, body=json, status=response.status_code, sent=True)
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:200]}
        if response.status_code < 500:
            # Circle's quota counts every answer but a 5xx (200, 201, 204, 400, 401, 403, 404, 405, 422, 429 are
            # the ones it lists; an unlisted 4xx is counted too, so a warning comes early rather than late).
            # Timeouts and refused connections got no answer: not counted.
            count_calls(status=response.status_code)  # the 429s among them are counted apart (GET /metrics)
        if not isinstance(body, dict):
            body = {"records": body}
        return Reply(response.status_code, body, _retry_after(response.headers.get("Retry-After")))

    def page(self, path: str, params: dict | None, page: int) -> Reply:
        """One page of a paginated list (100 records, the maximum: each page counts against quota)."""
        reply = self.request("GET", path, params={**(params or {}), "page": page, "per_page": PER_PAGE})
        if not reply.ok:
            raise CircleRefused(reply)
        return reply

    def pages(self, path: str, params: dict | None = None) -> list[dict]:
        """Every record of a paginated list."""
        records, page = [], 1
        while True:
            reply = self.page(path, params, page)
            records += reply.records
            if not reply.has_next_page:
                return records
            page += 1


class CircleRefused(Exception):
    def __init__(self, reply: Reply):
        super().__init__(f"HTTP {reply.status}: {reply.message}")
        self.reply = reply


def _texts(value) -> list[str]:
    """Every string inside a JSON value (a string, an object's values, an array's items), depth first."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to the default wait
