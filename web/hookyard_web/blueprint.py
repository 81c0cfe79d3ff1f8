"""The UI's one blueprint and what every page shares: who is signed in, CSRF, roles, headers, filters."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from functools import wraps

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from hookyard import inbound, user_sessions
from hookyard.accounts import has_users
from hookyard.models import Marketplace, User, UserSession
from hookyard.requestctx import db_session as db
from hookyard.requestctx import runtime as rt

from .labels import trigger_label

bp = Blueprint("web", __name__, template_folder="templates", static_folder="static", static_url_path="/ui-static")

# Reachable without signing in.
PUBLIC = {"web.sign_in", "web.setup", "web.static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Paths whose errors stay JSON for their machine clients: the API, and the inbound URLs senders post to.
JSON_PATHS = ("/api/", inbound.PATH_PREFIX + "/")
SESSION_LIFETIME = user_sessions.LIFETIME  # the cookie's; the server-side row decides (hookyard.user_sessions)
SECURITY_HEADERS = {
    # No inline script or style anywhere in the UI, so the policy can forbid both.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SessionInterface(SecureCookieSessionInterface):
    """Secure cookies whenever the page came over HTTPS (directly or through a proxy such as Heroku's
    router), so a local http://127.0.0.1 run still works."""

    def get_cookie_secure(self, app):
        return bool(
            app.config["SESSION_COOKIE_SECURE"]
            or request.is_secure
            or request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip() == "https"
        )


@bp.record_once
def _configure(state):
    app = state.app
    app.config.update(
        SESSION_COOKIE_NAME="hookyard_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.session_interface = SessionInterface()
    app.jinja_env.filters.update(when=_when, day=_day, plural=plural)
    app.jinja_env.globals.update(csrf_token=csrf_token, trigger_label=trigger_label)
    _answer_unknown_pages_in_html(app)


def _answer_unknown_pages_in_html(app) -> None:
    """A 404 or 500 outside any blueprint (a mistyped URL, say) reaches the app-wide HTTPException handler, which
    is the API's (flask-smorest registers it at init_api, before this blueprint): it answers JSON. The UI's pages
    answer in the UI's look instead; /api/ and /hooks/ keep their JSON. The API's handler is wrapped, not replaced,
    so it stays the one place that shapes API errors. This runs once, when the blueprint is registered, which
    create_app does after init_api."""
    api_handler = app.error_handler_spec.get(None, {}).get(None, {}).get(HTTPException)

    def answer(error: HTTPException):
        if api_handler is not None and request.path.startswith(JSON_PATHS):
            return api_handler(error)
        return _error_page(error)

    app.register_error_handler(HTTPException, answer)


def plural(count: int, singular: str, many: str | None = None) -> str:
    """``3|plural("space")`` → "3 spaces", ``1|plural("space")`` → "1 space"."""
    return f"{count} {singular if count == 1 else (many or singular + 's')}"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _day(value: datetime | None) -> str:
    return value.strftime("%b %d, %Y") if value else "—"


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _csrf_ok() -> bool:
    sent, expected = request.form.get("csrf_token", ""), session.get("csrf", "")
    return bool(sent and expected) and hmac.compare_digest(sent, expected)


@bp.before_request
def _guard():
    g.user = _signed_in_user()
    if g.user is not None:
        g.marketplace = db().get(Marketplace, g.user.marketplace_id)  # scopes hookyard.requestctx.owned()
    if request.method not in SAFE_METHODS and not _csrf_ok():
        abort(
            400,
            description="This form has expired or is missing its security token. Reload the page and submit it again.",
        )
    if any("\x00" in value for value in [*request.args.values(), *request.form.values()]):
        # PostgreSQL text cannot hold it: refused here rather than failing a query later.
        abort(400, description="The form contains a NUL character, which no field accepts.")
    if request.endpoint in PUBLIC:
        return None
    if g.user is None:
        if not has_users(db()):
            return redirect(url_for("web.setup"))
        return redirect(url_for("web.sign_in", next=request.full_path.rstrip("?")))
    return None


def _signed_in_user() -> User | None:
    """The person whose live server-side session the cookie names. The cookie is signed (with SECRET_KEY or a key
    in HOOKYARD_OLD_SECRET_KEYS), but a valid signature is not enough: the session must also still exist, not be
    revoked or expired, and belong to the user the cookie names, so a copy of the cookie dies with the session."""
    g.user_session = None
    user_id, session_id = session.get("uid"), session.get("sid")
    if user_id is None and session_id is None:
        return None
    found = user_sessions.find(db(), session_id, user_id)
    if found is None:
        # Ended elsewhere: forget who it was, but keep the form token, so a form sent from this browser is
        # answered with the sign-in page rather than "this form has expired".
        csrf = session.get("csrf")
        session.clear()
        if csrf:
            session["csrf"] = csrf
        return None
    g.user_session, user = found
    if user_sessions.touch(g.user_session):
        db().commit()  # at most every SEEN_EVERY per session, and before the view writes anything of its own
    return user


def current_session() -> UserSession | None:
    return g.get("user_session")


def sign_in_as(user: User) -> None:
    """Starts a server-side session for ``user`` (committed here) and points a fresh cookie at it."""
    if current_session() is not None:  # signing in again from a signed-in browser replaces its session
        user_sessions.revoke(current_session())
    session.clear()  # a fresh session (and CSRF token) on every sign-in: no fixation
    session_id = user_sessions.start(db(), user, request.headers.get("User-Agent", ""), request.remote_addr or "")
    db().commit()
    session.permanent = True
    session.update(uid=user.id, sid=session_id)
    csrf_token()


def end_session() -> None:
    """Ends the current session server-side, then forgets the cookie."""
    if current_session() is not None:
        user_sessions.revoke(current_session())
        db().commit()
    session.clear()


def owner_only(view):
    """Viewers read; only owners change things. Their buttons are hidden too, but this is the check."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.user.role != "owner":
            abort(403, description="Only an owner can do this; your account can view rules and logs.")
        return view(*args, **kwargs)

    return wrapper


@bp.after_request
def _headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# The top navigation entry each page belongs to.
SECTIONS = {
    "dashboard": "dashboard",
    "products": "products",
    "product": "products",
    "plugins": "plugins",
    "settings": "settings",
    "account": "account",
    "change_own_password": "account",
}


@bp.app_context_processor
def _page_context():
    user = g.get("user")
    endpoint = (request.endpoint or "").removeprefix("web.")
    return {
        "user": user,
        "is_owner": bool(user and user.role == "owner"),
        "marketplace": g.get("marketplace") if user else None,
        "registry": rt().registry,
        "section": SECTIONS.get(endpoint, "integrations"),
    }


@bp.errorhandler(HTTPException)
def _error_page(error: HTTPException):
    if "user" not in g:
        # An unknown URL matched no route, so _guard did not run: find who is signed in, for the page's top bar.
        # Not after a 500, whose cause may be the database itself: that page goes without the bar.
        g.user = _signed_in_user() if error.code < 500 else None
        if g.user is not None:
            g.marketplace = db().get(Marketplace, g.user.marketplace_id)
    # The error's own headers (a 405's Allow) belong to the page too; only its body is replaced. A page outside the
    # blueprint (a mistyped URL) misses the blueprint's after_request, so it gets the UI's security headers here.
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    return render_template("error.html", error=error), error.code, {**SECURITY_HEADERS, **headers}


def done(message: str, endpoint: str, values: dict | None = None):
    """Post/redirect/get with a confirmation shown on the next page."""
    flash(message, "success")
    return redirect(url_for(endpoint, **(values or {})))
