"""What each Circle action gives or takes (hookyard.Access), for access reconciliation: an invite grants the
community and the spaces, space groups and tags it names; removing a member revokes the community; the space, space
group and tag actions grant or revoke that one target. An event RSVP is not access (it says who comes to one
session, not who may see anything), so the RSVP actions declare none and reconciliation never looks at events."""

from __future__ import annotations

from dataclasses import replace

from hookyard import Access, Action

COMMUNITY = ("community", None)


def _invited(params) -> list:
    return [
        COMMUNITY,
        *(("space", i) for i in params.get("space_ids") or ()),
        *(("space_group", i) for i in params.get("space_group_ids") or ()),
        *(("member_tag", i) for i in params.get("member_tag_ids") or ()),
    ]


def _one(kind: str, key: str):
    return lambda params: [(kind, params[key])] if params.get(key) is not None else []


ACCESS = {
    "invite_member": Access("grants", _invited),
    "remove_member": Access("revokes", lambda params: [COMMUNITY]),
    "add_member_to_space": Access("grants", _one("space", "space_id")),
    "remove_member_from_space": Access("revokes", _one("space", "space_id")),
    "add_member_to_space_group": Access("grants", _one("space_group", "space_group_id")),
    "remove_member_from_space_group": Access("revokes", _one("space_group", "space_group_id")),
    "add_member_tag": Access("grants", _one("member_tag", "member_tag_id")),
    "remove_member_tag": Access("revokes", _one("member_tag", "member_tag_id")),
}


def with_access(actions: tuple[Action, ...]) -> tuple[Action, ...]:
    return tuple(replace(action, access=ACCESS.get(action.key)) for action in actions)
