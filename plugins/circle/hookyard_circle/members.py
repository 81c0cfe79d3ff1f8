"""Who holds each community, space, space group and tag, for access reconciliation (hookyard.Members), with the
fewest calls Circle allows, every one counted against the community's monthly quota (circle-api.md §5.1, §6.3):

- the community and every tag: the pages of ``GET /community_members`` (100 a page), whose records carry their
  ``member_tags``; invited members who have not confirmed their profile are listed too, and count as members;
- each space: the pages of ``GET /space_members?space_id=``; each space group: ``GET /space_group_members?
  space_group_id=``. Circle's Admin v2 API has these lists, but the reference does not document them: when Circle
  answers 404 (with no "Missing record") or 405, that target falls back to one documented look-up per candidate
  (``GET /space_member?email=&space_id=``, ``GET /space_group_member?email=&space_group_id=``), and is reported
  ``partial``: who else is in it is unknown.

Every call is paced under the connection's budget (``pace``), and a 429 is waited out as §6 says (``Retry-After``
when Circle sends one, else about 60 s), up to RATE_LIMITED_TRIES times, before the check fails with the reason."""

from __future__ import annotations

import time

import requests

from hookyard import ConnectionFailed, Holders

from .client import Circle, Reply
from .connection import explain


def _no_progress(done, total=None, message=None) -> None:
    return None


RATE_LIMITED_TRIES = 4  # a list read that Circle answers 429 this many times in a row fails the check
RATE_LIMITED_WAIT = 60.0  # seconds, when a 429 carries no Retry-After (circle-api.md §6, S4)


LISTS = {
    "space": ("/space_members", "space_id", "/space_member", "space"),
    "space_group": ("/space_group_members", "space_group_id", "/space_group_member", "space group"),
}


class _Reader:
    def __init__(self, circle: Circle, progress):
        self.circle, self.progress = circle, progress
        self.pages = 0
        self.expected = 0  # pages known to be needed so far: the first page of each list tells its page count

    def call(self, path: str, params: dict) -> Reply:
        for tries in range(1, RATE_LIMITED_TRIES + 1):
            reply = self._once(path, params)
            if reply.status != 429:
                return reply
            if tries == RATE_LIMITED_TRIES:
                raise ConnectionFailed(
                    f"Circle answered 429 (rate limited) {tries} times in a row while listing members; the "
                    "community's other clients may be using its rate limit. Try again later.",
                    transient=True,
                )
            wait = reply.retry_after if reply.retry_after is not None else RATE_LIMITED_WAIT
            # Reported before the wait: the check's page shows why it stands still, and a cancel is seen here.
            self.report(f"Circle asked to slow down (429): waiting {wait:g} s before asking again.")
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _once(self, path: str, params: dict) -> Reply:
        try:
            reply = self.circle.request("GET", path, params=params)
        except requests.Timeout as exc:
            raise ConnectionFailed(
                "Circle did not answer in time while listing members; try again.", timed_out=True
            ) from exc
        except requests.RequestException as exc:
            raise ConnectionFailed(
                f"Could not reach Circle ({exc.__class__.__name__}) while listing members; try again.", transient=True
            ) from exc
        self.pages += 1
        return reply

    def report(self, message: str) -> None:
        self.progress(self.pages, max(self.expected, self.pages), message)

    def listing(self, path: str, params: dict, message: str) -> list[dict] | None:
        """Every record of a paginated list; None when Circle has no such list (404 without a record, 405)."""
        records, page = [], 1
        while True:
            reply = self.call(path, {**params, "page": page, "per_page": 100})
            if reply.status == 405 or (reply.status == 404 and reply.missing is None):
                self.expected += 1
                return None
            if not reply.ok:
                raise _refused(reply)
            if page == 1:
                count = reply.body.get("page_count")
                self.expected += count if isinstance(count, int) and count > 0 else 1
            records += reply.records
            self.report(message)
            if not reply.has_next_page:
                return records
            page += 1


def _refused(reply: Reply) -> ConnectionFailed:
    if reply.status == 404 and reply.missing in ("space", "space group"):
        return ConnectionFailed(
            f"Circle has no {reply.missing} of that id any more: refresh the integration and change the rules "
            "that name it."
        )
    return explain(reply)


def _email(record: dict) -> str | None:
    member = record.get("community_member") if isinstance(record.get("community_member"), dict) else record
    email = member.get("email") or record.get("email") or record.get("user_email")
    return email.strip().lower() if isinstance(email, str) and email.strip() else None


def read(config, info, candidates, progress=_no_progress, pace=None) -> Holders:
    circle = Circle(config["api_key"], info.get("auth_scheme", "Bearer"), pace=pace)
    reader = _Reader(circle, progress)
    targets = list(candidates)
    members: dict = {target: set() for target in targets}
    partial = set()
    if any(kind in ("community", "member_tag") for kind, _ in targets):
        records = reader.listing("/community_members", {}, "Reading the community's members from Circle.")
        tags = {target for target in targets if target[0] == "member_tag"}
        for record in records or ():
            email = _email(record)
            if email is None:
                continue
            if ("community", None) in members:
                members[("community", None)].add(email)
            for tag in record.get("member_tags") or ():
                target = ("member_tag", tag.get("id") if isinstance(tag, dict) else tag)
                if target in tags:
                    members[target].add(email)
    for target in targets:
        kind, target_id = target
        if kind not in LISTS:
            continue
        path, key, single, word = LISTS[kind]
        records = reader.listing(path, {key: target_id}, f"Reading the members of {word} {target_id} from Circle.")
        if records is not None:
            members[target] = {email for email in map(_email, records) if email}
            continue
        # No list endpoint: ask about each candidate, as the actions do before re-adding someone (§2).
        partial.add(target)
        for email in sorted(candidates[target]):
            reply = reader.call(single, {"email": email, key: target_id})
            if reply.ok:
                members[target].add(email)
            elif reply.status == 404 and reply.missing in ("space", "space group"):
                raise _refused(reply)
            elif reply.status != 404:
                raise _refused(reply)
            reader.expected = max(reader.expected, reader.pages)
            reader.report(f"Asking Circle about each person in {word} {target_id} (no list endpoint).")
    return Holders(members={t: frozenset(v) for t, v in members.items()}, partial=frozenset(partial))
