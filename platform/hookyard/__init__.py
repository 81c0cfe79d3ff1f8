"""Hookyard: store triggers in, app actions out.

Plugin authors need only what this module exports::

    from hookyard import hookimpl, TriggerType, App, Action, Outcome
"""
import pluggy

from .contract import (Action, App, Cancelled, ConnectionFailed, Deferred, Inbound, InboundContext, InboundEvent,
                       Outcome, Rejected, RunContext, TriggerType, Unmapped, Usage, count_calls)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("hookyard")

__all__ = ["Action", "App", "Cancelled", "ConnectionFailed", "Deferred", "Inbound", "InboundContext", "InboundEvent",
           "Outcome", "Rejected", "RunContext", "TriggerType", "Unmapped", "Usage", "count_calls", "hookimpl",
           "__version__"]
