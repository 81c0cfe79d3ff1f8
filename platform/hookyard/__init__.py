"""Hookyard: store triggers in, app actions out.

Plugin authors need only what this module exports::

    from hookyard import hookimpl, TriggerType, App, Action, Outcome
    from hookyard.fields import Option, Secret   # typed schema fields (also exported here)
"""

import pluggy

from .contract import (
    Access,
    Action,
    App,
    Cancelled,
    ConnectionFailed,
    Deferred,
    Holders,
    Inbound,
    InboundContext,
    InboundEvent,
    Members,
    Outcome,
    PastEvents,
    Rejected,
    RunContext,
    Setting,
    TriggerType,
    Unmapped,
    Usage,
    count_calls,
)
from .fields import Option, Secret
from .hookspecs import HOOK_API_VERSION
from .plugin_settings import PluginSettings

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("hookyard")

__all__ = [
    "Access",
    "Action",
    "App",
    "Cancelled",
    "ConnectionFailed",
    "Deferred",
    "HOOK_API_VERSION",
    "Holders",
    "Inbound",
    "InboundContext",
    "InboundEvent",
    "Members",
    "Option",
    "Outcome",
    "PastEvents",
    "PluginSettings",
    "Rejected",
    "RunContext",
    "Secret",
    "Setting",
    "TriggerType",
    "Unmapped",
    "Usage",
    "count_calls",
    "hookimpl",
    "__version__",
]
