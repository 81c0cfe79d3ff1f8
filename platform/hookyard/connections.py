"""Integration (connection) lifecycle shared by the API and any UI: create, edit, verify, refresh.

Secret config fields are sealed before they touch the database and are never handed back: callers
get ``masked_config``. The one exception is a secret Hookyard generated itself (``Secret(generate=...)`` left
empty): ``create`` (and ``update``, when the edit empties it) hands its value to the caller once, through the
``revealed`` dict the caller passes, for the one answer that shows it. It is never logged nor stored in clear.

No database transaction stays open while an app talks to its remote (verify, refresh): on SQLite every
transaction holds the write lock, so a slow remote would otherwise stall every other request and the worker.
A refresh runs in the worker as a task (``start_refresh``; hookyard.taskjobs), never inside a request.
"""

from __future__ import annotations

import inspect
import logging
from datetime import timedelta

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import inbound, tasks, usage
from .contract import App, Cancelled, ConnectionFailed, Progress
from .fields import generated_secrets
from .models import Integration, Rule, Task, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)
MASK = "********"
# The reserved key of the info a verify returns: [{"code": …, "message": …}], shown as the integration's warnings.
WARNINGS = "warnings"
REFRESH_FAILED = "refresh_failed"
# When to suggest refreshing again after a passing failure that gave no hint (Circle: "try again in a minute").
REFRESH_RETRY_AFTER = 60


class VerificationFailed(ValidationError):
    """The app refused the connection; ``reason`` is the app's message for the merchant."""

    def __init__(self, failure: ConnectionFailed):
        super().__init__({"config": {failure.field or "_schema": [failure.message]}})
        self.reason = failure.message
        self.transient = failure.transient
        # The remote did not answer in time: a request answers 504 with Retry-After, not 422.
        self.timed_out = failure.timed_out
        self.retry_after = failure.retry_after


class OptionsNotLoaded(ValidationError):
    """The option lists were never loaded: a refresh task was started (or joined) for them. ``task`` is it; when
    it could not be queued its status is already ``failed``."""

    def __init__(self, task: Task, reason: str):
        super().__init__({"options": [reason]})
        self.task = task
        self.reason = reason


class IntegrationGone(LookupError):
    """The integration was deleted while its refresh talked to the remote."""


def app_for(rt: Runtime, key: str) -> App:
    app = rt.registry.apps.get(key)
    if app is None:
        raise ValidationError(
            {"app": [f"Unknown app {key!r}; installed: {', '.join(sorted(rt.registry.apps)) or 'none'}."]}
        )
    return app


def masked_config(rt: Runtime, integration: Integration) -> dict:
    app = rt.registry.apps.get(integration.app)
    secret_names = app.secret_fields if app else ()
    sealed = set(rt.secret_box.open(integration.secrets)) if integration.secrets else set()
    return {**integration.config, **{name: MASK for name in secret_names if name in sealed}}


def full_config(rt: Runtime, integration: Integration) -> dict:
    return {**integration.config, **rt.secret_box.open(integration.secrets)}


def _check_name(session: Session, marketplace_id: int, name: str, exclude_id: int | None = None):
    query = select(Integration.id).where(Integration.marketplace_id == marketplace_id, Integration.name == name)
    if exclude_id is not None:
        query = query.where(Integration.id != exclude_id)
    if session.scalar(query) is not None:
        raise ValidationError({"name": [f"An integration named {name!r} already exists."]})


