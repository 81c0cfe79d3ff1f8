"""gunicorn's logging (gunicorn_conf's ``logger_class``): its error and access logs in HOOKYARD_LOG_FORMAT, inbound
URLs masked in the access log.

An inbound URL's id is a credential (hookyard.inbound): anyone who reads the access log could otherwise post
deliveries into the store. The line keeps the id's first characters, enough to tell connections apart.

As JSON (the default) every line gunicorn writes is one JSON object on stdout (hookyard.logformat): its own messages
(workers booting, a worker's error) and one line per request, with ``method``, ``path`` (masked; the query string is
left out, it may hold what a person searched for), ``status``, ``duration_ms`` and the ``request_id`` the app sent
back (hookyard.request_ids). The root logger, which the app logs through, is configured here too, so that the
arbiter and its workers write the same lines. As text, gunicorn's own formats, the request line masked.
"""

from __future__ import annotations

import logging
import sys

from gunicorn.glogging import Logger

from . import logformat
from .inbound import masked


class MaskingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        self.log_format = logformat.chosen()
        if not logging.getLogger().handlers:
            logformat.configure(sys.stdout, self.log_format)
        if self.log_format != "json":
            return
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not getattr(handler, "_gunicorn", False):
                    continue
                handler.setFormatter(logformat.JsonFormatter())
                handler.addFilter(logformat.ContextFilter())
                if log is self.error_log and cfg.errorlog == "-":
                    handler.setStream(sys.stdout)  # with the other JSON lines, not on stderr

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "f"):  # request line, path, referer
            if isinstance(atoms.get(name), str):
                atoms[name] = masked(atoms[name])
        return atoms

    def access(self, resp, req, environ, request_time):
        if getattr(self, "log_format", "json") != "json":
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        # Only what the line carries, read from the request and response directly: gunicorn's atoms (the time
        # formatted, every header copied, the user decoded) cost 6% of a POST /events' CPU for fields never written.
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        path = environ.get("PATH_INFO")
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": masked(path) if isinstance(path, str) else path,
            "status": int(status) if str(status).isdigit() else status,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
        }
        headers = resp.headers.items() if hasattr(resp.headers, "items") else resp.headers
        request_id = next((value for name, value in headers if name.lower() == "x-request-id"), None)
        if request_id:
            fields["request_id"] = request_id
        try:
            self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)
        except Exception:  # noqa: BLE001 (gunicorn's own access() does the same: a log line never fails a request)
            self.exception("could not write the access log line")
        return None
