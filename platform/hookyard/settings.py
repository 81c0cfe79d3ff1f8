"""Settings read once from the environment (12-factor); ``create_app`` and the worker take a Settings."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from .private_files import private_folder, write_once


def _number(env, name, default, cast=int):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a {'whole number' if cast is int else 'number'}, got {raw!r}") from None


def _at_least(env, name, default: int, minimum: int) -> int:
    value = _number(env, name, default)
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {env.get(name)!r}")
    return value


def _share(env, name, default: float, most: float | None) -> float:
    """A number from 0 to ``most`` (no upper bound when None)."""
    value = _number(env, name, default, float)
    if not value >= 0 or (most is not None and value > most) or value == float("inf"):
        bound = f"between 0 and {most:g}" if most is not None else "0 or more"
        raise SystemExit(f"{name} must be a number {bound}, got {env.get(name)!r}")
    return value


def _choice(env, name, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SystemExit(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return value


def _rate(env, name, default: str) -> tuple[int, float]:
    """ "LIMIT/SECONDS", e.g. "600/60"; "0" turns the limit off."""
    raw = (env.get(name) or default).strip()
    if raw == "0":
        return (0, 1.0)
    limit, _, window = raw.partition("/")
    try:
        parsed = (int(limit), float(window))
    except ValueError:
        parsed = (0, 0.0)
    if parsed[0] <= 0 or parsed[1] <= 0:
        raise SystemExit(f"{name} must look like LIMIT/SECONDS (e.g. {default}) or 0 for no limit, got {raw!r}")
    return parsed


def without_password(url: str | None) -> str | None:
    """A URL with its password (DATABASE_URL's, REDIS_URL's) replaced by ***, to be shown."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def normalise_database_url(url: str) -> str:
    # Heroku hands out postgres://; SQLAlchemy 2 only knows postgresql://, and we use psycopg 3.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class _SecretKey:
    """The ``secret_key`` field: SECRET_KEY, or the instance folder's key, generated there on first use.

    Lazy because reading settings must never write files: `hookyard tokens list` run in the wrong folder would
    otherwise leave a key (and a folder) behind. The processes that use the key (``run``, ``db upgrade``, the web
    app, the worker) create it by reading it. A data descriptor, so ``Settings`` stays a frozen dataclass that
    ``dataclasses.replace(settings, secret_key=...)`` works on.
    """

    def __set_name__(self, owner, name):
        # Kept in the instance's __dict__ under the field's own name (this data descriptor still wins every lookup),
        # so vars(settings) and Settings(**vars(settings)) see a field, not a private slot.
        self._slot = name

    def __get__(self, settings, owner=None):
        if settings is None:
            return None  # the field's default: generate on first use
        key = settings.__dict__.get(self._slot)
        if key is None:
            key = _instance_secret_key(settings.instance_path)
            settings.__dict__[self._slot] = key  # the same key for this object's whole life
        return key

    def __set__(self, settings, key):
        settings.__dict__[self._slot] = key


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    redis_url: str | None
    secret_key: str = _SecretKey()
    queue_name: str = "hookyard"
    queue_shards: int = 16
    log_cap: int = 1000
    retry_max_attempts: int = 8
    # 8 attempts with full-jitter backoff from 6 minutes, capped at 6 hours: at most ~12.3 hours in all.
    retry_base_delay: float = 360.0
    retry_max_delay: float = 6 * 3600.0
    job_timeout: int = 300
    sweep_interval: int = 60
    # A run still "running" this long after its attempt started has lost its worker (job_timeout + grace).
    stuck_grace: int = 60
    # A running attempt renews a lease in Redis; one whose lease lapsed lost its worker (killed, crashed).
    lease_ttl: int = 20
    # POST /events answers 429 when the queue holds more due jobs than this, or its oldest due job waited longer.
    backpressure_max_depth: int = 50_000
    backpressure_max_age: float = 900.0
    # Events (and their dedupe keys) are kept this long; log entries are capped separately.
    event_retention_days: int = 30
    # Requests per token per window: by default 1,000/s, above what one server takes (docs/performance.md), so that
    # a store's launch-day burst is paced by the server's own backpressure, not refused by its token's limit.
    api_rate_limit: tuple[int, float] = (60000, 60.0)
    signin_rate_limit: tuple[int, float] = (10, 300.0)  # sign-in attempts per client address and email
    # Earlier SECRET_KEYs: still decrypt stored secrets and verify sessions until `hookyard keys rotate`.
    old_secret_keys: tuple[str, ...] = ()
    disabled_plugins: frozenset[str] = field(default_factory=frozenset)
    # The server's address as the outside world reaches it (a deployment's https URL, or a tunnel's): inbound
    # URLs are built from it. Unset, they are built from each request's own host.
    public_url: str | None = None
    # Largest body an inbound URL accepts (413 beyond): a SamCart notification is a few KiB.
    inbound_max_bytes: int = 256 * 1024
    # Database connections each process keeps (PostgreSQL), and how many more it may open at a peak: every web and
    # worker process holds up to their sum, which must fit the database's connection limit.
    db_pool_size: int = 5
    db_max_overflow: int = 10
    # The bearer token GET /metrics asks for; unset, /metrics answers 404.
    metrics_token: str | None = None
    # For a rediss:// REDIS_URL: whether the server's certificate is checked ("required", the default; "none" for a
    # provider whose certificate is self-signed, as Heroku Redis's is), and against which CA file.
    redis_ssl_cert_reqs: str = "required"
    redis_ssl_ca_certs: str | None = None
    # Seconds a worker given SIGTERM lets its current job go on before handing its run back to the queue: below a
    # platform's grace period (Heroku sends SIGKILL 30 s after SIGTERM), with time left to hand it back.
    worker_stop_timeout: int = 20
    # Access reconciliation (hookyard.reconcile): a scheduled check of every integration that can be checked, every
    # this many hours (0: never), refused when this month's calls plus its estimate would pass this share of the
    # remote's monthly quota (a check started by hand always runs).
    reconcile_every_hours: float = 0.0
    reconcile_quota_share: float = 0.1

    def __repr__(self):
        # Written out so that neither key is printed, and printing settings never generates one.
        shown = ", ".join(
            f"{f.name}={without_password(getattr(self, f.name)) if f.name.endswith('_url') else getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("secret_key", "old_secret_keys", "metrics_token")
        )
        return f"Settings({shown})"

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Settings":
        """Reads, never writes: a missing instance folder, database or key is created by whoever first uses it."""
        env = os.environ if env is None else env
        # Not found, it is where `run`, `db upgrade` or the web app will create one: the working directory's.
        instance = find_instance(env) or (Path.cwd() / "instance").resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'hookyard.db'}"
        values = dict(
            instance_path=instance,
            database_url=normalise_database_url(database_url),
            redis_url=env.get("REDIS_URL") or None,
            secret_key=_given_secret_key(env) or _existing_secret_key(instance),
            queue_name=env.get("HOOKYARD_QUEUE", "hookyard"),
            queue_shards=max(1, _number(env, "HOOKYARD_QUEUE_SHARDS", 16)),
            log_cap=_number(env, "HOOKYARD_LOG_CAP", 1000),
            retry_max_attempts=_number(env, "HOOKYARD_RETRY_MAX_ATTEMPTS", 8),
            retry_base_delay=_number(env, "HOOKYARD_RETRY_BASE_DELAY", 360.0, float),
            retry_max_delay=_number(env, "HOOKYARD_RETRY_MAX_DELAY", 6 * 3600.0, float),
            job_timeout=_number(env, "HOOKYARD_JOB_TIMEOUT", 300),
            sweep_interval=max(1, _number(env, "HOOKYARD_SWEEP_INTERVAL", 60)),
            stuck_grace=_number(env, "HOOKYARD_STUCK_GRACE", 60),
            lease_ttl=max(2, _number(env, "HOOKYARD_LEASE_TTL", 20)),
            backpressure_max_depth=_number(env, "HOOKYARD_BACKPRESSURE_MAX_DEPTH", 50_000),
            backpressure_max_age=_number(env, "HOOKYARD_BACKPRESSURE_MAX_AGE", 900.0, float),
            event_retention_days=max(1, _number(env, "HOOKYARD_EVENT_RETENTION_DAYS", 30)),
            api_rate_limit=_rate(env, "HOOKYARD_API_RATE_LIMIT", "60000/60"),
            signin_rate_limit=_rate(env, "HOOKYARD_SIGNIN_RATE_LIMIT", "10/300"),
            old_secret_keys=tuple(k.strip() for k in env.get("HOOKYARD_OLD_SECRET_KEYS", "").split(",") if k.strip()),
            disabled_plugins=frozenset(
                n.strip() for n in env.get("HOOKYARD_DISABLED_PLUGINS", "").split(",") if n.strip()
            ),
            public_url=_public_url(env),
            inbound_max_bytes=max(1024, _number(env, "HOOKYARD_INBOUND_MAX_BYTES", 256 * 1024)),
            db_pool_size=_at_least(env, "HOOKYARD_DB_POOL_SIZE", 5, 1),
            db_max_overflow=_at_least(env, "HOOKYARD_DB_MAX_OVERFLOW", 10, 0),
            metrics_token=(env.get("HOOKYARD_METRICS_TOKEN") or "").strip() or None,
            redis_ssl_cert_reqs=_choice(
                env, "HOOKYARD_REDIS_SSL_CERT_REQS", "required", ("required", "optional", "none")
            ),
            redis_ssl_ca_certs=(env.get("HOOKYARD_REDIS_SSL_CA_CERTS") or "").strip() or None,
            worker_stop_timeout=_at_least(env, "HOOKYARD_WORKER_STOP_TIMEOUT", 20, 1),
            reconcile_every_hours=_share(env, "HOOKYARD_RECONCILE_EVERY_HOURS", 0.0, None),
            reconcile_quota_share=_share(env, "HOOKYARD_RECONCILE_QUOTA_SHARE", 0.1, 1.0),
        )
        # Built with the overrides rather than replace()d, which would read (and so generate) the secret key.
        return cls(**{**values, **overrides})


