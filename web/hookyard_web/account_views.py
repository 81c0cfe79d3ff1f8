"""First start (the owner account), sign-in and sign-out."""
from __future__ import annotations

import math
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from marshmallow import ValidationError

from hookyard.accounts import authenticate, create_user, has_users
from hookyard.api.base import rt
from hookyard.api.base import session as db
from hookyard.security import over_limit
from hookyard.tokens import get_or_create_marketplace

from .blueprint import bp, sign_in_as
from .forms import flat_errors, present


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Shown once: until the first account exists, anyone who reaches the server could claim it, so
    operators who expose the server before signing up should create it with `hookyard users create`."""
    if has_users(db()):
        return redirect(url_for("web.sign_in"))
    errors, values = {}, {"marketplace": "My store"}
    if request.method == "POST":
        values = present(request.form, ("marketplace", "email"))
        name = values.get("marketplace", "")
        if not name or len(name) > 200:
            errors["marketplace"] = "Give your store a name (up to 200 characters)."
        if request.form.get("password") != request.form.get("password_confirm"):
            errors["password_confirm"] = "The two passwords are not the same."
        if not errors:
            try:
                user = create_user(db(), get_or_create_marketplace(db(), name),
                                   {"email": values.get("email", ""), "password": request.form.get("password", ""),
                                    "role": "owner"})
            except ValidationError as exc:
                db().rollback()
                errors = flat_errors(exc.messages)
            else:
                db().commit()
                sign_in_as(user)
                flash("Welcome to Hookyard. Start by connecting an app.", "success")
                return redirect(url_for("web.integrations"))
    return render_template("setup.html", errors=errors, values=values), 422 if errors else 200


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
        retry_after = over_limit("sign-in", f"{request.remote_addr}\n{email.lower()}",
                                 rt().settings.signin_rate_limit)
        if retry_after is not None:
            minutes = math.ceil(retry_after / 60)
            error = f"Too many sign-in attempts; try again in {minutes} minute{'s' if minutes != 1 else ''}."
            return (render_template("sign_in.html", error=error, email=email), 429,
                    {"Retry-After": str(retry_after)})
        user = authenticate(db(), email, request.form.get("password", ""))
        if user is not None:
            db().commit()
            sign_in_as(user)
            return redirect(_local(request.args.get("next")) or url_for("web.dashboard"))
        error = "That email and password do not match an account."
    return render_template("sign_in.html", error=error, email=email), 401 if error else 200


@bp.route("/sign-out", methods=["POST"])
def sign_out():
    session.clear()
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