def _takes(fn, name: str) -> bool:
    """Optional keywords came later (a refresh's ``progress``, a verify's ``known``): a plugin function written
    before one existed is called without it."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _call_app(app: App, fn, *args, **optional) -> dict:
    """verify()/refresh(): ConnectionFailed is the app's message; anything else is a plugin bug,
    logged with its traceback and reported without details that could hold a secret. ``optional`` keywords (not
    None) are passed only to a function that takes them."""
    kwargs = {name: value for name, value in optional.items() if value is not None and _takes(fn, name)}
    try:
        return dict(fn(*args, **kwargs) or {})
    except Cancelled:
        raise  # the task was cancelled: not the app's failure
    except ConnectionFailed as exc:
        raise VerificationFailed(exc) from exc
    except Exception as exc:
        log.exception("app %s raised while checking a connection", app.key)
        failure = ConnectionFailed(
            f"The {app.name} plugin failed while checking the connection "
            f"({exc.__class__.__name__}); the server log has the details."
        )
        raise VerificationFailed(failure) from exc


def _checked_info(app: App, info: dict) -> dict:
    """verify()'s info with its ``warnings`` kept only as a list of {code, message} strings (a malformed entry is a
    plugin bug: logged and dropped, never shown as a broken page or a 500)."""
    raw = info.pop(WARNINGS, None)
    if raw is None:
        return info
    kept = (
        [
            {"code": w["code"], "message": w["message"]}
            for w in raw
            if isinstance(w, dict) and isinstance(w.get("code"), str) and isinstance(w.get("message"), str)
        ]
        if isinstance(raw, list)
        else []
    )
    if not isinstance(raw, list) or len(kept) != len(raw):
        log.error("app %s returned malformed warnings (a list of {code, message} strings is expected)", app.key)
    if kept:
        info[WARNINGS] = kept
    return info


def warnings(integration: Integration, used: dict | None = None) -> list[dict]:
    """What is worth telling the merchant about a working connection, e.g. a URL that does not match the account;
    with ``used`` (``usage_of``), also a quota near or used up (computed now, not stored)."""
    found = (integration.info or {}).get(WARNINGS)
    return (list(found) if isinstance(found, list) else []) + usage.warnings(used)


def usage_of(rt: Runtime, session: Session, integration: Integration) -> dict | None:
    """This month's calls counted by the app's remote for the connection's account (shared with every connection
    to that account), {label, period, calls, quota, scope, plan}; None for an app whose remote is not metered."""
    app = rt.registry.apps.get(integration.app)
    return usage.summary(rt, session, app, integration.config or {}, integration.info)


def _verify(app: App, config: dict, known: dict | None, meter: usage.Meter) -> dict:
    """verify(), handed what the last check learned (``known``) when it takes it; its calls count for the account
    the new info names."""
    info = _checked_info(app, _call_app(app, app.verify, config, known=dict(known) if known else None))
    meter.info = info
    return info


def facts(integration: Integration) -> dict:
    """The integration's info without its warnings (shown on their own)."""
    return {k: v for k, v in (integration.info or {}).items() if k != WARNINGS}


def _end_transaction(session: Session) -> None:
    """Ends the read transaction before a remote call (nothing is pending at that point): objects already loaded
    stay usable (the sessions do not expire on commit)."""
    session.commit()


