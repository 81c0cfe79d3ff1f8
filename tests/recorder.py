"""A real HTTP server that records what the test app's actions send it and answers as told."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "recorder-secret-token-123"


class Recorder:
    def __init__(self):
        self.calls: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        self.hooks: list[tuple[dict, dict]] = []  # (headers, body) of plain webhook posts to /hook
        self.holds: dict[str, float] = {}  # email -> seconds to hold its next call before answering
        self.in_flight = self.most_in_flight = 0  # calls received and not yet answered: now, and at most at once
        # email -> list of (status, body, headers) answers, consumed in order; then 200.
        self.script: dict[str, list[tuple[int, str, dict]]] = {}
        self.options = {"channels": [{"id": "general", "name": "General"}, {"id": "vip", "name": "VIP"}]}
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=None):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self):
                return self.headers.get("Authorization") == f"Bearer {TOKEN}"

            def do_HEAD(self):
                self._send(200, "")

            def do_GET(self):
                with recorder._lock:
                    recorder.requests.append(("GET", self.path))
                if not self._authorised():
                    return self._send(401, {"message": "bad token"})
                if self.path == "/verify":
                    return self._send(200, {"account": "test"})
                if self.path == "/options":
                    return self._send(200, recorder.options)
                self._send(404, {"message": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with recorder._lock:
                    recorder.requests.append(("POST", self.path))
                    if self.path == "/hook":
                        recorder.hooks.append((dict(self.headers), body))
                        status, text, headers = 200, "ok", {}
                    elif self.path != "/record" or not self._authorised():
                        status, text, headers = 401, "bad token", {}
                    else:
                        queue = recorder.script.get(body.get("email"), [])
                        status, text, headers = queue.pop(0) if queue else (200, "recorded", {})
                        recorder.calls.append({**body, "answered": status})
                    hold = recorder.holds.pop(body.get("email"), 0)
                    recorder.in_flight += 1
                    recorder.most_in_flight = max(recorder.most_in_flight, recorder.in_flight)
                try:
                    if hold:
                        time.sleep(hold)  # an action in flight, for tests that kill the worker running it
                    self._send(status, text, headers)
                finally:
                    with recorder._lock:
                        recorder.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, email: str, *answers: tuple):
        """Script the next answers for ``email``: (status, body) or (status, body, headers)."""
        with self._lock:
            self.script[email] = [a if len(a) == 3 else (*a, {}) for a in answers]

    def calls_for(self, email: str) -> list[dict]:
        with self._lock:
            return [c for c in self.calls if c["email"] == email]
