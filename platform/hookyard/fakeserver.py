"""The HTTP plumbing the plugins' fakes share: a threaded server on 127.0.0.1, a handler that hands every
request to its fake, sending a reply, and serving from a command line until stopped.

A fake subclasses FakeServer and implements ``_handle(handler)``; what it answers stays in the fake.

Standard library only, and nothing else from hookyard: a fake must still run on its own
(``python -m hookyard_circle.fake``, with no app, database or worker). Importing it does run hookyard/__init__.py,
whose pluggy and marshmallow every plugin already depends on.
"""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

__all__ = ["FakeServer", "Handler", "Reply", "gateway_page", "run_until_interrupted", "send"]


@dataclass
class Reply:
    status: int
    body: dict | str  # a str is sent as text/html, like a gateway's error page
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer:
    """Serves a fake on 127.0.0.1 from a background thread, between start() and stop() (or in a ``with`` block).

    ``url`` and ``base_url`` are known once started; ``port=0`` picks a free port. ``connections_opened`` counts
    TCP connections (tests check keep-alive with it). ``_stopping`` is set by stop(): a fake waits on it (for its
    latency, or a response it holds back) so that stopping ends those waits.
    """

    def __init__(self, port: int, base_path: str, thread_name: str):
        self.port = port
        self.url = ""
        self.base_url = ""
        self.log_requests = False
        self.connections_opened = 0
        self._base_path = base_path
        self._thread_name = thread_name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def _handle(self, handler: Handler):
        """Answer one request (with send, or by closing the connection)."""
        raise NotImplementedError

    def _end_waits(self):
        """Called by stop() once ``_stopping`` is set: a fake with waits of its own ends them here."""

    def start(self) -> Self:
        self._stopping.clear()
        self._server = _Server(self, self.port)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + self._base_path
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self._thread_name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._stopping.set()
        self._end_waits()
        self._server.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections would otherwise outlive the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _connection_opened(self, conn: socket.socket):
        with self._connections_lock:
            self.connections_opened += 1
            self._connections.add(conn)

    def _connection_closed(self, conn: socket.socket):
        with self._connections_lock:
            self._connections.discard(conn)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, fake: FakeServer, port: int):
        self.fake = fake
        super().__init__(("127.0.0.1", port), Handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A client that hung up (after a timeout, say) is routine here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self):
        super().setup()
        self.server.fake._connection_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection)

    def do_GET(self):
        self.server.fake._handle(self)

    # Every method reaches the fake, which answers a wrong one as its API would (404, 405...). A HEAD (what a
    # connection's reachability check sends) is answered as the fake answers it, without the body (see send()).
    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def log_message(self, format, *args):
        if self.server.fake.log_requests:
            super().log_message(format, *args)


def send(handler: BaseHTTPRequestHandler, reply: Reply):
    if isinstance(reply.body, str):
        payload, content_type = reply.body.encode(), "text/html; charset=utf-8"
    else:
        payload, content_type = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
    handler.send_response(reply.status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    if handler.command != "HEAD":  # a body after a HEAD's answer would be read as the next answer (keep-alive)
        handler.wfile.write(payload)


def gateway_page(status: int) -> str:
    """The HTML error page a proxy in front of the API serves (502, 503, 504), not the API's JSON."""
    reason = HTTPStatus(status).phrase
    return f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"


def run_until_interrupted(fake: FakeServer):
    """Keep a started fake serving until Ctrl-C or SIGTERM, then stop it: the end of a fake's command line."""
    # A process manager's SIGTERM should shut down as cleanly as Ctrl-C. And Ctrl-C (SIGINT) stops it even when it
    # was started with SIGINT ignored (from a shell's background job, say): Python then raises no KeyboardInterrupt.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
