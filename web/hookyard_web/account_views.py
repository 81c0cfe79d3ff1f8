"""First start (the owner account), sign-in and sign-out, and each person's own account: their password and the
browsers they are signed in on (every person has one, viewers too)."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from ua_parser import parse as parse_user_agent

from hookyard import user_sessions
from hookyard.accounts import authenticate, change_password, create_user, has_users
from hookyard.requestctx import db_session as db
from hookyard.requestctx import runtime as rt
from hookyard.security import over_limit
from hookyard.tokens import DEFAULT_MARKETPLACE, get_or_create_marketplace, marketplace_names

from .blueprint import bp, current_session, done, end_session, sign_in_as
from .forms import flat_errors, present


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Shown once: until the first account exists, anyone who reaches the server could claim it, so
    operators who expose the server before signing up should create it with `hookyard users create`."""
    if has_users(db()):
        return redirect(url_for("web.sign_in"))
    # A store made before anyone signed up (the README's `hookyard tokens create`, its API token and first events)
    # is the one the owner gets: the name given here names it, so an install starts with one store, not two.
    names = marketplace_names(db(), limit=2)
    existing = names[0] if len(names) == 1 else None
    errors, values = {}, {"marketplace": existing or DEFAULT_MARKETPLACE}
    if request.method == "POST":
        values = present(request.form, ("marketplace", "email"))
        name = values.get("marketplace", "")
        if not name or len(name) > 200:
            errors["marketplace"] = "Give your store a name (up to 200 characters)."
        if request.form.get("password") != request.form.get("password_confirm"):
            errors["password_confirm"] = "The two passwords are not the same."
        if not errors:
            store = get_or_create_marketplace(db(), existing or name)
            store.name = name
            try:
                user = create_user(
                    db(),
                    store,
                    {"email": values.get("email", ""), "password": request.form.get("password", ""), "role": "owner"},
                )
            except ValidationError as exc:
                db().rollback()
                errors = flat_errors(exc.messages)
            else:
                db().commit()
                sign_in_as(user)
                flash("Welcome to Hookyard. Start by connecting an app.", "success")
                return redirect(url_for("web.integrations"))
    return render_template("setup.html", errors=errors, values=values, existing=existing), 422 if errors else 200


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if not has_users(db()):
        return redirect(url_for("web.setup"))
    error, email = None, ""
    if request.method == "POST":
        email = request.form.get("email", "").strip()
        # Every attempt counts, the right password too: counted before the check, so parallel guesses
        # cannot slip in while a failure is being recorded, and a refused attempt costs no scrypt hash.
        # The per-address-and-email limit is far above what a person signing in needs.
        retry_after = over_limit("sign-in", f"{request.remote_addr}\n{email.lower()}", rt().settings.signin_rate_limit)
        if retry_after is not None:
            minutes = math.ceil(retry_after / 60)
            error = f"Too many sign-in attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}."
            return (render_template("sign_in.html", error=error, email=email), 429, {"Retry-After": str(retry_after)})
        user = authenticate(db(), email, request.form.get("password", ""))
        if user is not None:
            db().commit()
            sign_in_as(user)
            return redirect(_local(request.args.get("next")) or url_for("web.dashboard"))
        error = "That email and password do not match an account."
    return render_template("sign_in.html", error=error, email=email), 401 if error else 200


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    end_session()  # the server-side session ends, so a copy of the cookie signs nobody in
    flash("You are signed out.", "success")
    return redirect(url_for("web.sign_in"))


def _local(target: str | None) -> str | None:
    """Only paths on this server: a sign-in link must not be able to send people elsewhere."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/account")
def account():
    return _account_page()


@bp.route("/account/password", methods=["POST"])
def change_own_password():
    user = g.user
    # Limited like sign-in: a borrowed session must not become a way to guess the current password.
    retry_after = over_limit("password-change", str(user.id), rt().settings.signin_rate_limit)
    if retry_after is not None:
        minutes = math.ceil(retry_after / 60)
        return _account_page(
            {"current_password": f"Too many attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}."},
            429,
            {"Retry-After": str(retry_after)},
        )
    if request.form.get("password") != request.form.get("password_confirm"):
        return _account_page({"password_confirm": "The two passwords are not the same."}, 422)
    try:
        ended = change_password(
            db(),
            user,
            request.form.get("current_password", ""),
            request.form.get("password", ""),
            keep=current_session(),
        )
    except ValidationError as exc:
        db().rollback()
        return _account_page(flat_errors(exc.messages), 422)
    db().commit()
    others = f" {ended} other session{'s were' if ended != 1 else ' was'} signed out." if ended else ""
    return done(f"Your password is changed.{others}", "web.account")


@bp.route("/account/sessions/<int:session_id>/sign-out", methods=["POST"])
def sign_out_session(session_id):
    try:
        ended = user_sessions.revoke_own(db(), g.user, session_id)
    except LookupError:
        abort(404, description="There is no such session of yours.")
    db().commit()
    if current_session() is not None and ended.id == current_session().id:
        end_session()
        return done("You are signed out.", "web.sign_in")
    return done("That session is signed out.", "web.account")


@bp.route("/account/sessions/sign-out-others", methods=["POST"])
def sign_out_others():
    ended = user_sessions.revoke_all(db(), g.user, keep=current_session())
    db().commit()
    return done(f"Signed out everywhere else ({ended} session{'s' if ended != 1 else ''}).", "web.account")


def _account_page(errors=None, status=200, headers=None):
    current = current_session()
    rows = [
        {
            "id": s.id,
            "device": device_summary(s.user_agent),
            "address": s.client_address or "—",
            "created_at": s.created_at,
            "last_seen_at": s.last_seen_at,
            "current": current is not None and s.id == current.id,
        }
        for s in user_sessions.active(db(), g.user)
    ]
    return render_template("account.html", sessions=rows, errors=errors or {}), status, headers or {}


def device_summary(user_agent: str) -> str:
    """A User-Agent header as "Firefox 128 on Ubuntu", by ua-parser (the maintained uap-core rules): the header's
    formats are too many, and change too often, for patterns of our own."""
    if not user_agent:
        return "Unknown browser"
    parsed = parse_user_agent(user_agent)
    browser = parsed.user_agent and " ".join(filter(None, [parsed.user_agent.family, parsed.user_agent.major]))
    system = parsed.os and parsed.os.family
    if not browser:
        return user_agent[:60]
    return f"{browser} on {system}" if system and system != "Other" else browser
