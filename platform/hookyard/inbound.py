"""Inbound URLs: the unguessable address each connection of a webhook-receiving app (App.inbound) is given, and
reading what is posted to it.

The id in ``/hooks/<app>/<id>`` is 256 random bits. Whoever knows the URL can post deliveries to the connection's
store, so it is a credential: only its SHA-256 is looked up (as an API token's is), the id itself is sealed with
the connection's secrets so that owners can copy it again, and rotating it makes the old URL answer 404 at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qsl

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import inputs
from .models import Integration
from .runtime import Runtime

KEY_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet: anything else names no connection.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
PATH_PREFIX = "/hooks"
# In access logs and anywhere else a URL is written down: enough of the id to tell two connections apart.
MASK_SHOWN = 4


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def assign_key(rt: Runtime, integration: Integration) -> str:
    """Gives the connection a new inbound id (rotating any earlier one) and returns it; the caller commits."""
    key = secrets.token_urlsafe(KEY_BYTES)
    integration.inbound_key_hash = key_hash(key)
    integration.inbound_key = rt.secret_box.seal({"key": key})
    return key


def key_of(rt: Runtime, integration: Integration) -> str | None:
    if not integration.inbound_key:
        return None
    return rt.secret_box.open(integration.inbound_key).get("key")


def find(session: Session, app: str, key: str) -> Integration | None:
    """The connection whose inbound URL this is, or None (a wrong, rotated or malformed id, or another app's)."""
    if not KEY_PATTERN.match(key):
        return None
    digest = key_hash(key)
    found = session.scalar(select(Integration).where(Integration.inbound_key_hash == digest))
    # The hash lookup is by index; the compare is constant-time all the same, and checks the app in the path.
    if found is None or not hmac.compare_digest(found.inbound_key_hash, digest) or found.app != app:
        return None
    return found


def path(app: str, key: str) -> str:
    return f"{PATH_PREFIX}/{app}/{key}"


def url(rt: Runtime, integration: Integration, request_base: str) -> str | None:
    """The absolute inbound URL: HOOKYARD_PUBLIC_URL when set (the address SamCart can reach), else the base of
    the request asking (right when the browser and SamCart reach the server the same way)."""
    key = key_of(rt, integration)
    if key is None:
        return None
    base = rt.settings.public_url or request_base.rstrip("/")
    return base + path(integration.app, key)


def masked(text: str) -> str:
    """``/hooks/<app>/<id>`` anywhere in ``text`` with all but the id's first characters hidden."""
    return MASKED_PATH.sub(lambda m: f"{m.group(1)}{m.group(2)[:MASK_SHOWN]}…", text)


MASKED_PATH = re.compile(r"(/hooks/[^/\s?#]+/)([A-Za-z0-9_-]{8,})")


# --- reading a posted body ---------------------------------------------------------------------------------


class Unreadable(ValueError):
    """The body is neither a JSON object nor a form (400), or it is one but holds values that cannot be stored, such
    as NUL or a 5,000-digit number (422: hookyard.inputs); the message says what it is instead."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded",)


def parse(raw: bytes, mimetype: str) -> dict:
    """A JSON object, or form fields with ``a[b]=1`` nested as {"a": {"b": "1"}}. A body sent without a usable
    Content-Type (as text/plain, or as a form that starts with ``{``) is read as JSON when it is JSON. Raises
    Unreadable."""
    is_json = mimetype in JSON_TYPES or mimetype.endswith("+json")
    # A JSON object sent as a form (a mislabelled sender) is read as the JSON it is. An empty form is a form with no
    # fields (kept, and shown as unmapped); empty JSON is not JSON.
    if mimetype in FORM_TYPES and not raw.lstrip().startswith(b"{"):
        return _form(raw)
    if not raw.strip():
        raise Unreadable("The body is empty.")
    try:
        value = inputs.loads(raw)
    except ValidationError as exc:  # JSON, but beyond what can be stored (hookyard.inputs)
        raise Unreadable(f"The body holds values Hookyard cannot store: {_first_problem(exc.messages)}", 422) from None
    except inputs.NotJSON as exc:
        if is_json:
            raise Unreadable(f"The body is not valid JSON: {exc}.") from None
        raise Unreadable(f"The body is neither JSON nor a form (Content-Type: {mimetype or 'none'}).") from None
    if not isinstance(value, dict):
        raise Unreadable(f"The body is JSON but not an object (it is {_kind(value)}).")
    problems = inputs.problems(value)
    if problems:
        raise Unreadable(f"The body holds values Hookyard cannot store: {_first_problem(problems)}", 422)
    return value


def _first_problem(messages, path: str = "") -> str:
    """``at customer.email: Must not contain …`` for the first problem found (a nested dict of messages)."""
    while isinstance(messages, dict) and messages:
        key, messages = next(iter(messages.items()))
        path = f"{path}.{key}" if path else str(key)
    text = messages[0] if isinstance(messages, list) and messages else str(messages)
    return f"at {path}: {text}" if path else str(text)


def _kind(value) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _form(raw: bytes) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("The form is not UTF-8 text.") from None
    body: dict = {}
    pairs = parse_qsl(text, keep_blank_values=True)
    for name, value in pairs:
        problem = inputs.text_problem(name) or inputs.text_problem(value)
        if problem:
            raise Unreadable(f"The form field {name!r} is not valid: {problem}", 422)
        _put(body, _path(name), value)
    return body


def _path(name: str) -> list[str]:
    """``customer[email]`` → ["customer", "email"]; ``items[]`` → ["items", ""] (a list)."""
    head, _, rest = name.partition("[")
    parts = [head]
    while rest:
        part, _, rest = rest.partition("]")
        parts.append(part)
        rest = rest[1:] if rest.startswith("[") else ""
    return parts[: inputs.MAX_DEPTH]


def _put(body: dict, parts: list[str], value: str) -> None:
    node = body
    for part, following in zip(parts, parts[1:]):
        if following == "":  # a[]=1&a[]=2: the field is a list of values
            existing = node.get(part)
            node[part] = (existing if isinstance(existing, list) else []) + [value]
            return
        child = node.get(part)
        if not isinstance(child, dict):  # a later a[b] wins over an earlier a=1
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def mask(body, secret_fields: tuple[str, ...], mask_text: str = "********"):
    """A copy of the body with each secret field's value (at any depth) replaced by the mask."""
    if not secret_fields:
        return body
    names = {name.lower() for name in secret_fields}

    def walk(node):
        if isinstance(node, dict):
            return {
                k: (mask_text if isinstance(k, str) and k.lower() in names and v not in (None, "") else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(body)
