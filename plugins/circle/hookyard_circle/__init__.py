"""Circle (circle.so) for Hookyard: one app whose actions manage community members through the Admin API v2."""

import base64

from hookyard import App, Members, Usage, hookimpl

from . import members
from .access import with_access
from .actions import ACTIONS
from .connection import CircleConfig, plan_name, quota, refresh, verify
from .settings import SETTINGS

# The hook API this plugin is written for: one outside the range is refused at load (docs/plugins/loading.md).
HOOKYARD_API = ">=1.2,<2"

# A plain ring, not Circle's trademark: enough for people to tell the app apart in the UI's app list.
LOGO = (
    "data:image/svg+xml;base64,"
    + base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><rect width="40" height="40" rx="10" '
        b'fill="#111827"/><circle cx="20" cy="20" r="10" fill="none" stroke="#fff" stroke-width="5"/></svg>'
    ).decode()
)

CIRCLE = App(
    key="circle",
    name="Circle",
    config_schema=CircleConfig,
    verify=verify,
    refresh=refresh,
    actions=with_access(ACTIONS),  # each with the access it gives or takes (access.py)
    option_lists=("spaces", "space_groups", "events", "member_tags"),
    description="Invite and remove members, manage spaces, space groups, event RSVPs and member tags.",
    logo_url=LOGO,
    # Circle's monthly request quota is per community (circle-api.md §6.3): connections to one community share it.
    usage=Usage(scope=lambda info: info.get("community_id"), quota=quota, plan=plan_name, label="Circle API requests"),
    members=Members(
        read=members.read,
        option_lists={"space": "spaces", "space_group": "space_groups", "member_tag": "member_tags"},
        labels={"community": "the community", "space": "space", "space_group": "space group", "member_tag": "tag"},
        root=("community", None),  # removing a member takes them out of every space, group and tag
    ),
)


@hookimpl
def register_apps(register):
    register(CIRCLE)


@hookimpl
def register_settings(register):
    register(SETTINGS)  # checked when the plugins load: a bad CIRCLE_RATE_LIMIT stops the server at start