# Every environment variable the core (and the platform it is deployed on) reads. A plugin's own settings may not
# take one of these names (hookyard.plugin_settings): a plugin called "queue" would otherwise own
# HOOKYARD_QUEUE_SHARDS, one called "database" DATABASE_URL. tests/test_plugin_settings.py keeps it complete.
CORE_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "PORT",
        "WEB_CONCURRENCY",
        "HOOKYARD_API_RATE_LIMIT",
        "HOOKYARD_BACKPRESSURE_MAX_AGE",
        "HOOKYARD_BACKPRESSURE_MAX_DEPTH",
        "HOOKYARD_BIND",
        "HOOKYARD_DB_MAX_OVERFLOW",
        "HOOKYARD_DB_POOL_SIZE",
        "HOOKYARD_DISABLED_PLUGINS",
        "HOOKYARD_EVENT_RETENTION_DAYS",
        "HOOKYARD_INBOUND_MAX_BYTES",
        "HOOKYARD_INSTANCE_PATH",
        "HOOKYARD_JOB_TIMEOUT",
        "HOOKYARD_LEASE_TTL",
        "HOOKYARD_LOG_CAP",
        "HOOKYARD_LOG_FORMAT",
        "HOOKYARD_METRICS_TOKEN",
        "HOOKYARD_OLD_SECRET_KEYS",
        "HOOKYARD_PASSWORD",
        "HOOKYARD_PUBLIC_URL",
        "HOOKYARD_QUEUE",
        "HOOKYARD_QUEUE_SHARDS",
        "HOOKYARD_RECONCILE_EVERY_HOURS",
        "HOOKYARD_RECONCILE_QUOTA_SHARE",
        "HOOKYARD_RETRY_BASE_DELAY",
        "HOOKYARD_RETRY_MAX_ATTEMPTS",
        "HOOKYARD_REDIS_SSL_CA_CERTS",
        "HOOKYARD_REDIS_SSL_CERT_REQS",
        "HOOKYARD_RETRY_MAX_DELAY",
        "HOOKYARD_SIGNIN_RATE_LIMIT",
        "HOOKYARD_STUCK_GRACE",
        "HOOKYARD_SWEEP_INTERVAL",
        "HOOKYARD_TRACE_PLUGINS",
        "HOOKYARD_WEB_GRACEFUL_TIMEOUT",
        "HOOKYARD_WEB_KEEPALIVE",
        "HOOKYARD_WEB_THREADS",
        "HOOKYARD_WEB_TIMEOUT",
        "HOOKYARD_WORKER_FORK",
        "HOOKYARD_WORKER_STOP_TIMEOUT",
        "HOOKYARD_WORKER_THREADS",
        "PROMETHEUS_MULTIPROC_DIR",  # prometheus_client's, set by hookyard.gunicorn_conf for GET /metrics
    }
)


