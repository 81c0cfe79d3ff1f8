"""The Circle connection: its fields, the cheap verify call, and the option lists a refresh loads."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from urllib.parse import urlparse

import requests
from marshmallow import Schema, fields, validate

from hookyard import ConnectionFailed
from hookyard.fields import Secret

from .client import Circle, CircleRefused, Reply, base_url, timeout, verify_timeout

# Circle's monthly request quota per community, by plan (circle-api.md §6.3): None where the plan has no Admin API
# v2 at all. Circle Plus counts as enterprise (30,000). Circle Plus Platform (250,000) is no choice of its own yet:
# it picks enterprise, whose smaller quota warns early rather than late.
PLANS = {"basic": None, "professional": None, "business": 5_000, "enterprise": 30_000}
PLAN_NAMES = {"basic": "Basic", "professional": "Professional", "business": "Business", "enterprise": "Enterprise"}
# A connection saved before plans existed: the smallest plan with the Admin API, so its warnings come early.
DEFAULT_PLAN = "business"


def plan_of(config) -> str:
    plan = config.get("plan") or DEFAULT_PLAN
    return plan if plan in PLANS else DEFAULT_PLAN


def quota(config) -> int | None:
    return PLANS[plan_of(config)]


def plan_name(config) -> str:
    return PLAN_NAMES[plan_of(config)]


class CircleConfig(Schema):
    api_key = Secret(
        required=True,
        validate=validate.Length(min=8),
        metadata={"label": "API key", "description": "An Admin V2 token: Circle → Settings → Developers → Tokens."},
    )
    community_url = fields.Url(
        required=True,
        schemes={"https", "http"},
        metadata={"label": "Community URL", "description": "Circle → Settings → General, e.g. https://yours.circle.so"},
    )
    plan = fields.String(
        load_default=DEFAULT_PLAN,
        validate=validate.OneOf(tuple(PLANS), error="Choose one of basic, professional, business, enterprise."),
        metadata={
            "label": "Circle plan",
            "description": "The community's Circle plan, for its monthly API request quota: "
            "business 5,000; enterprise 30,000 (also for Circle Plus; on Circle Plus Platform, 250,000, choose enterprise "
            "and warnings come early). Basic and professional have no Admin API. Business when not given.",
        },
    )


def explain(reply: Reply) -> ConnectionFailed:
    """A message a merchant can act on, for each way Circle refuses a connection."""
    if reply.status == 401:
        # Every 401 gets the v1 hint: a v1 token on v2 may answer 401 rather than 403 (circle-api.md §9), and what
        # a v1 token looks like is not documented, so it cannot be told from a mistyped key.
        return ConnectionFailed(
            "Circle rejected this API key. Check that it was copied whole and has not been "
            "deleted (Circle → Settings → Developers → Tokens). If this looks like an Admin "
            "API v1 token: create an Admin V2 token under Settings → Developers.",
            field="api_key",
        )
    if reply.status == 403 and "eligible" in reply.message.lower():
        return ConnectionFailed(
            "This Circle community's plan does not include the Admin API: it needs the Business plan or above."
        )
    if reply.status == 403:
        return ConnectionFailed(
            'This key is not an Admin V2 token. Create a token of type "Admin V2" in '
            "Circle → Settings → Developers → Tokens.",
            field="api_key",
        )
    if reply.status == 429:
        return ConnectionFailed("Circle is rate limiting this server right now; try again in a minute.", transient=True)
    return ConnectionFailed(
        f"Circle answered HTTP {reply.status} ({reply.message or 'no message'}); try again in a minute.",
        transient=reply.status >= 500,
    )


def too_slow(seconds: float, exc: Exception | None = None) -> ConnectionFailed:
    host = urlparse(base_url()).netloc
    cause = f" ({exc.__class__.__name__})" if exc is not None else ""
    return ConnectionFailed(
        f"Circle at {host} did not answer within {seconds:g} seconds{cause}; nothing was "
        "changed. Try again in a minute.",
        timed_out=True,
    )


def plan_warning(config) -> dict | None:
    """Basic and Professional have no Admin API v2: a key that works anyway means the plan chosen is not the
    community's real one (or Circle changed its plans)."""
    if quota(config) is not None:
        return None
    return {
        "code": "plan_without_admin_api",
        "message": f"The {plan_name(config)} plan chosen on this connection has no Circle Admin API: it needs "
        "the Business plan or above. If the community is on Business or Enterprise, choose that plan "
        "here so its monthly request quota is watched.",
    }


