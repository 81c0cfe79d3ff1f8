"""Settings read once from the environment (12-factor); ``create_app`` and the worker take a Settings."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path


def _number(env, name, default, cast=int):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a {'whole number' if cast is int else 'number'}, got {raw!r}") from None


def normalise_database_url(url: str) -> str:
    # Heroku hands out postgres://; SQLAlchemy 2 only knows postgresql://, and we use psycopg 3.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    queue_name: str = "hookyard"
    queue_shards: int = 16
    log_cap: int = 1000
    retry_max_attempts: int = 8
    retry_base_delay: float = 30.0
    retry_max_delay: float = 6 * 3600.0
    job_timeout: int = 300
    sweep_interval: int = 60
    # A run still "running" this long after its attempt started has lost its worker (job_timeout + grace).
    stuck_grace: int = 60
    disabled_plugins: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        instance = Path(env.get("HOOKYARD_INSTANCE_PATH") or Path.cwd() / "instance").resolve()
        database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'hookyard.db'}"
        settings = cls(
            instance_path=instance,
            database_url=normalise_database_url(database_url),
            redis_url=env.get("REDIS_URL") or None,
            secret_key=env.get("SECRET_KEY") or _instance_secret_key(instance),
            queue_name=env.get("HOOKYARD_QUEUE", "hookyard"),
            queue_shards=max(1, _number(env, "HOOKYARD_QUEUE_SHARDS", 16)),
            log_cap=_number(env, "HOOKYARD_LOG_CAP", 1000),
            retry_max_attempts=_number(env, "HOOKYARD_RETRY_MAX_ATTEMPTS", 8),
            retry_base_delay=_number(env, "HOOKYARD_RETRY_BASE_DELAY", 30.0, float),
            retry_max_delay=_number(env, "HOOKYARD_RETRY_MAX_DELAY", 6 * 3600.0, float),
            job_timeout=_number(env, "HOOKYARD_JOB_TIMEOUT", 300),
            sweep_interval=max(1, _number(env, "HOOKYARD_SWEEP_INTERVAL", 60)),
            stuck_grace=_number(env, "HOOKYARD_STUCK_GRACE", 60),
            disabled_plugins=frozenset(
                n.strip() for n in env.get("HOOKYARD_DISABLED_PLUGINS", "").split(",") if n.strip()
            ),
        )
        return replace(settings, **overrides) if overrides else settings


def _instance_secret_key(instance: Path) -> str:
    """A generated key kept in the instance folder, so the embedded setup needs no configuration.

    Losing this file makes stored connection secrets unreadable, which is why production sets SECRET_KEY.
    """
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # web and worker started together: the other one won
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