def find_instance(env=None, start: Path | None = None) -> Path | None:
    """This install's instance folder: HOOKYARD_INSTANCE_PATH, else the nearest ``instance/`` folder in the
    working directory (or ``start``) or one above it, as git finds its repository; None when there is neither.
    The same folder is found from anywhere inside the project, and nothing is picked up outside it."""
    env = os.environ if env is None else env
    given = env.get("HOOKYARD_INSTANCE_PATH")
    if given:
        return Path(given).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "instance").is_dir():
            return folder / "instance"
    return None


def _public_url(env) -> str | None:
    raw = (env.get("HOOKYARD_PUBLIC_URL") or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SystemExit(
            f"HOOKYARD_PUBLIC_URL must be the server's base URL, like https://hooks.example.com "
            f"(a path is allowed, no query), got {raw!r}"
        )
    return raw.rstrip("/")


def _given_secret_key(env) -> str | None:
    key = env.get("SECRET_KEY")
    if key is not None and key and not key.strip():
        raise SystemExit(
            "SECRET_KEY is set but blank: give it a long random value, or unset it to use a "
            "generated key in the instance folder."
        )
    return key or None


def _existing_secret_key(instance: Path) -> str | None:
    """The instance folder's key if it has one (read at once, so an empty one stops the process at start);
    None leaves it to be generated on first use."""
    path = instance / "secret_key"
    if not path.exists():
        return None
    private_folder(instance)  # takes group and other permissions off a folder an earlier version left open
    return _read_key(path)


def _instance_secret_key(instance: Path) -> str:
    """A generated key kept in the instance folder, so the embedded setup needs no configuration.

    Losing this file makes stored connection secrets unreadable, which is why production sets SECRET_KEY.
    Web and worker processes often start at the same moment: the file is created whole (write_once), and an
    empty key is never accepted.
    """
    path = private_folder(instance) / "secret_key"
    if not path.exists():
        write_once(path, secrets.token_urlsafe(48))
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise SystemExit(
            f"{path} is empty: delete it to have a new key generated (connection secrets stored "
            "with the lost key must then be entered again), or set SECRET_KEY."
        )
    return key
