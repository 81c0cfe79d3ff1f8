"""What every response and every authenticated route shares: security headers and rate limits."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Registers the security headers on every response."""
