"""What every value Hookyard accepts must be, whatever schema it is loaded with: the limits that keep a client's
mistake a 4xx, rather than a failure deep in the database driver, the JSON encoder or the interpreter (a 500).

- At most MAX_DEPTH levels of objects and arrays. Walking, encoding or storing a value recurses once per level,
  and 900 levels reach Python's recursion limit. The walk here uses no recursion of its own.
- Text that both databases can store: no NUL (PostgreSQL text cannot hold U+0000) and no lone surrogate
  (``"\\ud800"`` is valid JSON, but not Unicode text: it has no UTF-8 encoding, so no driver can send it).
- Whole numbers within 64 bits, and no NaN or Infinity (not JSON, and PostgreSQL's JSON type refuses them).
  A longer integer is refused before it is converted: Python refuses to convert more than 4,300 digits.
- Instants that exist in UTC: ``9999-12-31T23:59:59-14:00`` is after the last one Python can represent.

``problems`` reports each refused value at its path, in marshmallow's shape, so the API's 422 names the field.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone

from marshmallow import ValidationError

MAX_DEPTH = 32  # a trigger payload is 3 levels deep, rule parameters 2
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
_MAX_INT_DIGITS = len(str(MAX_INT))

DEPTH_MESSAGE = f"Nested too deeply: at most {MAX_DEPTH} levels of objects and arrays."
NUL_MESSAGE = "Must not contain the NUL character (U+0000)."
SURROGATE_MESSAGE = "Must be valid Unicode text: a lone surrogate (U+D800 to U+DFFF) is not a character."
INT_MESSAGE = f"Whole numbers must be between {MIN_INT} and {MAX_INT}."
NUMBER_MESSAGE = "Must be a finite number: NaN and Infinity are not JSON numbers."
INSTANT_MESSAGE = "Out of range: the instant must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z."


class NotJSON(ValueError):
    """The text is not a JSON document at all (syntax, or not UTF-8)."""


class _Refused:
    """A JSON number refused while parsing: left in its place so that the error can name its field."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def _parse_int(text: str):
    # Counted before converting: int() itself raises ValueError past 4,300 digits.
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _Refused(INT_MESSAGE)
    return int(text)  # the walk checks the range


def _parse_float(text: str):
    value = float(text)  # 1e400 is inf
    return value if math.isfinite(value) else _Refused(NUMBER_MESSAGE)


def _parse_constant(_name: str):  # NaN, Infinity, -Infinity: Python's json accepts them by default
    return _Refused(NUMBER_MESSAGE)


def loads(raw: bytes | str):
    """Parses a JSON document and checks every value in it.

    Raises NotJSON when it is not JSON, and ValidationError with the messages at each refused value's path."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    except UnicodeDecodeError as exc:
        raise NotJSON(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except RecursionError:
        # Deeper than the parser can go (some hundreds of levels): no path to name, so the document as a whole.
        raise ValidationError([DEPTH_MESSAGE]) from None
    except json.JSONDecodeError as exc:
        raise NotJSON(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    check(value)
    return value


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return NUL_MESSAGE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_MESSAGE
    return None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str | None) -> str | None:
    """Text from a remote (an action's reason), made storable on every database: NUL and lone surrogates become
    U+FFFD, where they would fail the write on PostgreSQL and leave the run unrecorded."""
    if text is None or text_problem(text) is None:
        return text
    return _UNSTORABLE.sub("\ufffd", text)


def instant_problem(value: datetime) -> str | None:
    if value.tzinfo is None:
        return None  # naive instants are taken as UTC as they are
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        return INSTANT_MESSAGE
    return None


def _value_problem(value) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, _Refused):
        return value.message
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if MIN_INT <= value <= MAX_INT else INT_MESSAGE
    if isinstance(value, float):
        return None if math.isfinite(value) else NUMBER_MESSAGE
    if isinstance(value, datetime):
        return instant_problem(value)
    return None


def problems(value) -> dict | list | None:
    """The messages for every refused value inside ``value`` (dicts, lists and scalars), keyed by path as
    marshmallow keys its errors (field names, list indexes); a list for ``value`` itself; None when all is well."""
    if not isinstance(value, (dict, list, tuple)):
        message = _value_problem(value)
        return [message] if message else None
    found: dict = {}
    # (path, value, depth): depth counts the objects and arrays around the value.
    stack = [((), value, 0)]
    while stack:
        path, node, depth = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                # Named by the field that holds it rather than by a run of list indexes ([[[[…]]]]).
                while path and isinstance(path[-1], int):
                    path = path[:-1]
                if not path:  # a list of lists of …: nothing named holds it
                    return [DEPTH_MESSAGE]
                _put(found, path, DEPTH_MESSAGE)
                continue
            if isinstance(node, dict):
                for key, item in node.items():
                    bad_key = text_problem(key) if isinstance(key, str) else None
                    if bad_key:
                        _put(found, (*path, key), f"The field name is not valid. {bad_key}")
                    stack.append(((*path, key), item, depth + 1))
            else:
                stack.extend(((*path, index), item, depth + 1) for index, item in enumerate(node))
            continue
        message = _value_problem(node)
        if message:
            _put(found, path, message)
    return found or None


def check(value) -> None:
    """Raises ValidationError with ``problems(value)`` when there are any."""
    errors = problems(value)
    if errors:
        raise ValidationError(errors)


def _put(found: dict, path: tuple, message: str) -> None:
    # List indexes as text: one level may hold both an index and "_schema", and JSON keys are text anyway.
    path = tuple(str(key) if isinstance(key, int) else key for key in path)
    node = found
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            # A field with messages of its own and nested ones: marshmallow keeps its own under "_schema".
            child = node[key] = {"_schema": child} if isinstance(child, list) else {}
        node = child
    existing = node.get(path[-1])
    messages = existing.setdefault("_schema", []) if isinstance(existing, dict) else node.setdefault(path[-1], [])
    if message not in messages:
        messages.append(message)
