"""Circle (circle.so) for Hookyard: one app whose actions manage community members through the Admin API v2."""
from hookyard import App, hookimpl

from .actions import ACTIONS
from .client import rate_limit
from .connection import CircleConfig, refresh, verify

CIRCLE = App(
    key="circle", name="Circle", config_schema=CircleConfig, verify=verify, refresh=refresh, actions=ACTIONS,
    description="Invite and remove members, manage spaces, space groups, event RSVPs and member tags.",
)


@hookimpl
def register_apps(register):
    rate_limit()  # a bad CIRCLE_RATE_LIMIT stops the server at start, not each run later
    register(CIRCLE)
