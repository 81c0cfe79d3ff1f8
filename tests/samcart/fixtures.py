"""SamCart API fixtures, loaded for the whole suite by tests/conftest.py: the fake SamCart Public API (a real HTTP
server) with SAMCART_API_BASE_URL pointed at it."""

import pytest

from hookyard_samcart.fake import FakeSamCart

SAMCART_API_KEY = "samcart-api-key-for-tests"


@pytest.fixture
def fake_samcart(monkeypatch):
    with FakeSamCart(api_key=SAMCART_API_KEY) as fake:
        monkeypatch.setenv("SAMCART_API_BASE_URL", fake.base_url)
        yield fake