def _flush_named(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:  # the name was taken while the remote was being asked
        session.rollback()
        raise ValidationError({"name": [f"An integration named {name!r} already exists."]}) from exc


def _store_config(rt: Runtime, integration: Integration, app: App, config: dict) -> None:
    secret_names = set(app.secret_fields)
    integration.config = {k: v for k, v in config.items() if k not in secret_names}
    secrets = {k: v for k, v in config.items() if k in secret_names and v not in (None, "")}
    integration.secrets = rt.secret_box.seal(secrets) if secrets else None


def _generate(app: App, config: dict) -> dict:
    """The app's generated secrets that ``config`` leaves empty, made now and added to it (before it is loaded, so
    they are validated like pasted ones). Returns them, by input key."""
    generated = generated_secrets(app.config_schema, config)
    config.update(generated)
    return generated


def _reveal(revealed: dict | None, app: App, loaded: dict, generated: dict) -> None:
    """Hands the generated secrets, as stored (by the names ``config`` shows), to the caller that asked for them."""
    if revealed is None or not generated:
        return
    for name, field in app.config_schema().fields.items():
        if (field.data_key or name) in generated:
            attribute = field.attribute or name
            revealed[attribute] = loaded[attribute]


def create(
    rt: Runtime,
    session: Session,
    marketplace_id: int,
    app_key: str,
    name: str,
    config: dict,
    revealed: dict | None = None,
) -> Integration:
    """Verifies and saves a new connection. A ``Secret(generate=...)`` the config leaves empty is generated; pass a
    dict as ``revealed`` to receive those values ({field: secret}) once the connection is saved, for the one answer
    that may show them (nothing can read them back afterwards)."""
    app = app_for(rt, app_key)
    _check_name(session, marketplace_id, name)
    config = dict(config or {})
    generated = _generate(app, config)
    try:
        config = app.config_schema().load(config)
    except ValidationError as exc:
        raise ValidationError({"config": exc.messages}) from exc
    _end_transaction(session)
    with usage.metered(rt, app) as meter:  # a refused key names no account: those calls count nowhere
        info = _verify(app, config, None, meter)  # nothing is saved unless the remote accepts
    integration = Integration(
        marketplace_id=marketplace_id,
        app=app.key,
        name=name,
        info=info,
        options={},
        status="connected",
        verified_at=utcnow(),
    )
    _store_config(rt, integration, app, config)
    if app.inbound is not None:  # its webhooks have somewhere to go from the start
        inbound.assign_key(rt, integration)
    session.add(integration)
    _flush_named(session, name)
    _reveal(revealed, app, config, generated)
    return integration


def rotate_inbound_url(rt: Runtime, session: Session, integration: Integration) -> None:
    """A new inbound URL for the connection; the old one answers 404 from the commit on. Flushes."""
    app = app_for(rt, integration.app)
    if app.inbound is None:
        raise ValidationError(
            {"app": [f"The {app.name} app receives no webhooks: its connections have no inbound URL."]}
        )
    inbound.assign_key(rt, integration)
    session.flush()


def start_import_products(rt: Runtime, session: Session, integration: Integration) -> Task:
    """The product-import task of this connection (the running one, or a new one). Commits."""
    app = app_for(rt, integration.app)
    if app.products is None:
        raise ValidationError({"app": [f"The {app.name} app cannot list a store's products."]})
    return tasks.start(rt, session, integration.marketplace_id, tasks.IMPORT_PRODUCTS, integration.id)


def update(
    rt: Runtime,
    session: Session,
    integration: Integration,
    name: str | None,
    config: dict | None,
    revealed: dict | None = None,
) -> Integration:
    """Renames and/or edits the config (merged with the stored one, then verified again). A secret left out, or
    sent back as the mask, keeps its value; a ``Secret(generate=...)`` sent empty (null or "") gets a new
    generated value, handed to ``revealed`` as on create."""
    app = app_for(rt, integration.app)
    generated: dict = {}
    renamed = name is not None and name != integration.name
    if renamed:
        _check_name(session, integration.marketplace_id, name, exclude_id=integration.id)
    if config is not None:
        # Secrets left out (or sent back as the mask) keep their stored value: they are write-only.
        merged = full_config(rt, integration)
        merged.update({k: v for k, v in config.items() if v != MASK})
        # Empty here means emptied on purpose (null or ""; a left-out field kept the stored value), or a connection
        # saved before its app had the field: a generated secret is never cleared, it is replaced.
        generated = _generate(app, merged)
        try:
            merged = app.config_schema().load(merged)
        except ValidationError as exc:
            raise ValidationError({"config": exc.messages}) from exc
        _end_transaction(session)  # nothing is changed yet: a refused edit leaves the integration as it was
        with usage.metered(rt, app, integration.info) as meter:  # refused: counted for the account known so far
            info = _verify(app, merged, integration.info, meter)
        integration.info = info
        _store_config(rt, integration, app, merged)
        integration.status, integration.status_reason, integration.verified_at = "connected", None, utcnow()
    if renamed:
        integration.name = name
    _flush_named(session, integration.name)
    if generated:  # merged exists only when the config was edited
        _reveal(revealed, app, merged, generated)
    return integration


def refresh(rt: Runtime, session: Session, integration: Integration, progress: Progress | None = None) -> Integration:
    """Re-verify, then reload the option lists. A failure marks the connection as needing attention, unless it was
    passing (busy, down, slow). Long: the worker runs it (hookyard.taskjobs), reporting to ``progress``, which
    raises Cancelled when its task is cancelled. Raises IntegrationGone if the integration is deleted meanwhile."""
    app = app_for(rt, integration.app)
    config = full_config(rt, integration)
    _end_transaction(session)
    try:
        # One count for the whole refresh, written when it ends (also when it fails or is cancelled).
        with usage.metered(rt, app, integration.info) as meter:
            info = _verify(app, config, integration.info, meter)
            if progress is not None:
                progress(0, None, f"Connected to {app.name}; loading its lists.")
            options = _call_app(app, app.refresh, config, info, progress=progress) if app.refresh else {}
        if progress is not None:  # the last chance to cancel, before anything is written
            loaded = sum(len(items) for items in options.values() if isinstance(items, list))
            progress(loaded, loaded, "Saving the lists.")
    except VerificationFailed as exc:
        log.warning("integration %s (%s) failed to refresh: %s", integration.id, integration.app, exc.reason)
        current = _current(session, integration)
        kept = [w for w in warnings(current) if w.get("code") != REFRESH_FAILED]  # one, the latest, at most
        if exc.transient:
            # The remote was busy, down or slow: the connection is not broken, but its lists are not fresh either,
            # and nothing refreshes it again on its own. Say so until a refresh succeeds (or the config is edited).
            kept.append(_refresh_failed(app, exc))
        else:  # refused (a bad key, a plan): the connection is broken until it is fixed; its status says so
            current.status, current.status_reason = "needs_attention", exc.reason
        current.info = {**(current.info or {}), WARNINGS: kept}
        session.commit()
        raise
    integration = _current(session, integration)
    now = utcnow()
    integration.info, integration.options = info, options
    integration.status, integration.status_reason = "connected", None
    integration.verified_at = integration.refreshed_at = now
    session.flush()
    return integration


def _refresh_failed(app: App, exc: VerificationFailed) -> dict:
    wait = exc.retry_after if exc.retry_after is not None else REFRESH_RETRY_AFTER
    at = (utcnow() + timedelta(seconds=wait)).strftime("%H:%M UTC")
    return {
        "code": REFRESH_FAILED,
        "message": f"The last refresh failed at {utcnow():%Y-%m-%d %H:%M} UTC: {exc.reason} Hookyard does not "
        f"retry a refresh by itself: refresh again after {at}. Meanwhile rules keep working with "
        "the lists of the last refresh that succeeded.",
    }


def _current(session: Session, integration: Integration) -> Integration:
    """The row as it is now, after a long remote call; IntegrationGone if it was deleted meanwhile."""
    found = session.get(Integration, integration.id, populate_existing=True)
    if found is None:
        raise IntegrationGone(integration.id)
    return found


def start_refresh(rt: Runtime, session: Session, integration: Integration) -> Task:
    """The refresh task of this integration: the one queued or running, or a new one. Commits.
    Raises tasks.TaskNotQueued (the task recorded as failed) when Redis is unreachable."""
    return tasks.start(rt, session, integration.marketplace_id, tasks.REFRESH, integration.id)


def options(rt: Runtime, session: Session, integration: Integration) -> dict:
    """The option lists of the last refresh. Never loaded: a refresh task is started (or the running one joined)
    and OptionsNotLoaded raised, so no request waits on the remote; ask again once the task has succeeded."""
    if integration.refreshed_at is None:
        app = app_for(rt, integration.app)
        try:
            task = start_refresh(rt, session, integration)
        except tasks.TaskNotQueued as exc:
            raise OptionsNotLoaded(exc.task, f"{app.name}'s lists could not be loaded: {exc.task.message}") from exc
        raise OptionsNotLoaded(
            task,
            f"Hookyard is loading this connection's lists from {app.name} in the "
            f"background (task {task.id}); try again in a few seconds.",
        )
    return integration.options or {}


def delete(session: Session, integration: Integration) -> list[int]:
    """Deletes the connection; rules that used it are disabled (kept for editing). Returns their ids."""
    rules = list(session.scalars(select(Rule).where(Rule.integration_id == integration.id)))
    for rule in rules:
        rule.enabled = False
        rule.integration_id = None
    session.delete(integration)
    session.flush()
    return [r.id for r in rules]
