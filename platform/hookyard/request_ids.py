"""Each web request's id (``X-Request-ID``): on every log line logged while the request is served
(hookyard.logformat), on gunicorn's access line for it, and sent back as a response header, error answers' too.

A caller's (or a proxy's) own id is kept when it is a plain token, so one id follows a request from the edge through
our logs; anything else (too long, spaces, quotes, control characters: it is written into logs) is replaced by one
of ours.
"""

from __future__ import annotations

import re
import uuid
from contextlib import ExitStack

from flask import Flask, g, request

from . import logformat

HEADER = "X-Request-ID"
SANE = re.compile(r"[A-Za-z0-9._-]{1,200}")


def init_app(app: Flask) -> None:
    """Registered before every other before_request hook, so that even an early refusal carries the id."""
    app.before_request(_bind)
    app.after_request(_send_back)
    app.teardown_request(_unbind)


def request_id(given: str | None) -> str:
    """The caller's id when it is sane, else a new one."""
    return given if given and SANE.fullmatch(given) else uuid.uuid4().hex


def _bind():
    g.request_id = request_id(request.headers.get(HEADER))
    g.request_log_ids = stack = ExitStack()
    stack.enter_context(logformat.ids(request_id=g.request_id))


def _send_back(response):
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
    return response


def _unbind(_exc):
    stack = g.pop("request_log_ids", None)
    if stack is not None:
        stack.close()  # the thread serves other requests next: nothing of this one's may stay bound
