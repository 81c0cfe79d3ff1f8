"""The Circle plugin's settings (the operator's, in the environment, never a connection's): declared here, registered
by ``register_settings``, read as ``SETTINGS[name]`` (docs/plugins/settings.md)."""

from __future__ import annotations

from hookyard import PluginSettings, Setting
from hookyard.plugin_settings import positive

DEFAULT_BASE_URL = "https://app.circle.so/api/admin/v2"


def _rate(text: str) -> tuple[int, float]:
    try:
        limit, window = text.split("/")
        return int(limit), float(window)
    except ValueError:
        raise ValueError("must look like 1800/300 (requests/seconds)") from None


SETTINGS = PluginSettings(
    Setting(
        "CIRCLE_API_BASE_URL",
        str,
        DEFAULT_BASE_URL,
        "Circle's Admin API v2 (point it at the fake Circle for tests and demos). Web and worker.",
        parse=lambda url: url.rstrip("/"),
    ),
    Setting(
        "CIRCLE_RATE_LIMIT",
        str,
        "1800/300",
        "The shared request budget, requests/seconds; the default leaves 10% of Circle's 2,000 per 5 minutes "
        "spare. Workers.",
        parse=_rate,
    ),
    Setting(
        "CIRCLE_TIMEOUT",
        float,
        30.0,
        "Seconds to wait for each answer in the worker (actions, refresh). Worker.",
        parse=positive,
    ),
    Setting("CIRCLE_CONNECT_TIMEOUT", float, 5.0, "Seconds to wait to connect. Web and worker.", parse=positive),
    Setting(
        "CIRCLE_VERIFY_TIMEOUT",
        float,
        10.0,
        "Seconds a verify (connecting or editing a connection, inside a web request) may take in all; past it "
        "the request answers 504. Keep it well below HOOKYARD_WEB_TIMEOUT. Web.",
        parse=positive,
    ),
)
