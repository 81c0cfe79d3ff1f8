"""Bearer-token authentication: every /api/v1 route is scoped to the token's marketplace."""
from __future__ import annotations

from flask import g, request
from flask_smorest import Blueprint, abort

from ..tokens import marketplace_for_token
from .base import session


def require_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, message="Send an API token as 'Authorization: Bearer <token>' "
                           "(create one with `hookyard tokens create --marketplace NAME`).",
              headers={"WWW-Authenticate": "Bearer"})
    marketplace = marketplace_for_token(session(), token.strip())
    if marketplace is None:
        abort(401, message="The API token is invalid or revoked.", headers={"WWW-Authenticate": "Bearer"})
    g.marketplace = marketplace


def api_blueprint(name: str, description: str) -> Blueprint:
    """A resource blueprint under /api/v1 that requires a token on every route."""
    blp = Blueprint(name, "hookyard.api", url_prefix=f"/api/v1/{name}", description=description)
    blp.before_request(require_token)
    return blp
