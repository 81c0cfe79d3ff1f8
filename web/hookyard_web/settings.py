"""Settings (owners only): API tokens (shown once) and the people who can sign in. Each person's own password and
sessions are on their account page (account_views), which viewers have too."""

from __future__ import annotations

from flask import abort, flash, g, render_template, request
from marshmallow import ValidationError
from sqlalchemy import select

from hookyard.accounts import create_user, remove_user
from hookyard.models import ROLES, ApiToken, User
from hookyard.requestctx import db_session as db
from hookyard.requestctx import owned
from hookyard.requestctx import store as marketplace
from hookyard.requestctx import store_id as marketplace_id
from hookyard.tokens import create_token, revoke_token

from .blueprint import bp, done, owner_only
from .forms import flat_errors, present


def _page(errors=None, values=None, status=200, new_token=None):
    tokens = list(
        db().scalars(select(ApiToken).where(ApiToken.marketplace_id == marketplace_id()).order_by(ApiToken.id.desc()))
    )
    users = list(db().scalars(select(User).where(User.marketplace_id == marketplace_id()).order_by(User.email)))
    return render_template(
        "settings.html", tokens=tokens, users=users, new_token=new_token, errors=errors or {}, values=values or {}
    ), status


@bp.route("/settings")
@owner_only
def settings():
    return _page()


@bp.route("/settings/tokens", methods=["POST"])
@owner_only
def create_api_token():
    name = request.form.get("name", "").strip()[:200]
    role = request.form.get("role", "owner")
    if role not in ROLES:
        return _page({"token_role": "Choose Owner or Viewer."}, status=422)
    token = create_token(db(), marketplace(), name, role)
    db().commit()
    # Shown in this response only (no redirect): the token is never stored anywhere it could be read back.
    flash("API token created. Copy it now: it is not shown again.", "success")
    return _page(new_token=token, status=201)


@bp.route("/settings/tokens/<int:token_id>/revoke", methods=["POST"])
@owner_only
def revoke_api_token(token_id):
    token = owned(ApiToken, token_id)
    revoke_token(token)
    db().commit()
    return done(f"Token {token.prefix}… revoked: requests with it now answer 401.", "web.settings")


@bp.route("/settings/users", methods=["POST"])
@owner_only
def add_user():
    values = present(request.form, ("email", "role"))
    try:
        user = create_user(db(), marketplace(), {**values, "password": request.form.get("password", "")})
    except ValidationError as exc:
        db().rollback()
        return _page(flat_errors(exc.messages), values, 422)
    db().commit()
    return done(f"{user.email} can now sign in as {user.role}.", "web.settings")


@bp.route("/settings/users/<int:user_id>/remove", methods=["POST"])
@owner_only
def remove_person(user_id):
    try:
        user = remove_user(db(), marketplace_id(), user_id, by=g.user)
    except LookupError:
        abort(404, description="There is no such person in this store.")
    except ValidationError as exc:
        db().rollback()
        return _page(flat_errors(exc.messages), status=422)
    db().commit()
    return done(f"{user.email} is removed and signed out everywhere.", "web.settings")
