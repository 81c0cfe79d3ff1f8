"""The ten Circle actions. Each makes the fewest calls that settle the outcome and maps Circle's
answer to one Outcome with a reason a merchant can read (circle-api.md §3, §6)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import requests
from marshmallow import Schema, fields

from hookyard import Action, Outcome
from hookyard.fields import Option

from .client import Circle, Reply

DEFAULT_429_WAIT = 60.0  # Circle documents no Retry-After; its own guidance is to wait about a minute


class Failed(Exception):
    """Stops an action with this outcome (from a helper several calls deep)."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome


def circle_for(ctx) -> Circle:
    # A dry-run is the client's (Circle.request): every action reads for real and reports its writes unsent.
    return Circle(
        ctx.config["api_key"],
        ctx.info.get("auth_scheme", "Bearer"),
        pace=ctx.pace,
        report=ctx.report_call,
        dry_run=ctx.dry_run,
    )


def with_calls(run):
    """Runs an action, turning transport errors into retryable failures and counting Circle calls."""

    def wrapped(ctx):
        circle = circle_for(ctx)
        if not ctx.email:
            return Outcome.failed("the trigger payload has no customer email")
        try:
            outcome = run(ctx, circle)
        except Failed as stop:
            outcome = stop.outcome
        except requests.Timeout:
            outcome = Outcome.failed("Circle did not answer in time", retryable=True)
        except requests.RequestException as exc:
            outcome = Outcome.failed(f"could not reach Circle ({exc.__class__.__name__})", retryable=True)
        return replace(outcome, details={**outcome.details, "circle_calls": circle.calls})

    wrapped.__name__ = run.__name__
    return wrapped


def common(reply: Reply) -> Outcome | None:
    """Outcomes that mean the same for every action: auth, plan, limits, Circle's own trouble."""
    text = reply.message or f"HTTP {reply.status}"
    if reply.status == 401:
        return Outcome.failed(f"Circle rejected the API key: {text}", needs_attention=True)
    if reply.status == 403:
        lowered = text.lower()
        if "daily member limit" in lowered:
            return Outcome.failed(f"Circle: {text}", retryable=True, retry_after=_seconds_to_tomorrow())
        if "maximum limit of members" in lowered:
            return Outcome.failed(f"Circle: {text} Upgrade the Circle plan or remove members.")
        if "eligible" in lowered:
            return Outcome.failed(
                f"Circle: {text} The Admin API needs the Business plan or above.", needs_attention=True
            )
        return Outcome.failed(
            f"Circle refused the API key ({text}): it must be an Admin V2 token.", needs_attention=True
        )
    if reply.status == 429:
        return Outcome.failed(
            "Circle rate limited the request (HTTP 429)",
            retryable=True,
            retry_after=reply.retry_after if reply.retry_after is not None else DEFAULT_429_WAIT,
        )
    if reply.status >= 500:
        return Outcome.failed(
            f"Circle had an error (HTTP {reply.status})", retryable=True, retry_after=reply.retry_after
        )
    return None


def check(reply: Reply) -> Reply:
    """The reply, unless it is one of the common failures, which stop the action."""
    outcome = common(reply)
    if outcome is not None:
        raise Failed(outcome)
    return reply


def stale(kind: str, value) -> Outcome:
    return Outcome.failed(
        f"Circle has no {kind} {value} any more: refresh the integration and choose another {kind} in the rule"
    )


def not_a_member(email: str) -> Outcome:
    return Outcome.skipped(f"{email} is not a member of the Circle community (invite them first)")


def unexpected(reply: Reply) -> Outcome:
    return Outcome.failed(f"Circle answered HTTP {reply.status}: {reply.message or 'no message'}")


def _seconds_to_tomorrow() -> float:
    now = datetime.now(timezone.utc)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def _name(ctx) -> str | None:
    customer = ctx.payload.get("customer") or {}
    name = " ".join(p for p in (customer.get("first_name"), customer.get("last_name")) if p)
    return name or None


