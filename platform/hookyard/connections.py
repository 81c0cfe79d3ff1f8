"""Integration (connection) lifecycle shared by the API and any UI: create, edit, verify, refresh.

Secret config fields are sealed before they touch the database and are never handed back: callers
get ``masked_config``.
"""
from __future__ import annotations

import logging

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from .contract import App, ConnectionFailed
from .models import Integration, Rule, utcnow
from .runtime import Runtime

log = logging.getLogger(__name__)
MASK = "********"


class VerificationFailed(ValidationError):
    """The app refused the connection; ``reason`` is the app's message for the merchant."""

    def __init__(self, failure: ConnectionFailed):
        super().__init__({"config": {failure.field or "_schema": [failure.message]}})
        self.reason = failure.message
        self.transient = failure.transient


def app_for(rt: Runtime, key: str) -> App:
    app = rt.registry.apps.get(key)
    if app is None:
        raise ValidationError({"app": [f"Unknown app {key!r}; installed: {', '.join(sorted(rt.registry.apps)) or 'none'}."]})
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


def _call_app(app: App, fn, *args) -> dict:
    """verify()/refresh(): ConnectionFailed is the app's message; anything else is a plugin bug,
    logged with its traceback and reported without details that could hold a secret."""
    try:
        return dict(fn(*args) or {})
    except ConnectionFailed as exc:
        raise VerificationFailed(exc) from exc
    except Exception as exc:
        log.exception("app %s raised while checking a connection", app.key)
        failure = ConnectionFailed(f"The {app.name} plugin failed while checking the connection "
                                   f"({exc.__class__.__name__}); the server log has the details.")
        raise VerificationFailed(failure) from exc


def _store_config(rt: Runtime, integration: Integration, app: App, config: dict) -> None:
    secret_names = set(app.secret_fields)
    integration.config = {k: v for k, v in config.items() if k not in secret_names}
    secrets = {k: v for k, v in config.items() if k in secret_names and v not in (None, "")}
    integration.secrets = rt.secret_box.seal(secrets) if secrets else None


def create(rt: Runtime, session: Session, marketplace_id: int, app_key: str, name: str, config: dict) -> Integration:
    app = app_for(rt, app_key)
    _check_name(session, marketplace_id, name)
    try:
        config = app.config_schema().load(config or {})
    except ValidationError as exc:
        raise ValidationError({"config": exc.messages}) from exc
    info = _call_app(app, app.verify, config)  # nothing is saved unless the remote accepts the credentials
    integration = Integration(marketplace_id=marketplace_id, app=app.key, name=name, info=info, options={},
                              status="connected", verified_at=utcnow())
    _store_config(rt, integration, app, config)
    session.add(integration)
    session.flush()
    return integration


def update(rt: Runtime, session: Session, integration: Integration, name: str | None, config: dict | None) -> Integration:
    app = app_for(rt, integration.app)
    if name is not None and name != integration.name:
        _check_name(session, integration.marketplace_id, name, exclude_id=integration.id)
        integration.name = name
    if config is not None:
        # Secrets left out (or sent back as the mask) keep their stored value: they are write-only.
        merged = full_config(rt, integration)
        merged.update({k: v for k, v in config.items() if v != MASK})
        try:
            merged = app.config_schema().load(merged)
        except ValidationError as exc:
            raise ValidationError({"config": exc.messages}) from exc
        integration.info = _call_app(app, app.verify, merged)
        _store_config(rt, integration, app, merged)
        integration.status, integration.status_reason, integration.verified_at = "connected", None, utcnow()
    session.flush()
    return integration


def refresh(rt: Runtime, session: Session, integration: Integration) -> Integration:
    """Re-verify, then reload the option lists. A failure marks the connection as needing attention."""
    app = app_for(rt, integration.app)
    config = full_config(rt, integration)
    try:
        info = _call_app(app, app.verify, config)
        options = _call_app(app, app.refresh, config, info) if app.refresh else {}
    except VerificationFailed as exc:
        log.warning("integration %s (%s) failed to refresh: %s", integration.id, integration.app, exc.reason)
        if not exc.transient:
            integration.status, integration.status_reason = "needs_attention", exc.reason
            session.commit()
        raise
    now = utcnow()
    integration.info, integration.options = info, options
    integration.status, integration.status_reason = "connected", None
    integration.verified_at = integration.refreshed_at = now
    session.flush()
    return integration


def options(rt: Runtime, session: Session, integration: Integration) -> dict:
    """The option lists of the last refresh, refreshing once if they were never loaded."""
    if integration.refreshed_at is None:
        refresh(rt, session, integration)
        session.commit()
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
