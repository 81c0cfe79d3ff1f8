"""A small client for Circle's Admin API v2: one requests.Session, paced and counted calls, and
replies parsed defensively (Circle's success and error bodies are not uniform). Connections to Circle are kept
alive between runs, one pool per thread."""

from __future__ import annotations

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


class Circle:
    def __init__(self, api_key: str, scheme: str = "Bearer", pace=None):
        self.session = requests.Session()
        for prefix in ("https://", "http://"):
            self.session.mount(prefix, _connections())
        self.session.headers.update({"Authorization": f"{scheme} {api_key}", "Accept": "application/json"})
        self.pace = pace
        self.calls = 0

    def request(
        self, method: str, path: str, *, params=None, json=None, timeouts: tuple[float, float] | None = None
    ) -> Reply:
        """One call; transport failures (timeouts, refused or dropped connections) raise requests' errors.
        ``timeouts`` (connect, read) replaces the worker's defaults, e.g. for what is left of a verify's budget."""
        if self.pace is not None:
            self.pace("circle", *rate_limit())
        self.calls += 1
        response = self.session.request(
            method, base_url() + path, params=params, json=json, timeout=timeouts or timeout()
        )
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
