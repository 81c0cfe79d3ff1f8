"""The objects one process needs (settings, database, plugins, Redis), built once per process.

The web app keeps its Runtime in ``app.extensions``; the worker installs one before it forks, and
job functions reach it through ``current()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Callable

import redis

from .crypto import SecretBox
from .db import Database
from .plugins import Registry, load_registry
from .settings import Settings

_installed: "Runtime | None" = None


@dataclass
class Runtime:
    settings: Settings
    db: Database
    registry: Registry
    # What time it is for stamping deliveries (hookyard.deliveries); None is the real clock. Tests set it to
    # receive deliveries days apart without waiting days.
    clock: Callable[[], datetime] | None = None

    @cached_property
    def redis(self) -> redis.Redis:
        if not self.settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (`make run` starts a local server and sets it)")
        return connect_redis(self.settings)

    @cached_property
    def secret_box(self) -> SecretBox:
        return SecretBox(self.settings.secret_key, self.settings.old_secret_keys)


def connect_redis(settings: Settings) -> redis.Redis:
    """REDIS_URL's client. For rediss:// (TLS), the certificate options: a managed Redis whose certificate is
    self-signed (Heroku Redis) needs HOOKYARD_REDIS_SSL_CERT_REQS=none."""
    tls = {}
    if settings.redis_url.startswith("rediss://"):
        tls = {"ssl_cert_reqs": settings.redis_ssl_cert_reqs}
        if settings.redis_ssl_ca_certs:
            tls["ssl_ca_certs"] = settings.redis_ssl_ca_certs
    # No socket_timeout: the worker blocks on BLPOP; the connect timeout bounds an outage.
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30, **tls)


def build_runtime(settings: Settings, registry: Registry | None = None) -> Runtime:
    if registry is None:
        registry = load_registry(disabled=set(settings.disabled_plugins))
    db = Database(settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
    return Runtime(settings=settings, db=db, registry=registry)


def install(runtime: Runtime) -> None:
    global _installed
    _installed = runtime


def current() -> Runtime:
    if _installed is None:
        install(build_runtime(Settings.from_env()))
    return _installed
