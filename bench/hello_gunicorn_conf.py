"""gunicorn settings for bench/hello_app.py: Hookyard's (hookyard.gunicorn_conf: worker class, WEB_CONCURRENCY,
HOOKYARD_WEB_THREADS, keep-alive, timeouts, access log) with only the app swapped, so both run the same server."""

from hookyard.gunicorn_conf import *  # noqa: F403

wsgi_app = "hello_app:app"
# Hookyard's hooks prepare its metrics folder and check its database and Redis: not the hello app's business.


def on_starting(server):  # noqa: F811
    pass


def child_exit(server, worker):  # noqa: F811
    pass


def on_exit(server):  # noqa: F811
    pass


def when_ready(server):  # noqa: F811
    pass


logger_class = "gunicorn.glogging.Logger"
