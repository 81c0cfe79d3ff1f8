"""The SamCart plugin's settings (the operator's, in the environment, never a connection's): declared here,
registered by ``register_settings``, read as ``SETTINGS[name]`` (docs/plugins/settings.md)."""

from __future__ import annotations

import re
from datetime import timedelta

from hookyard import PluginSettings, Setting
from hookyard.plugin_settings import not_negative, positive

DEFAULT_BASE_URL = "https://api.samcart.com/v1"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError("must be a duration such as 3600, 90m or 1h")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


SETTINGS = PluginSettings(
    Setting(
        "SAMCART_API_BASE_URL",
        str,
        DEFAULT_BASE_URL,
        "SamCart's Public API, used only by connections that have an API key (point it at the fake SamCart, "
        "python -m hookyard_samcart.fake, for tests and demos). Web and worker.",
        parse=lambda url: url.rstrip("/"),
    ),
    Setting(
        "SAMCART_TIMEOUT",
        float,
        10.0,
        "Seconds to wait for each answer (read timeout). Web and worker.",
        parse=positive,
    ),
    Setting("SAMCART_CONNECT_TIMEOUT", float, 5.0, "Seconds to wait to connect. Web and worker.", parse=positive),
    Setting(
        "SAMCART_VERIFY_TIMEOUT",
        float,
        10.0,
        "Seconds a key check (connecting or editing a connection, inside a web request) may take in all, 429 "
        "waits included; past it the request answers 504. Web.",
        parse=positive,
    ),
    Setting(
        "SAMCART_RATE_LIMIT_WAIT",
        float,
        30.0,
        "Seconds one call may spend waiting out 429 answers (at most 3 retries) before it gives up as "
        "retryable; 0 never waits. Worker (the product import).",
        parse=not_negative,
    ),
    Setting(
        "HOOKYARD_SAMCART_REDELIVERY_WINDOW",
        str,
        "1h",
        "A notification with no charge id, rebill id or timestamp is a redelivery only when an identical body "
        "came within this window: seconds, or a number with s, m, h or d. Worker.",
        parse=_duration,
    ),
)
