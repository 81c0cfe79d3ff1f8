"""Rotating SECRET_KEY: secrets stay readable throughout, and `hookyard keys rotate` moves them to the new key."""

import dataclasses
import os

import pytest
from flask import request

from hookyard import connections
from hookyard.app import create_app
from hookyard.crypto import SecretBox
from hookyard.models import Integration
from hookyard.runtime import build_runtime

from .conftest import ApiClient
from .recorder import TOKEN
from .tasking import refresh
from .test_cli import run_cli

NEW_KEY = "the-new-secret-key"


@pytest.fixture
def keyed(settings, runtime):
    """Runtimes over the test database with other keys: keyed(current, *old)."""
    made = []

    def make(key, *old_keys):
        rt = build_runtime(
            dataclasses.replace(settings, secret_key=key, old_secret_keys=old_keys), registry=runtime.registry
        )
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.db.dispose()


def rotate(settings, key, *old_keys, dry_run=False):
    env = dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        SECRET_KEY=key,
        HOOKYARD_OLD_SECRET_KEYS=",".join(old_keys),
        HOOKYARD_INSTANCE_PATH=str(settings.instance_path),
    )
    r = run_cli("keys", "rotate", *(["--dry-run"] if dry_run else []), env=env)
    assert TOKEN not in r.stdout + r.stderr
    return r


def stored(rt, integration_id):
    with rt.db.session() as session:
        return session.get(Integration, integration_id)


def test_secrets_saved_under_the_old_key_keep_working_and_rotate_moves_them_to_the_new_one(setup, api, settings, keyed):
    old_key = settings.secret_key
    ids = [setup.integration("One"), setup.integration("Two")]
    # Deployed with the new key and the old one as a fallback: a refresh sends the stored token to the recorder,
    # which refuses a wrong one.
    both = keyed(NEW_KEY, old_key)
    client = ApiClient(create_app(runtime=both), api.token, api.marketplace_id)
    refresh(client, both, ids[0])  # succeeds only if the worker's side read the token
    assert client.get(f"/api/v1/integrations/{ids[0]}").json["status"] == "connected"
    before = {i: stored(both, i) for i in ids}

    r = rotate(settings, NEW_KEY, old_key)
    assert r.returncode == 0, r.stderr
    assert "re-encrypted 2 integration(s); 0 already under SECRET_KEY" in r.stdout

    new_only, old_only = keyed(NEW_KEY), keyed(old_key)
    for i in ids:
        row = stored(new_only, i)
        assert row.secrets != before[i].secrets and row.updated_at == before[i].updated_at
        assert connections.full_config(new_only, row)["token"] == TOKEN
        with pytest.raises(RuntimeError, match="SECRET_KEY or any key in HOOKYARD_OLD_SECRET_KEYS"):
            connections.full_config(old_only, row)
    client = ApiClient(create_app(runtime=new_only), api.token, api.marketplace_id)
    refresh(client, new_only, ids[1])

    rotated = [stored(new_only, i).secrets for i in ids]
    again = rotate(settings, NEW_KEY, old_key)
    assert again.returncode == 0, again.stderr
    assert "re-encrypted 0 integration(s); 2 already under SECRET_KEY" in again.stdout
    assert [stored(new_only, i).secrets for i in ids] == rotated


def test_dry_run_counts_and_writes_nothing(setup, settings, runtime):
    integration_id = setup.integration()
    before = stored(runtime, integration_id).secrets

    r = rotate(settings, NEW_KEY, settings.secret_key, dry_run=True)
    assert r.returncode == 0, r.stderr
    assert "would re-encrypt 1 integration(s); 0 already under SECRET_KEY" in r.stdout
    assert stored(runtime, integration_id).secrets == before


def test_secrets_under_a_key_not_given_fail_the_run_by_id_and_the_rest_are_still_rotated(
    setup, settings, runtime, keyed
):
    readable, lost = setup.integration("Readable"), setup.integration("Lost")
    with runtime.db.session() as session:
        lost_token = SecretBox("a-key-nobody-has").seal({"token": TOKEN})
        session.get(Integration, lost).secrets = lost_token
        session.commit()

    r = rotate(settings, NEW_KEY, settings.secret_key)
    assert r.returncode != 0
    assert "re-encrypted 1 integration(s)" in r.stdout
    assert "1 integration(s) could not be decrypted with SECRET_KEY or HOOKYARD_OLD_SECRET_KEYS" in r.stderr
    assert f"left as they are: {lost}." in r.stderr
    assert "a-key-nobody-has" not in r.stdout + r.stderr and settings.secret_key not in r.stdout + r.stderr
    new_only = keyed(NEW_KEY)
    assert connections.full_config(new_only, stored(new_only, readable))["token"] == TOKEN
    assert stored(new_only, lost).secrets == lost_token


def test_a_web_session_signed_with_the_old_key_is_accepted_only_while_that_key_is_a_fallback(settings, keyed):
    def session_from(app, cookie):
        with app.test_request_context(headers={"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"}):
            return dict(app.session_interface.open_session(app, request))

    old_app = create_app(runtime=keyed(settings.secret_key))
    cookie = old_app.session_interface.get_signing_serializer(old_app).dumps({"user_id": 7})

    assert session_from(create_app(runtime=keyed(NEW_KEY, settings.secret_key)), cookie) == {"user_id": 7}
    assert session_from(create_app(runtime=keyed(NEW_KEY)), cookie) == {}
