"""A small client for SamCart's Public API v1 (reference samcart.md §4, §9): one requests.Session, the key in the
``sc-api`` header, bounded timeouts, a bounded wait on 429, and every failure as a ConnectionFailed a merchant can
act on. Read-only: SamCart's own spec has GET operations only."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Iterator
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

from hookyard import ConnectionFailed, count_calls

from .settings import SETTINGS

PAGE_LIMIT = 100  # §9: the default and the maximum
RETRIES = 3  # 429s answered by waiting, per call
# SamCart says a 429 carries "a header with the seconds to wait" but not which (§9). These are read in this order;
# the first that parses wins. A value that looks like a Unix time (after 2001) counts as "until then"; Retry-After
# may also be an HTTP date. None of them: wait 1, 2, 4 s.
WAIT_HEADERS = ("Retry-After", "RateLimit-Reset", "X-RateLimit-Reset", "X-Rate-Limit-Reset", "X-RateLimit-Retry-After")
_EPOCH_FLOOR = 1_000_000_000


def base_url() -> str:
    # A deployment setting (tests and staging point it at the fake), read at each call: never a connection field.
    return SETTINGS["SAMCART_API_BASE_URL"]


def timeout() -> tuple[float, float]:
    """(connect, read) seconds for one call."""
    return SETTINGS["SAMCART_CONNECT_TIMEOUT"], SETTINGS["SAMCART_TIMEOUT"]


def verify_timeout() -> float:
    """Seconds the key check may take in all. It runs inside a web request (connecting or editing a connection),
    so it must end well within HOOKYARD_WEB_TIMEOUT (30 s by default), however slowly SamCart answers."""
    return SETTINGS["SAMCART_VERIFY_TIMEOUT"]


def rate_limit_wait() -> float:
    """Seconds one call may spend waiting out 429s in all, before it gives up (transient, with retry_after)."""
    return SETTINGS["SAMCART_RATE_LIMIT_WAIT"]


def wait_hint(headers) -> float | None:
    """Seconds a 429 asks us to wait, from the first of WAIT_HEADERS that parses; None when none does."""
    for name in WAIT_HEADERS:
        raw = (headers.get(name) or "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            try:  # Retry-After may be an HTTP date
                moment = parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
        if math.isnan(value) or math.isinf(value):
            continue
        if value > _EPOCH_FLOOR:  # X-RateLimit-Reset is often a Unix time, not a count of seconds
            value -= time.time()
        return max(0.0, value)
    return None


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    text = (body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""
    return (text if isinstance(text, str) else str(text))[:200]


class SamCartFailed(ConnectionFailed):
    """A ConnectionFailed that also says which HTTP status SamCart answered (None: no answer at all)."""

    def __init__(self, message: str, *, status: int | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.status = status


class SamCart:
    """One key's calls. ``budget`` (seconds, from now) bounds everything the client does, waits and timeouts
    included: for calls made inside a web request or just before a delivery is handled. ``max_wait`` overrides
    SAMCART_RATE_LIMIT_WAIT. ``waits`` records every 429 wait, in seconds."""

    def __init__(
        self,
        api_key: str,
        *,
        budget: float | None = None,
        max_wait: float | None = None,
        timeouts: tuple[float, float] | None = None,
    ):
        self.session = requests.Session()
        # The key lives in the session's headers only: never in a URL, a message or a log line.
        self.session.headers.update({"sc-api": api_key, "Accept": "application/json"})
        self.budget = budget
        self.deadline = None if budget is None else time.monotonic() + budget
        self.max_wait = max_wait
        self.timeouts = timeouts
        self.calls = 0
        self.waits: list[float] = []

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SamCart:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def get(self, path_or_url: str, params: dict | None = None) -> dict:
        """GET a path relative to the base URL (or a full URL on the same host, such as ``pagination.next``) and
        return its JSON object; every failure raises SamCartFailed."""
        url = path_or_url if "://" in path_or_url else base_url() + path_or_url
        budget = rate_limit_wait() if self.max_wait is None else self.max_wait
        waited = 0.0
        for attempt in range(RETRIES + 1):
            response = self._send(url, params)
            if response.status_code != 429:
                return self._parse(response, url)
            hint = wait_hint(response.headers)
            wait = hint if hint is not None else float(2**attempt)
            left = budget - waited
            if self.deadline is not None:
                left = min(left, self.deadline - time.monotonic())
            if attempt == RETRIES or wait > left:
                # Waiting longer would overrun this call's budget: say how long SamCart asked for instead.
                raise SamCartFailed(
                    f"SamCart is rate limiting this server (HTTP 429); try again in {max(1, math.ceil(wait))} seconds.",
                    status=429,
                    transient=True,
                    retry_after=max(1.0, math.ceil(wait)),
                )
            self.waits.append(wait)
            waited += wait
            time.sleep(wait)
        raise AssertionError("unreachable")

    def pages(self, path: str, params: dict | None = None) -> Iterator[list]:
        """Each page's ``data`` of a list endpoint, following ``pagination.next`` to the end (§4.3, §9).

        ``next`` is accepted as a full URL, a path, or a bare id cursor (sent back as ``offset`` with
        ``dir=next``). A ``next`` that points at another host is refused: the key would go with it. A ``next``
        seen before (a server stuck on one page) raises instead of looping; an empty page ends the list."""
        url, query = base_url() + path, {**(params or {}), "limit": PAGE_LIMIT}
        seen: set = set()
        origin = urlsplit(base_url())[:2]
        while True:
            seen.add(_normalised(url, query))
            body = self.get(url, query)
            data = body.get("data")
            if not isinstance(data, list):
                raise SamCartFailed(
                    f'SamCart\'s answer to GET {path} had no list of records ("data"); nothing more was imported.',
                    status=200,
                )
            if not data:
                return
            yield data
            pagination = body.get("pagination")
            nxt = pagination.get("next") if isinstance(pagination, dict) else None
            if nxt in (None, "", False):
                return
            if isinstance(nxt, bool) or not isinstance(nxt, (str, int)):
                raise SamCartFailed(
                    f"SamCart's pagination.next for GET {path} is neither a URL nor a cursor "
                    f"({type(nxt).__name__}); stopped there.",
                    status=200,
                )
            if isinstance(nxt, int) or nxt.strip().isdigit():
                url, query = (
                    base_url() + path,
                    {**(params or {}), "limit": PAGE_LIMIT, "offset": str(nxt).strip(), "dir": "next"},
                )
            else:
                url, query = urljoin(url, nxt.strip()), None
                if urlsplit(url)[:2] != origin:
                    raise SamCartFailed(
                        f"SamCart's pagination.next for GET {path} points at another server "
                        f"({urlsplit(url).netloc}); stopped there rather than send the key to it.",
                        status=200,
                    )
            if _normalised(url, query) in seen:
                raise SamCartFailed(
                    f"SamCart's pagination for GET {path} came back to a page already read; "
                    "stopped there rather than loop.",
                    status=200,
                )

    def _send(self, url: str, params: dict | None) -> requests.Response:
        connect, read = self.timeouts or timeout()
        limit = read  # what a timeout message names: the read timeout, or the whole budget when that ran out
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise _unreachable(requests.Timeout("the call's time budget ran out"), self.budget)
            if left < read:
                connect, read, limit = min(connect, left), left, self.budget
        self.calls += 1
        try:
            response = self.session.get(url, params=params, timeout=(connect, read))
        except requests.Timeout as exc:  # before RequestException: a connect timeout is also a ConnectionError
            raise _unreachable(exc, limit) from exc
        except requests.RequestException as exc:
            raise _unreachable(exc) from exc
        count_calls(status=response.status_code)  # for GET /metrics (SamCart meters no quota that Hookyard tracks)
        return response

    @staticmethod
    def _parse(response: requests.Response, url: str) -> dict:
        status, what = response.status_code, f"GET {urlsplit(url).path}"
        if status in (401, 403):
            reason = _message(response) or ("invalid key" if status == 401 else "access denied")
            raise SamCartFailed(
                f"SamCart refused the API key (HTTP {status}: {reason}). Check that it was copied "
                "whole; SamCart support (support@samcart.com) issues and revokes keys.",
                status=status,
                field="api_key",
            )
        if status >= 500:
            raise SamCartFailed(
                f"SamCart answered HTTP {status} to {what} ({_message(response) or 'no message'}); "
                "try again in a minute.",
                status=status,
                transient=True,
            )
        if not 200 <= status < 300:
            raise SamCartFailed(
                f"SamCart answered HTTP {status} to {what} ({_message(response) or 'no message'}).", status=status
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # A proxy's or a captive portal's page, most likely: worth another try later.
            raise SamCartFailed(
                f"SamCart's answer to {what} was not a JSON object; try again in a minute.",
                status=status,
                transient=True,
            )
        return body


def _unreachable(exc: Exception, read: float | None = None) -> SamCartFailed:
    where = base_url()
    if read is not None:
        return SamCartFailed(
            f"SamCart's API could not be reached at {where}: no answer within {read:g} seconds "
            f"({exc.__class__.__name__}). Try again in a minute.",
            timed_out=True,
        )
    return SamCartFailed(
        f"SamCart's API could not be reached at {where} ({exc.__class__.__name__}); check "
        "SAMCART_API_BASE_URL and this server's network, then try again.",
        transient=True,
    )


def _normalised(url: str, query: dict | None) -> tuple:
    """A URL and its parameters as one comparable value, whatever the order of the query's parameters."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True) + [(k, str(v)) for k, v in (query or {}).items()]
    return parts.scheme, parts.netloc, parts.path.rstrip("/"), tuple(sorted(pairs))
