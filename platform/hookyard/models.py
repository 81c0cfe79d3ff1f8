"""The tables. Log entries (runs) keep plain ids of rules, products and integrations so history
survives their deletion (ids are never reused: see Base), and a copy of what they ran (``ran``) so
that deleting or renaming those objects later never changes what the log says; only the event a run
belongs to is a foreign key."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Ids are INTEGER columns, 32-bit on PostgreSQL: a larger number names nothing, and sent to the database it fails
# the query (a 500 on SQLite and PostgreSQL alike) instead of finding nothing. Check ids against it before a lookup.
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Every table is AUTOINCREMENT on SQLite: without it SQLite hands a deleted row's id to the next row, and a
    log entry, a queued run or another store's reference would then name somebody else's object.
    PostgreSQL's sequences never reuse a value."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        table = cls.__dict__.get("__table__")
        if table is not None:
            table.dialect_kwargs["sqlite_autoincrement"] = True


class Marketplace(Base):
    __tablename__ = "marketplaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Numbers handed to log entries (hookyard.logcap): the last one given, and the highest one trimmed.
    log_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    log_floor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    # owner: every route; viewer: reads only (GET). Same roles as people in the web UI.
    role: Mapped[str] = mapped_column(String(16), default="owner", server_default="owner")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


ROLES = ("owner", "viewer")


class User(Base):
    """A person who signs in to the web UI; owners change things, viewers read rules and logs."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Integration(Base):
    __tablename__ = "integrations"
    __table_args__ = (
        UniqueConstraint("marketplace_id", "name", name="uq_integration_name"),
        UniqueConstraint("inbound_key_hash", name="uq_integration_inbound_key"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"), index=True)
    app: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    config: Mapped[dict] = mapped_column(JSON, default=dict)  # non-secret fields only
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted JSON of secret fields
    info: Mapped[dict] = mapped_column(JSON, default=dict)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default="connected")
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # For apps that receive webhooks (App.inbound): the id in the connection's inbound URL, /hooks/<app>/<id>. The
    # URL is a credential, so it is stored as a password would be for lookup (its SHA-256, unique), and sealed
    # like the other secrets so that the connection's owners can be shown it again.
    inbound_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    inbound_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("marketplace_id", "external_id", name="uq_product_external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500), default="")
    auto_created: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rule(Base):
    __tablename__ = "rules"
    __table_args__ = (
        # The matching index: (marketplace, trigger, product), with product NULL for global rules.
        Index("ix_rules_match", "marketplace_id", "trigger", "product_id", "enabled"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=True)
    trigger: Mapped[str] = mapped_column(String(200))
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), nullable=True, index=True
    )
    action: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("marketplace_id", "idempotency_key", name="uq_event_idempotency_key"),
        UniqueConstraint("marketplace_id", "dedupe_key", name="uq_event_dedupe_key"),
        # For "cancelled_by": did this email act on this product within a time window?
        Index("ix_events_subject", "marketplace_id", "email", "trigger", "product_id", "occurred_at"),
        # For a backfill's candidates and a reconciliation's state: a store's events of a trigger, in time order.
        Index("ix_events_trigger_time", "marketplace_id", "trigger", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"))
    trigger: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # The trigger type's natural identity of the event (hashed): a redelivery without Idempotency-Key.
    dedupe_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Deliveries answered with this event instead of creating another (Idempotency-Key or dedupe key).
    duplicates: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_duplicate_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    payload: Mapped[dict] = mapped_column(JSON)  # validated and normalised
    raw_payload: Mapped[dict] = mapped_column(JSON)  # as received, unknown fields kept
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    matched_rules: Mapped[int] = mapped_column(Integer, default=0)
    # "delivery": the store (or an API client) sent it. "store_api": a backfill read it from the store's API and
    # stored it for one rule only (hookyard.backfill.store_past_event); the store's own delivery of it, when it
    # comes, runs the other matching rules (hookyard.emit, "adopting").
    source: Mapped[str] = mapped_column(String(16), default="delivery", server_default="delivery")


EVENT_SOURCES = ("delivery", "store_api")
RUN_STATES = ("queued", "running", "succeeded", "skipped", "failed")
FINAL_STATES = ("succeeded", "skipped", "failed")
# Why a run exists: an event matched its rule (event), someone tested the rule (test), the rule was applied to past
# events (backfill), or a reconciliation report's fix (reconcile). Only event and backfill runs are one per
# (event, rule): a test or a fix may run a rule again for an event it already ran for.
RUN_ORIGINS = ("event", "test", "backfill", "reconcile")
ONCE_PER_EVENT_ORIGINS = ("event", "backfill")
# The reason of a backfill run skipped by a cancel before it ran: its rule never ran for the event.
CANCELLED = "cancelled"


class Run(Base):
    """One (event, rule) execution; it is also the log entry shown to merchants."""

    __tablename__ = "runs"
    __table_args__ = (
        # One event or backfill run per (event, rule), whoever creates it and however often; tests and fixes apart.
        Index(
            "uq_run_event_rule",
            "event_id",
            "rule_id",
            unique=True,
            sqlite_where=text("origin IN ('event', 'backfill')"),
            postgresql_where=text("origin IN ('event', 'backfill')"),
        ),
        Index("ix_runs_log_seq", "marketplace_id", "log_seq"),
        Index("ix_runs_task", "task_id", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"))
    # NULL only for a test run of a trigger's example payload, which no stored event holds (the payload is in ran).
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True, nullable=True)
    rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    origin: Mapped[str] = mapped_column(String(16), default="event", server_default="event")
    # The task (a backfill, a reconciliation's fix) that created the run, so cancelling it can skip what is queued.
    task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    log_seq: Mapped[int] = mapped_column(BigInteger)
    trigger: Mapped[str] = mapped_column(String(200))
    app: Mapped[str | None] = mapped_column(String(100), nullable=True)
    action: Mapped[str] = mapped_column(String(200))
    integration_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The product as it was when the event arrived: what the log shows and searches (hookyard.snapshot).
    product_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    product_external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # What the run was set to do when it was created, then what its latest attempt did (hookyard.snapshot).
    ran: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Times it was put on the queue: attempts plus deferrals (pacing). Part of the job id.
    dispatches: Mapped[int] = mapped_column(Integer, default=1)
    history: Mapped[list] = mapped_column(JSON, default=list)  # one entry per attempt
    job_id: Mapped[str] = mapped_column(String(200))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserSession(Base):
    """A signed-in browser (hookyard.user_sessions). Its cookie carries a random id; only the id's SHA-256 is
    stored, as with API tokens, so a copy of the database cannot be replayed as a cookie. Signing out, a password
    change, "sign out everywhere" and removing the person end it here, whatever copies of the cookie exist."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Written at most every few minutes (hookyard.user_sessions.SEEN_EVERY), not on each request.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # For the person's list of sessions only (never for deciding anything): the browser and where it came from.
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    client_address: Mapped[str] = mapped_column(String(64), default="")


TASK_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TASK_ACTIVE_STATES = ("queued", "running")


class Task(Base):
    """Long work the worker does for a marketplace (hookyard.tasks), e.g. reloading a connection's option lists:
    the API answers 202 with the task, and the task shows how far the work got and how it ended."""

    __tablename__ = "tasks"
    # One queued or running task per (marketplace, kind, target): a second start of the same work finds the first.
    __table_args__ = (UniqueConstraint("marketplace_id", "active_key", name="uq_task_active"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(100))  # e.g. "integration.refresh"
    target_id: Mapped[int] = mapped_column(Integer)  # what the kind works on, e.g. the integration's id
    # "<kind>:<target_id>" while queued or running, NULL once finished (NULLs never collide in a unique constraint).
    active_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)  # unknown until the work says
    message: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the work was asked to do, e.g. a backfill's {"since", "until"}; None for kinds that need nothing more.
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # What the work found, for a kind that answers something (a backfill's preview: its counts); None otherwise.
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when a worker claims it; the attempt is identified by it (the sweep gives up a dead one by this value).
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


DELIVERY_STATES = ("received", "mapped", "duplicate", "unmapped", "rejected", "failed")


class Delivery(Base):
    """One body posted to a connection's inbound URL (hookyard.deliveries), stored before anything else happens to
    it, and what became of it: the events it made, or why it made none. Capped per connection like the log."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_integration", "integration_id", "id"),
        Index("ix_deliveries_identity", "integration_id", "identity"),
        Index("ix_deliveries_body_hash", "integration_id", "body_hash"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"), index=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_type: Mapped[str] = mapped_column(String(200), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    # The parsed body with the app's secret fields masked; NULL when it could not be parsed (see text).
    body: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # The start of a body that was neither JSON nor a form, as text, to show why it was rejected.
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The app's identity of the delivery (hashed), or NULL; and the hash of the parsed body (redeliveries).
    identity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="received")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # [{"event_id", "trigger", "note", "duplicate"}] for each event the app made of it.
    events: Mapped[list] = mapped_column(JSON, default=list)
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PluginStateRecord(Base):
    """A plugin's small JSON documents, per marketplace and app (contract.PluginState), e.g. a subscription's
    history of failed charges."""

    __tablename__ = "plugin_state"
    __table_args__ = (UniqueConstraint("marketplace_id", "app", "key", name="uq_plugin_state_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AppUsage(Base):
    """Calls to an app's remote that count against its quota (contract.Usage), per scope (the remote's account, e.g.
    a Circle community id) and UTC calendar month (``period``, "YYYY-MM"). Not per store: connections of two stores
    to one community share one count, as the remote's quota does. Written by hookyard.usage with an atomic upsert."""

    __tablename__ = "app_usage"
    __table_args__ = (UniqueConstraint("app", "scope", "period", name="uq_app_usage"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(7))
    calls: Mapped[int] = mapped_column(BigInteger, default=0)


class RuleLedger(Base):
    """The (rule, event) pairs a rule already ran for, kept when the log cap trims their runs (hookyard.logcap), so a
    backfill never runs a rule twice for one event however old. An event is named by its dedupe key when it has one
    (the same order read again from the store's API is the same event, even after the first copy was pruned), else
    by "id:<event id>" (ids are never reused)."""

    __tablename__ = "rule_ledger"
    __table_args__ = (UniqueConstraint("rule_id", "event_key", name="uq_rule_ledger"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[int] = mapped_column(Integer)
    event_key: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


RECONCILE_STATES = ("running", "ready", "failed", "cancelled")


class ReconcileReport(Base):
    """One comparison of who should have access in an integration's remote (by the rules that govern it and the
    store's state) with who has it there (hookyard.reconcile): the differences, each with a reason, and for each
    difference that was fixed, the run that fixed it."""

    __tablename__ = "reconcile_reports"
    __table_args__ = (Index("ix_reconcile_reports_integration", "marketplace_id", "integration_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    marketplace_id: Mapped[int] = mapped_column(ForeignKey("marketplaces.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(Integer)  # plain: a report outlives its integration, like runs
    task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)  # counts, what was read, how far back the state goes
    differences: Mapped[list] = mapped_column(JSON, default=list)
    calls: Mapped[int] = mapped_column(Integer, default=0)  # remote calls the comparison made (against the quota)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
