"""The Webhook plugin's settings, with the plugin's own prefix (WEBHOOK_*): declared here, registered by
``register_settings`` and read through ``SETTINGS`` (docs/plugins/settings.md), so they are listed by
``hookyard plugins --settings`` and a malformed one stops the server at start.

They are the operator's, never a connection's: a merchant who could list hosts on a connection could undo the
SSRF guard for themselves. Each read sees the environment as it is then, so a test or a restart with new values
sees them."""

from __future__ import annotations

from hookyard import PluginSettings, Setting
from hookyard.plugin_settings import positive

ALLOWED_HOSTS = "WEBHOOK_ALLOWED_HOSTS"


def _hosts(hosts: tuple[str, ...]) -> frozenset[str]:
    return frozenset(host.lower().strip("[]") for host in hosts if host.strip("[]"))


SETTINGS = PluginSettings(
    Setting(
        ALLOWED_HOSTS,
        list,
        [],
        "Hosts (names or addresses, comma-separated; exact, case-insensitive, no ports) that may be posted to "
        "although they are, or resolve to, loopback, private, link-local or reserved addresses, e.g. a receiver "
        "on the operator's own network. Empty: every such address is refused (the SSRF guard). Web and worker.",
        parse=_hosts,
    ),
    Setting("WEBHOOK_TIMEOUT", float, 10.0, "Seconds to wait for the receiver's answer. Worker.", parse=positive),
    Setting(
        "WEBHOOK_CONNECT_TIMEOUT", float, 5.0, "Seconds to wait to connect to the receiver. Worker.", parse=positive
    ),
)


def allowed_hosts() -> frozenset[str]:
    """WEBHOOK_ALLOWED_HOSTS: the hosts the SSRF guard lets through, lower-cased, without IPv6 brackets."""
    return SETTINGS[ALLOWED_HOSTS]


def timeout() -> tuple[float, float]:
    """(connect, read) seconds for one POST: WEBHOOK_CONNECT_TIMEOUT (5) and WEBHOOK_TIMEOUT (10). A receiver that
    has not answered by then is retried later, like a 5xx: the POST may have arrived, and the webhook-id lets the
    receiver drop the repeat."""
    return SETTINGS["WEBHOOK_CONNECT_TIMEOUT"], SETTINGS["WEBHOOK_TIMEOUT"]
