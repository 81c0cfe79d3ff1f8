"""Bearer-token authentication: every /api/v1 route is scoped to the token's marketplace, limited to the
token's role, and rate limited per token."""

from __future__ import annotations

from flask import current_app, g, request
from flask_smorest import abort

from ..db import reading
from ..security import over_limit
from ..tokens import lookup_token
from .base import ApiBlueprint, rt, session

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def require_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(
            401,
            message="Send an API token as 'Authorization: Bearer <token>' "
            "(create one with `hookyard tokens create --marketplace NAME`).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Read in a transaction that only reads, ended before the handler runs: on SQLite a handler's transaction holds
    # the write lock from its first statement to its commit, and the token lookup must not be part of that time.
    # A handler marked ``reads_first`` goes on reading in it (and ends it itself before it writes).
    request_session = session()
    reading(request_session)
    found = lookup_token(request_session, token.strip())
    if not _handler_reads_first():
        request_session.commit()
    if found is None:
        abort(401, message="The API token is invalid or revoked.", headers={"WWW-Authenticate": "Bearer"})
    api_token, marketplace = found
    # Counted after the lookup: unknown tokens cannot exhaust a real token's budget.
    limit, window = rt().settings.api_rate_limit
    retry_after = over_limit("api", api_token.token_hash, (limit, window))
    if retry_after is not None:
        abort(
            429,
            message=f"Too many requests with this API token (the limit is {limit} per {window:g} seconds, set by the "
            f"server's operator in HOOKYARD_API_RATE_LIMIT); try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )
    # Anything but "owner" reads only: a role this code does not know gets the least it could mean.
    if api_token.role != "owner" and request.method not in READ_METHODS:
        abort(
            403,
            message=f"This API token is read-only (role {api_token.role}): it can only read (GET). "
            "Use an owner token to make changes.",
        )
    g.api_token = api_token
    g.marketplace = marketplace


def reads_first(handler):
    """Marks a resource's method whose first database work only reads, and which commits that read before it writes
    (``hookyard.emit.emit`` does): the token's lookup is left open as the start of that read, one transaction where
    there were two (POST /events is the API's busiest route)."""
    handler.hookyard_reads_first = True
    return handler


def _handler_reads_first() -> bool:
    view_class = getattr(current_app.view_functions.get(request.endpoint), "view_class", None)
    handler = getattr(view_class, request.method.lower(), None)
    return getattr(handler, "hookyard_reads_first", False)


def _document_token_errors(doc, doc_info, *, method, **kwargs):
    """Every operation here can answer 401, 429, and, when it changes something, 403."""
    responses = doc.setdefault("responses", {})
    responses.setdefault(401, "UNAUTHORIZED")
    if method.upper() not in READ_METHODS:
        responses.setdefault(403, "FORBIDDEN")
    responses.setdefault(429, "TOO_MANY_REQUESTS")
    return doc


def api_blueprint(name: str, description: str, path: str | None = None) -> ApiBlueprint:
    """A resource blueprint under /api/v1 (at /api/v1/<name>, or /api/v1/<path>) that requires a token on every
    route."""
    blp = ApiBlueprint(name, "hookyard.api", url_prefix=f"/api/v1/{path or name}", description=description)
    blp.before_request(require_token)
    blp._prepare_doc_cbks.append(_document_token_errors)
    return blp