def find_member(circle: Circle, email: str) -> dict | None:
    reply = check(circle.request("GET", "/community_members/search", params={"email": email}))
    if reply.status == 404:
        return None
    if not reply.ok:
        raise Failed(unexpected(reply))
    return reply.body


# --- invite / remove -----------------------------------------------------------------------------


class InviteParams(Schema):
    space_ids = fields.List(Option("spaces", fields.Integer()), load_default=list, metadata={"label": "Spaces"})
    space_group_ids = fields.List(
        Option("space_groups", fields.Integer()), load_default=list, metadata={"label": "Space groups"}
    )
    member_tag_ids = fields.List(
        Option("member_tags", fields.Integer()), load_default=list, metadata={"label": "Member tags"}
    )
    skip_invitation = fields.Boolean(
        load_default=False,
        metadata={
            "label": "Skip the invitation email",
            "description": "Add the member without Circle's invitation email.",
        },
    )


_STALE_KIND = {
    "space": ("space", "space_ids"),
    "space group": ("space group", "space_group_ids"),
    "member tag": ("member tag", "member_tag_ids"),
}


@with_calls
def invite_member(ctx, circle):
    email, params = ctx.email, ctx.params
    if ctx.attempt > 1 and find_member(circle, email) is not None:
        # An earlier attempt may have reached Circle before timing out: never send a second invitation.
        return _apply_memberships(circle, email, params, "already a member (an earlier attempt invited them)")
    body = {
        "email": email,
        "skip_invitation": params["skip_invitation"],
        "space_ids": params["space_ids"],
        "space_group_ids": params["space_group_ids"],
        "member_tag_ids": params["member_tag_ids"],
    }
    if _name(ctx):
        body["name"] = _name(ctx)
    reply = check(circle.request("POST", "/community_members", json=body))
    if reply.ok:
        if "already" in reply.message.lower():
            # Whether Circle v2 then applies the spaces, groups and tags is not documented: apply them.
            return _apply_memberships(circle, email, params, "already a member")
        return Outcome.succeeded("invited" if not params["skip_invitation"] else "added without an invitation")
    if reply.status == 404 and reply.missing in _STALE_KIND:
        kind, key = _STALE_KIND[reply.missing]
        return stale(kind, ", ".join(map(str, params[key])))
    if reply.status == 422 and any(w in reply.message.lower() for w in ("already", "taken")):
        # Circle's answer for an existing member is not documented for v2; this is one of the two seen.
        return _apply_memberships(circle, email, params, "already a member")
    return unexpected(reply)


def _apply_memberships(circle: Circle, email: str, params, note: str) -> Outcome:
    """An existing member still gets the spaces, groups and tags the rule asks for, one call each."""
    for space_id in params["space_ids"]:
        _must(added(add_to_space_reply(circle, email, space_id), email, "space", space_id, "", ""))
    for group_id in params["space_group_ids"]:
        reply = check(circle.request("POST", "/space_group_members", json={"email": email, "space_group_id": group_id}))
        _must(added(reply, email, "space group", group_id, "", ""))
    for tag_id in params["member_tag_ids"]:
        reply = check(circle.request("POST", "/tagged_members", json={"member_tag_id": tag_id, "user_email": email}))
        _must(added(reply, email, "member tag", tag_id, "", ""))
    return Outcome.succeeded(note)


def _must(outcome: Outcome) -> None:
    if outcome.status != "succeeded":
        raise Failed(outcome)


class NoParams(Schema):
    pass


@with_calls
def remove_member(ctx, circle):
    member = find_member(circle, ctx.email)
    if member is None:
        return Outcome.succeeded(f"{ctx.email} was not a member: nothing to remove")
    # The plain delete: never delete_member (which erases their posts) nor ban_member.
    reply = check(circle.request("DELETE", f"/community_members/{member['id']}"))
    if reply.ok:
        return Outcome.succeeded("removed from the community")
    if reply.status == 404:
        return Outcome.succeeded(f"{ctx.email} was already removed")
    return unexpected(reply)


