"""The one action, "Send a POST": the body, the signed request, and the outcome of the receiver's answer."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from marshmallow import Schema, pre_load, validate
from marshmallow import fields as mf

from hookyard import Action, Outcome, RunContext, count_calls

from . import guard, settings, signing

# Only these keep the method and the body (RFC 9110 §15.4): a 301/302/303 would turn the POST into a GET of the
# new address, which is no delivery at all. Each hop goes through the SSRF guard again.
FOLLOWED_REDIRECTS = (307, 308)
MAX_REDIRECTS = 3
RETRYABLE = (408, 429)  # and every 5xx
EXCERPT_BYTES, EXCERPT_CHARS = 1024, 200
# A Retry-After hint is honoured up to this (the core's default longest wait between attempts): a receiver that
# asks for a year does not park the run for a year.
MAX_RETRY_AFTER = 6 * 3600.0
PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


class SendPostParams(Schema):
    fields = mf.List(
        mf.String(validate=validate.Regexp(PATH, error="A payload key or dotted path, e.g. customer.email.")),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={
            "label": "Payload fields",
            "description": "The payload keys or dotted paths to send (e.g. customer.email, product.id), nested as in "
            "the payload; empty sends the whole payload. A path the event does not have is left out "
            "(the log entry lists it).",
        },
    )

    @pre_load
    def split(self, data, **kwargs):
        """Also "customer.email, product.id" in one string: the web UI has one text input for a list of free text
        (no option list to tick), and a path never holds a comma or a space."""
        value = data.get("fields") if isinstance(data, dict) else None
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            data = {**data, "fields": [part for item in value for part in item.replace(",", " ").split()]}
        return data


def message_id(ctx: RunContext) -> str:
    """The webhook-id: the run's, the same on every attempt (and replay) of it, so a receiver can drop repeats."""
    return f"run_{ctx.run_id}"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pick(payload: Mapping[str, Any], paths: list[str]) -> tuple[dict, list[str]]:
    """The chosen paths of the payload, nested as they are there, and the paths it does not have."""
    picked: dict = {}
    missing: list[str] = []
    for path in paths:
        keys, value = path.split("."), payload
        for key in keys:
            if not isinstance(value, Mapping) or key not in value:
                missing.append(path)
                break
            value = value[key]
        else:
            node = picked
            for key in keys[:-1]:
                if not isinstance(node.get(key), dict):
                    node[key] = {}
                node = node[key]
            node[keys[-1]] = copy.deepcopy(value)
    return picked, missing


