"""The processes' log lines: one JSON object a line on stdout (the default, what a platform's log collector reads), or
the human text format (``HOOKYARD_LOG_FORMAT=text``, what ``hookyard run`` sets for a person at a terminal).

Every web, worker and gunicorn process calls ``configure``. A JSON line holds ``time`` (ISO 8601, UTC), ``level``,
``logger`` and ``message``, then whichever ids are known where it was logged: ``request_id`` (a web request),
``event_id`` and ``run_id`` (a run being processed), ``delivery_id`` (an inbound delivery), ``task_id`` (a task), and
anything passed as ``extra=``. A traceback is the ``exc_info`` string field, so it stays inside its one line.

The ids live in context variables, set for a block by ``ids(...)``: each thread (a gunicorn request, a worker's job)
sees its own, and ``ContextFilter`` copies them onto every record a configured handler emits, whatever logger (ours,
RQ's, a plugin's, a library's) logged it. The encoding is python-json-logger's, not our own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

FORMAT_ENV = "HOOKYARD_LOG_FORMAT"
FORMATS = ("json", "text")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
IDS = ("request_id", "event_id", "run_id", "delivery_id", "task_id")

_context: dict[str, ContextVar] = {name: ContextVar(f"hookyard_{name}", default=None) for name in IDS}


def chosen(env=None) -> str:
    """HOOKYARD_LOG_FORMAT: ``json`` (unset or empty) or ``text``; anything else stops the process with one line."""
    raw = (os.environ if env is None else env).get(FORMAT_ENV)
    value = (raw or "json").strip().lower()
    if value not in FORMATS:
        raise SystemExit(f"{FORMAT_ENV} must be one of {', '.join(FORMATS)}, got {raw!r}")
    return value


# --- the context ---------------------------------------------------------------------------------------------------


@contextmanager
def ids(**values):
    """The given ids on every line logged in the block. Every id, those bound inside by ``bind`` too, is back to what
    it was when the block ends, so nothing leaks into the next job a non-forking worker runs in the same thread."""
    _known(values)
    tokens = [(var, var.set(values.get(name, var.get()))) for name, var in _context.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(**values) -> None:
    """Adds ids learnt inside an ``ids()`` block (a run's event id, once the run is read), until that block ends."""
    _known(values)
    for name, value in values.items():
        _context[name].set(value)


def current(name: str):
    return _context[name].get()


def _known(values: dict) -> None:
    unknown = set(values) - set(IDS)
    if unknown:
        raise TypeError(f"not a log id: {', '.join(sorted(unknown))} (known: {', '.join(IDS)})")


class ContextFilter(logging.Filter):
    """Copies the context's ids onto each record; never overwrites one the caller passed as ``extra=``."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _context.items():
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


# --- the formatter -------------------------------------------------------------------------------------------------


def _dumps(data, **kwargs) -> str:
    # Not ASCII-escaped, so a masked inbound path's "…" reads as itself. A lone surrogate (from undecodable bytes)
    # cannot be written as UTF-8: it becomes JSON's own \udcxx escape, rather than a logging error on the stream.
    return json.dumps(data, **kwargs).encode("utf-8", "backslashreplace").decode("utf-8")


class JsonFormatter(_LibraryJsonFormatter):
    def __init__(self):
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_serializer=_dumps,
            json_ensure_ascii=False,
        )

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging.Formatter's name)
        return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


# --- a process's logging -------------------------------------------------------------------------------------------


def configure(stream=None, fmt: str | None = None, level: int = logging.INFO) -> logging.Handler:
    """The root logger writes ``fmt`` (default: HOOKYARD_LOG_FORMAT) lines to ``stream`` (default: stdout), with the
    context's ids. Called again, it replaces the handler it installed before rather than adding a second."""
    fmt = fmt or chosen()
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter())
    handler._hookyard = True
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_hookyard", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings would otherwise print as bare text lines on stderr.
    logging.captureWarnings(True)
    if fmt == "json":
        # So would a traceback nothing caught: logged instead, as one line with its exc_info.
        sys.excepthook = _log_uncaught
    return handler


def _log_uncaught(exc_type, exc, tb):
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("hookyard").critical("uncaught %s", exc_type.__name__, exc_info=(exc_type, exc, tb))