# --- adding to and removing from spaces, space groups, events and tags -------------------------

MEMBER_MISSING = ("user", "community member")
# What Circle's 404 names when the thing itself is gone. An event is a post to Circle: its real API answers
# "Missing record: post" (or "posts/event"), not "event" (circle-api.md §9).
GONE = {"event": ("event", "post", "posts/event", "posts")}


def gone(reply: Reply, kind: str) -> bool:
    return reply.status == 404 and reply.missing in GONE.get(kind, (kind,))


def added(reply: Reply, email: str, kind: str, value, done: str, already: str) -> Outcome:
    """Adding the member to something: done, already done, a stale id, or not a member at all."""
    lowered = reply.message.lower()
    if reply.ok:
        return Outcome.succeeded(already if "already" in lowered else done)
    if gone(reply, kind):
        return stale(kind, value)
    if (reply.status == 404 and reply.missing in MEMBER_MISSING) or (reply.status == 422 and "not a member" in lowered):
        return not_a_member(email)
    if reply.status == 422 and "already" in lowered:  # Circle does not document re-adding; accept this form
        return Outcome.succeeded(already)
    return unexpected(reply)


def removed(reply: Reply, kind: str, value, done: str, absent: str) -> Outcome:
    """Removing the member from something: done, a stale id, or it was not there (already done)."""
    if reply.ok:
        return Outcome.succeeded(done)
    if gone(reply, kind):
        return stale(kind, value)
    if reply.status == 404:
        return Outcome.succeeded(absent)
    return unexpected(reply)


class SpaceParams(Schema):
    space_id = Option("spaces", fields.Integer(), required=True, metadata={"label": "Space"})


def add_to_space_reply(circle: Circle, email: str, space_id) -> Reply:
    reply = check(circle.request("POST", "/space_members", json={"email": email, "space_id": space_id}))
    if reply.status == 422:
        # Circle does not say whether re-adding a member is a 422; ask before calling it a failure.
        member = check(circle.request("GET", "/space_member", params={"email": email, "space_id": space_id}))
        if member.ok:
            return Reply(200, {"message": "already in the space"}, None)
    return reply


@with_calls
def add_member_to_space(ctx, circle):
    space_id = ctx.params["space_id"]
    return added(
        add_to_space_reply(circle, ctx.email, space_id),
        ctx.email,
        "space",
        space_id,
        "added to the space",
        "already in the space",
    )


@with_calls
def remove_member_from_space(ctx, circle):
    space_id = ctx.params["space_id"]
    reply = check(circle.request("DELETE", "/space_members", params={"email": ctx.email, "space_id": space_id}))
    return removed(reply, "space", space_id, "removed from the space", f"{ctx.email} was not in the space")


class SpaceGroupParams(Schema):
    space_group_id = Option("space_groups", fields.Integer(), required=True, metadata={"label": "Space group"})


@with_calls
def add_member_to_space_group(ctx, circle):
    group_id = ctx.params["space_group_id"]
    reply = check(circle.request("POST", "/space_group_members", json={"email": ctx.email, "space_group_id": group_id}))
    return added(reply, ctx.email, "space group", group_id, "added to the space group", "already in the space group")


@with_calls
def remove_member_from_space_group(ctx, circle):
    group_id = ctx.params["space_group_id"]
    reply = check(
        circle.request("DELETE", "/space_group_members", params={"email": ctx.email, "space_group_id": group_id})
    )
    # "Missing record: user" covers both an unknown member and one not in the group.
    return removed(
        reply,
        "space group",
        group_id,
        "removed from the space group and its spaces",
        f"{ctx.email} was not in the space group",
    )


