"""Fixtures for the Webhook app's tests.

Two autouse guards make "nothing leaves the machine" a property of every test here, not a hope: names resolve
only through a stub (a name the stub does not know is a resolution error, never a real DNS query), and any
connect attempt outside 127.0.0.0/8 is refused and fails the test, whatever code made it."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from hookyard import RunContext
from hookyard_webhook.actions import SendPostParams
from hookyard_webhook.signing import new_secret

from .receiver import Receiver

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@pytest.fixture(autouse=True)
def no_traffic_off_the_machine(monkeypatch):
    attempts = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(sock, address):
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # a Unix socket
        try:
            ip = ipaddress.ip_address(address[0])
        except ValueError:  # a host name handed to connect() would be resolved by the C library: refused too
            ip = None
        if ip is None or ip.version != 4 or ip not in LOOPBACK:
            attempts.append(address)
            raise ConnectionRefusedError(f"test guard: no connection may go to {address!r}")

    def connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    assert attempts == [], f"connections were attempted outside 127.0.0.0/8: {attempts}"


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    """name -> address: the only names that resolve. IP literals and localhost resolve as usual (no query)."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name in names:
            address = names[name]
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 0)) if fam == socket.AF_INET else (address, int(port or 0), 0, 0)
            return [(fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]
        try:
            ipaddress.ip_address(name)
        except (ValueError, TypeError):
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, f"test stub: {name!r} is not a known name") from None
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def receiver():
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def allow_loopback(monkeypatch):
    """The receiver runs on 127.0.0.1, which the guard refuses: the operator allows it, as a deployment would
    allow a receiver on its own network."""
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")


def run_context(
    url: str,
    secret: str | None = None,
    payload: dict | None = None,
    fields=(),
    run_id: int = 41,
    trigger: str = "samcart.product_purchased",
) -> RunContext:
    """What the worker hands the action for one run (hookyard.jobs builds the same)."""
    payload = (
        payload
        if payload is not None
        else {
            "customer": {"email": "ada@example.com", "first_name": "Ada"},
            "product": {"id": "1001", "name": "Community"},
            "occurred_at": "2026-12-01T10:00:00+00:00",
        }
    )
    return RunContext(
        run_id=run_id,
        attempt=1,
        trigger=trigger,
        email=payload.get("customer", {}).get("email"),
        payload=payload,
        params=SendPostParams().load({"fields": list(fields)}),
        config={"url": url, "secret": secret or new_secret()},
        info={},
        options={},
    )
