"""Calls to Circle reuse their connections from one client (one run) to the next, per thread, each with its own key."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hookyard_circle.client import Circle


def _empty_list_server(record):
    """A keep-alive HTTP/1.1 server on loopback answering every GET with an empty list, after ``record(handler)``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Circle's servers answer

        def log_message(self, *args):
            pass

        def do_GET(self):
            record(self)
            body = b'{"records": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def server(monkeypatch):
    seen = []  # (client port, Authorization) of every request
    httpd = _empty_list_server(lambda h: seen.append((h.client_address[1], h.headers.get("Authorization"))))
    monkeypatch.setenv("CIRCLE_API_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/api/admin/v2")
    yield seen
    httpd.shutdown()
    httpd.server_close()


def test_clients_in_one_thread_share_a_connection_and_send_their_own_keys(server):
    for key in ("key-one", "key-two", "key-one"):
        assert Circle(key).request("GET", "/spaces").status == 200
    assert len({port for port, _ in server}) == 1  # one TCP connection for three clients' calls
    assert [auth for _, auth in server] == ["Bearer key-one", "Bearer key-two", "Bearer key-one"]


def test_each_thread_has_connections_of_its_own(server):
    Circle("main-key").request("GET", "/spaces")
    other = threading.Thread(target=lambda: Circle("thread-key").request("GET", "/spaces"))
    other.start()
    other.join()
    assert len({port for port, _ in server}) == 2


@pytest.fixture
def proxy(monkeypatch):
    """A forward proxy on loopback: it records the absolute URL of each request it is sent and answers it itself."""
    from hookyard_circle import client

    asked = []
    httpd = _empty_list_server(lambda h: asked.append((h.path, h.headers.get("Authorization"))))
    monkeypatch.setenv("CIRCLE_API_BASE_URL", "http://circle.example.test/api/admin/v2")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{httpd.server_address[1]}")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    client._environment.cache_clear()  # read once per process: this test changes the environment under it
    yield asked
    client._environment.cache_clear()
    httpd.shutdown()
    httpd.server_close()


def test_the_environments_proxy_is_used_though_it_is_read_once_per_process(proxy, monkeypatch):
    import requests

    from hookyard_circle import client

    assert Circle("key-one").request("GET", "/spaces").status == 200
    assert Circle("key-two").request("GET", "/spaces").status == 200
    assert proxy == [
        ("http://circle.example.test/api/admin/v2/spaces", "Bearer key-one"),
        ("http://circle.example.test/api/admin/v2/spaces", "Bearer key-two"),
    ]
    monkeypatch.setenv("NO_PROXY", "circle.example.test")
    client._environment.cache_clear()
    with pytest.raises(requests.ConnectionError):  # straight to a host that does not exist, not through the proxy
        Circle("key-one").request("GET", "/spaces", timeouts=(2, 2))
    assert len(proxy) == 2