class EventParams(Schema):
    event_id = Option("events", fields.Integer(), required=True, metadata={"label": "Event"})


@with_calls
def rsvp_member_to_event(ctx, circle):
    event_id = ctx.params["event_id"]
    reply = check(
        circle.request("POST", "/event_attendees", json={"event_id": str(event_id), "member_email": ctx.email})
    )
    return added(reply, ctx.email, "event", event_id, "RSVP'd to the event", "already RSVP'd to the event")


@with_calls
def unrsvp_member_from_event(ctx, circle):
    event_id = ctx.params["event_id"]
    # Circle's spec puts this DELETE's parameters in a JSON body, unlike every other DELETE.
    reply = check(
        circle.request("DELETE", "/event_attendees", json={"event_id": str(event_id), "member_email": ctx.email})
    )
    return removed(reply, "event", event_id, "RSVP removed", f"{ctx.email} had not RSVP'd to the event")


class TagParams(Schema):
    member_tag_id = Option("member_tags", fields.Integer(), required=True, metadata={"label": "Member tag"})


@with_calls
def add_member_tag(ctx, circle):
    tag_id = ctx.params["member_tag_id"]
    reply = check(circle.request("POST", "/tagged_members", json={"member_tag_id": tag_id, "user_email": ctx.email}))
    return added(reply, ctx.email, "member tag", tag_id, "tagged", "already had the tag")


@with_calls
def remove_member_tag(ctx, circle):
    tag_id = ctx.params["member_tag_id"]
    reply = check(
        circle.request("DELETE", "/tagged_members", params={"user_email": ctx.email, "member_tag_id": tag_id})
    )
    if reply.status == 404 and reply.missing == "member tag":
        # Circle says "member tag" both for an unknown tag and for a member without it: ask which.
        tag = check(circle.request("GET", f"/member_tags/{tag_id}"))
        if tag.ok:
            return Outcome.succeeded(f"{ctx.email} did not have the tag")
    return removed(reply, "member tag", tag_id, "tag removed", f"{ctx.email} did not have the tag")


ACTIONS = (
    Action(
        "invite_member",
        "Invite member",
        InviteParams,
        invite_member,
        "Invite the customer to the community, optionally into spaces, space groups and tags.",
        dry_run=True,
    ),
    Action(
        "remove_member",
        "Remove member",
        NoParams,
        remove_member,
        "Remove the customer from the community (their posts stay).",
        dry_run=True,
    ),
    Action(
        "add_member_to_space",
        "Add member to space",
        SpaceParams,
        add_member_to_space,
        "Add an existing member to a space.",
        dry_run=True,
    ),
    Action(
        "remove_member_from_space",
        "Remove member from space",
        SpaceParams,
        remove_member_from_space,
        "Remove the member from a space.",
        dry_run=True,
    ),
    Action(
        "add_member_to_space_group",
        "Add member to space group",
        SpaceGroupParams,
        add_member_to_space_group,
        "Add an existing member to a space group and its spaces.",
        dry_run=True,
    ),
    Action(
        "remove_member_from_space_group",
        "Remove member from space group",
        SpaceGroupParams,
        remove_member_from_space_group,
        "Remove the member from a space group and its spaces.",
        dry_run=True,
    ),
    Action(
        "rsvp_member_to_event",
        "RSVP member to event",
        EventParams,
        rsvp_member_to_event,
        "RSVP an existing member to an event.",
        dry_run=True,
    ),
    Action(
        "unrsvp_member_from_event",
        "Un-RSVP member from event",
        EventParams,
        unrsvp_member_from_event,
        "Remove the member's RSVP from an event.",
        dry_run=True,
    ),
    Action("add_member_tag", "Add member tag", TagParams, add_member_tag, "Tag an existing member.", dry_run=True),
    Action(
        "remove_member_tag",
        "Remove member tag",
        TagParams,
        remove_member_tag,
        "Remove a tag from the member.",
        dry_run=True,
    ),
)