def body(ctx: RunContext) -> tuple[bytes, list[str]]:
    """The Standard Webhooks body: {"type", "timestamp", "data"}, and the chosen paths the payload lacks.
    ``timestamp`` is when the event occurred (its occurred_at), so every attempt sends the same body; the time of
    the attempt is in the webhook-timestamp header."""
    chosen = list(ctx.params.get("fields") or [])
    data, missing = pick(ctx.payload, chosen) if chosen else (copy.deepcopy(dict(ctx.payload)), [])
    occurred = ctx.payload.get("occurred_at")
    document = {
        "type": ctx.trigger,
        "timestamp": occurred if isinstance(occurred, str) and occurred else _utc_now(),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode(), missing


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP date (RFC 9110 §10.2.3); None when absent or
    unreadable. At most MAX_RETRY_AFTER."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    wait = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(0.0, wait), MAX_RETRY_AFTER)


def _excerpt(response: requests.Response) -> str:
    """The start of the receiver's answer, for the log: never the whole body (it could be huge)."""
    try:
        raw = response.raw.read(EXCERPT_BYTES, decode_content=True) if response.raw is not None else b""
    except (OSError, urllib3.exceptions.HTTPError):  # a broken, cut or badly compressed body: the status says enough
        return ""
    text = " ".join((raw or b"").decode("utf-8", errors="replace").split())
    return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


def outcome_of(response: requests.Response, details: dict) -> Outcome:
    status = response.status_code
    details = {**details, "status": status}
    if 200 <= status < 300:
        return Outcome.succeeded(f"the receiver answered HTTP {status}", details=details)
    excerpt = _excerpt(response)
    said = f": {excerpt}" if excerpt else ""
    if status in RETRYABLE or status >= 500:
        return Outcome.failed(
            f"the receiver answered HTTP {status}{said}",
            retryable=True,
            retry_after=retry_after(response.headers.get("Retry-After")),
            details=details,
        )
    if 300 <= status < 400:
        where = response.headers.get("Location")
        to = f" to {where}" if where else ""
        return Outcome.failed(
            f"the receiver redirected{to} with HTTP {status}; only 307 and 308 (which keep the "
            "POST) are followed: put the new address in the connection's URL",
            needs_attention=True,
            details=details,
        )
    return Outcome.failed(f"the receiver refused the POST with HTTP {status}{said}", details=details)


def _refused(exc: Exception, url: str, details: dict) -> Outcome:
    host = guard.host_of(url)
    reason = guard.Refused(host, str(exc.args[0]) if exc.args else None)
    return Outcome.failed(f"not sent: {reason}", needs_attention=True, details=details)


SIGNATURE_HEADER = "webhook-signature"


def shown_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers as a test shows them: the signature is a credential for this body (masked here, not only by the
    core's own masking of what is reported)."""
    return {name: "********" if name.lower() == SIGNATURE_HEADER else value for name, value in headers.items()}


def send_post(ctx: RunContext) -> Outcome:
    msg_id = message_id(ctx)
    raw, missing = body(ctx)
    # The time of this attempt: receivers refuse old timestamps (Standard Webhooks: 5 minutes) against replays.
    headers = signing.headers(ctx.config["secret"], msg_id, int(time.time()), raw)
    details: dict[str, Any] = {"webhook_id": msg_id}
    if missing:
        details["missing_fields"] = missing
    url = ctx.config["url"]
    if ctx.dry_run:
        # Nothing leaves: the POST is reported as it would go out (redirects cannot be known without sending it).
        ctx.report_call("POST", url, body=json.loads(raw), headers=shown_headers(headers), sent=False)
        return Outcome.succeeded("not sent (dry run): the POST shown would be sent to the receiver", details=details)
    connect, read = settings.timeout()
    with guard.session() as http:
        for hop in range(MAX_REDIRECTS + 1):
            if hop:
                details["redirects"] = hop
            try:
                response = http.post(
                    url, data=raw, headers=headers, timeout=(connect, read), stream=True, allow_redirects=False
                )
            except guard.InvalidIPAddress as exc:  # a RequestException too: caught before the others
                return _refused(exc, url, details)
            except requests.Timeout as exc:  # before ConnectionError: a connect timeout is both
                return Outcome.failed(
                    f"{guard.host_of(url)} did not answer within {read:g} seconds ({exc.__class__.__name__})",
                    retryable=True,
                    details=details,
                )
            except requests.ConnectionError as exc:
                return Outcome.failed(
                    f"could not reach {guard.host_of(url)} ({exc.__class__.__name__})", retryable=True, details=details
                )
            except requests.RequestException as exc:  # an invalid URL or header: trying again will not help
                return Outcome.failed(
                    f"could not send to {guard.host_of(url)} ({exc.__class__.__name__}: {exc})", details=details
                )
            count_calls(status=response.status_code)  # each answered post, redirects too (GET /metrics)
            ctx.report_call(
                "POST", url, body=json.loads(raw), headers=shown_headers(headers), status=response.status_code
            )
            with response:
                location = response.headers.get("Location")
                if response.status_code not in FOLLOWED_REDIRECTS or not location:
                    return outcome_of(response, details)
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                return Outcome.failed(
                    f"the receiver redirected to a {urlsplit(url).scheme or 'relative'} URL; "
                    "only http and https are posted to",
                    needs_attention=True,
                    details=details,
                )
    return Outcome.failed(
        f"the receiver redirected more than {MAX_REDIRECTS} times", needs_attention=True, details=details
    )


SEND_POST = Action(
    "send_post",
    "Send a POST",
    SendPostParams,
    send_post,
    description="POST the event (its whole payload, or chosen fields) as JSON to the connection's "
    "URL, signed the Standard Webhooks way; retried while the receiver is down or busy.",
    dry_run=True,
)