def _get(api_key: str, scheme: str, path: str, deadline: float, budget: float) -> Reply:
    """One verify call, within what is left of the verify's budget (it runs inside a web request)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise too_slow(budget)
    connect, read = timeout()
    try:
        return Circle(api_key, scheme).request("GET", path, timeouts=(min(connect, left), min(read, left)))
    except requests.Timeout as exc:  # before RequestException: a connect timeout is also a ConnectionError
        raise too_slow(budget, exc) from exc
    except requests.RequestException as exc:
        host = urlparse(base_url()).netloc
        raise ConnectionFailed(
            f"Could not reach Circle at {host} ({exc.__class__.__name__}); check the server's network and try again.",
            transient=True,
        ) from exc


SCHEMES = ("Bearer", "Token")


def verify(config, known=None) -> dict:
    """One call (two only when Circle wants the other auth scheme): GET /community, both within
    CIRCLE_VERIFY_TIMEOUT seconds in all. ``known`` is what the last check learned: the scheme that worked then is
    tried first, so a community on "Token" does not pay a refused (and counted) call on every refresh."""
    budget = verify_timeout()
    deadline = time.monotonic() + budget
    # Circle's quick start says "Bearer", its OpenAPI spec says "Token": both are seen working.
    last = (known or {}).get("auth_scheme")
    for scheme in sorted(SCHEMES, key=lambda s: s != last):
        reply = _get(config["api_key"], scheme, "/community", deadline, budget)
        if reply.status != 401:
            break
    if not reply.ok:
        raise explain(reply)
    slug = reply.body.get("slug") or ""
    host = urlparse(config["community_url"]).netloc.lower()
    name = reply.body.get("name")
    matches = bool(slug) and host.startswith(f"{slug.lower()}.")
    info = {
        "auth_scheme": scheme,
        "community_id": reply.body.get("id"),
        "community_name": name,
        "community_url_matches": matches,
    }
    found = []
    if not matches:
        # A custom domain will not contain the slug either: worth a warning, not worth refusing.
        found.append(community_mismatch(name, slug, config["community_url"]))
    if plan_warning(config):
        found.append(plan_warning(config))
    if found:
        info["warnings"] = found
    return info


def community_mismatch(name: str | None, slug: str, community_url: str) -> dict:
    """The warning for a community URL that is not the key's community's <slug>.circle.so address."""
    community = f"“{name}”" if name else "a community"
    address = f" ({slug}.circle.so)" if slug else ""
    return {
        "code": "community_url_mismatch",
        "message": f"This API key belongs to the Circle community {community}{address}, and {community_url} "
        f"is not its circle.so address. If that is {community}'s own domain, all is well; otherwise "
        f"rules will act on {community}, not on the community at that URL: correct the URL, or "
        "use a key of the community you meant.",
    }


def _no_progress(done, total=None, message=None) -> None:
    return None


def refresh(config, info, progress=_no_progress) -> dict:
    """Every page of spaces, space groups, upcoming events and member tags. It runs in the worker and reports
    records loaded out of the total Circle announces; ``progress`` raises (Cancelled) to stop it between pages."""
    circle = Circle(config["api_key"], info.get("auth_scheme", "Bearer"))
    today = datetime.now(timezone.utc).date().isoformat()
    lists = (
        ("spaces", "/spaces", None),
        ("space_groups", "/space_groups", None),
        ("events", "/events", {"sort": "start_date", "filter_date[start_date]": today}),
        ("member_tags", "/member_tags", None),
    )
    try:
        # The first page of every list first: their counts add up to the total, known after four calls.
        first = {name: circle.page(path, params, 1) for name, path, params in lists}
        records = {name: list(reply.records) for name, reply in first.items()}
        total = sum(reply.count for reply in first.values())

        def loaded() -> int:
            return sum(len(items) for items in records.values())

        progress(loaded(), total, "Loading spaces, space groups, events and member tags from Circle.")
        for name, path, params in lists:
            reply, page = first[name], 1
            while reply.has_next_page:
                page += 1
                reply = circle.page(path, params, page)
                records[name] += reply.records
                progress(loaded(), max(total, loaded()))
    except CircleRefused as exc:
        raise explain(exc.reply) from exc
    except requests.Timeout as exc:
        raise ConnectionFailed(
            f"Circle did not answer within {timeout()[1]:g} seconds ({exc.__class__.__name__}); try again.",
            timed_out=True,
        ) from exc
    except requests.RequestException as exc:
        raise ConnectionFailed(
            f"Could not reach Circle ({exc.__class__.__name__}); try again.", transient=True
        ) from exc
    spaces, groups, events, tags = (records[name] for name, _, _ in lists)
    return {
        "spaces": [
            {"id": s["id"], "name": s.get("name"), "space_group": (s.get("space_group") or {}).get("name")}
            for s in spaces
        ],
        "space_groups": [{"id": g["id"], "name": g.get("name")} for g in groups],
        "events": [{"id": e["id"], "name": e.get("name"), "starts_at": e.get("starts_at")} for e in events],
        "member_tags": [{"id": t["id"], "name": t.get("name")} for t in tags],
    }
