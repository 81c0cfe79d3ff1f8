"""Signing in through the forms, as a browser would, with the Flask test client (for the checks that
need no rendering: roles, CSRF, redirects)."""

from __future__ import annotations

import re

from hookyard.accounts import create_user
from hookyard.tokens import get_or_create_marketplace

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_user(runtime, email: str, role: str, marketplace: str = "store-a") -> None:
    with runtime.db.session() as session:
        create_user(
            session,
            get_or_create_marketplace(session, marketplace),
            {"email": email, "password": PASSWORD, "role": role},
        )
        session.commit()


class WebClient:
    def __init__(self, app):
        self.client = app.test_client()
        self.csrf = None

    def get(self, path, **kwargs):
        response = self.client.get(path, **kwargs)
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path, data=None, csrf=True, **kwargs):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf or self.get("/sign-in").text and self.csrf)
        return self.client.post(path, data=data, **kwargs)

    def sign_in(self, email, password=PASSWORD):
        self.get("/sign-in")
        response = self.post("/sign-in", {"email": email, "password": password})
        assert response.status_code == 302, response.text
        self.get("/")
        return self
