"""The SSRF guard: outbound POSTs never reach loopback, private, link-local or reserved addresses (the cloud's
metadata service at 169.254.169.254, the operator's Redis, an admin page on 10.x) unless the operator allows
the host (WEBHOOK_ALLOWED_HOSTS).

The checking is requests-hardened's (Saleor's, maintained for its own webhooks): its adapter resolves the host
once, refuses the address if it is private, loopback, link-local, multicast or in its list of reserved ranges,
and connects to that very address, so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot slip through. Hookyard only chooses, per request, which adapter sends it: the guarded one, or
a plain one for an allowed host. Redirects are never followed by requests itself; the action follows 307/308
hop by hop (see actions.py), and each hop goes through the same choice, so a redirect from an allowed host to
10.0.0.1 is refused like a URL on 10.0.0.1."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests_hardened.client import HTTPSession
from requests_hardened.config import Config
from requests_hardened.ip_filter import InvalidIPAddress, filter_host

from . import settings

__all__ = ["InvalidIPAddress", "Refused", "check_url", "host_of", "session"]


class Refused(Exception):
    """The URL's host is, or resolves to, an address the guard refuses."""

    def __init__(self, host: str, address: str | None = None):
        self.host, self.address = host, address
        at = f" ({address})" if address and address != host else ""
        super().__init__(
            f"{host}{at} is a loopback, private, link-local or reserved address: Hookyard does not post "
            f"there unless the server's operator lists the host in {settings.ALLOWED_HOSTS}"
        )


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class _Session(HTTPSession):
    """requests-hardened's session (IP filter on, redirects off), with a plain adapter for the allowed hosts."""

    def __init__(self, allowed: frozenset[str], timeout: tuple[float, float]):
        super().__init__(
            Config(
                ip_filter_enable=True, ip_filter_allow_loopback_ips=False, never_redirect=True, default_timeout=timeout
            )
        )
        self._allowed = allowed
        self._plain = HTTPAdapter()
        # No HTTP(S)_PROXY from the environment (the proxy, not the receiver, would be what the guard checks) and
        # no ~/.netrc credentials sent to whatever URL a merchant typed.
        self.trust_env = False

    def get_adapter(self, url):
        if host_of(url) in self._allowed:
            return self._plain
        return super().get_adapter(url)

    def close(self):
        super().close()
        self._plain.close()


def session() -> requests.Session:
    """A guarded session for one action run (the allow-list as it is now)."""
    return _Session(settings.allowed_hosts(), settings.timeout())


def check_url(url: str) -> str:
    """Resolves the URL's host the way a POST would and returns the address it would connect to ("allowed" for an
    operator-allowed host); raises Refused for a refused address, requests.ConnectionError when it does not
    resolve. For the connection's verify: a URL that can never be posted to is refused when it is entered."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in settings.allowed_hosts():
        return "allowed"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        return filter_host(host, port, allow_loopback=False)
    except InvalidIPAddress as exc:
        raise Refused(host, str(exc)) from exc
