"""Calls to Circle reuse their connections from one client (one run) to the next, per thread, each with its own key."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hookyard_circle.client import Circle


@pytest.fixture
def server(monkeypatch):
    seen = []  # (client port, Authorization) of every request

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Circle's servers answer

        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append((self.client_address[1], self.headers.get("Authorization")))
            body = b'{"records": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
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
