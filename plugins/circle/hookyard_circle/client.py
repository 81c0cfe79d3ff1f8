"""A small client for Circle's Admin API v2: one requests.Session, paced and counted calls, and
replies parsed defensively (Circle's success and error bodies are not uniform)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import requests

DEFAULT_BASE_URL = "https://app.circle.so/api/admin/v2"
_MISSING = re.compile(r"Missing record:\s*([a-z ]+)", re.I)


def base_url() -> str:
    # A deployment setting (tests and staging point it at the fake), never a per-connection field.
    return os.environ.get("CIRCLE_API_BASE_URL", DEFAULT_BASE_URL).rstrip("/")


def timeout() -> tuple[float, float]:
    return (5.0, float(os.environ.get("CIRCLE_TIMEOUT", "30")))


def rate_limit() -> tuple[int, float]:
    """CIRCLE_RATE_LIMIT as "requests/seconds"; the default leaves 10% of Circle's 2,000 per 5 minutes spare."""
    raw = os.environ.get("CIRCLE_RATE_LIMIT", "1800/300")
    try:
        limit, window = raw.split("/")
        return int(limit), float(window)
    except ValueError:
        raise SystemExit(f"CIRCLE_RATE_LIMIT must look like 1800/300 (requests/seconds), got {raw!r}") from None


@dataclass
class Reply:
    status: int
    body: dict
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        text = self.body.get("message") or self.body.get("errors") or ""
        return text if isinstance(text, str) else str(text)

    @property
    def missing(self) -> str | None:
        """The model of a 404 "Missing record: <model>", lower-cased (space, user, member tag, …)."""
        details = self.body.get("error_details")
        for text in ((details or {}).get("message") if isinstance(details, dict) else details, self.message):
            match = _MISSING.search(text or "")
            if match:
                return match.group(1).strip().lower()
        return None


class Circle:
    def __init__(self, api_key: str, scheme: str = "Bearer", pace=None):
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"{scheme} {api_key}", "Accept": "application/json"})
        self.pace = pace
        self.calls = 0

    def request(self, method: str, path: str, *, params=None, json=None) -> Reply:
        """One call; transport failures (timeouts, refused or dropped connections) raise requests' errors."""
        if self.pace is not None:
            self.pace("circle", *rate_limit())
        self.calls += 1
        response = self.session.request(method, base_url() + path, params=params, json=json, timeout=timeout())
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:200]}
        if not isinstance(body, dict):
            body = {"records": body}
        return Reply(response.status_code, body, _retry_after(response.headers.get("Retry-After")))

    def pages(self, path: str, params: dict | None = None) -> list[dict]:
        """Every record of a paginated list (100 per page, the maximum: each page counts against quota)."""
        records, page = [], 1
        while True:
            reply = self.request("GET", path, params={**(params or {}), "page": page, "per_page": 100})
            if not reply.ok:
                raise CircleRefused(reply)
            records += reply.body.get("records") or []
            if not reply.body.get("has_next_page"):
                return records
            page += 1


class CircleRefused(Exception):
    def __init__(self, reply: Reply):
        super().__init__(f"HTTP {reply.status}: {reply.message}")
        self.reply = reply


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to the default wait
