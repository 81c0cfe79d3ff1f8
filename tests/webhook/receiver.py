"""A real HTTP receiver on 127.0.0.1 for the Webhook app's tests: it keeps each request's exact bytes (signatures
are over them) and answers as scripted, per path."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    at: float  # time.monotonic() when it arrived


class Receiver:
    def __init__(self):
        self.received: list[Received] = []
        # path -> [(status, body, headers)], consumed in order; then 200 "ok".
        self.script: dict[str, list[tuple[int, str, dict]]] = {}
        self.hold_paths: set[str] = set()  # requests to these paths wait until release() (a receiver too slow)
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received("POST", self.path, dict(self.headers), body, time.monotonic()))
                    queue = receiver.script.get(self.path, [])
                    status, text, headers = queue.pop(0) if queue else (200, "ok", {})
                    hold = self.path in receiver.hold_paths
                if hold:
                    receiver._released.wait(30)  # a slow receiver, until the test has seen the client give up
                data = text.encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, *answers: tuple) -> None:
        """Script the next answers for ``path``: (status, body) or (status, body, headers)."""
        with self._lock:
            self.script[path] = [a if len(a) == 3 else (*a, {}) for a in answers]

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]
