"""The `hookyard` command as operators run it: real processes, real ports."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from hookyard.localredis import free_port
from hookyard.tokens import hash_token

from .processes import alive, descendants
from .waiting import wait_for

HOOKYARD = str(Path(sys.executable).parent / "hookyard")


def run_cli(*args, env):
    return subprocess.run([HOOKYARD, *args], env=env, capture_output=True, text=True, timeout=120)


def test_db_upgrade_then_tokens_create_prints_a_working_token(tmp_path, runtime):
    env = dict(os.environ, HOOKYARD_INSTANCE_PATH=str(tmp_path / "instance"))
    env.pop("DATABASE_URL", None)
    r = run_cli("db", "upgrade", env=env)
    assert r.returncode == 0, r.stderr
    r = run_cli("tokens", "create", "--marketplace", "my-store", env=env)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("hy_") and len(token) > 30
    db_file = tmp_path / "instance" / "hookyard.db"
    assert db_file.exists() and (tmp_path / "instance" / "secret_key").exists()
    assert token.encode() not in db_file.read_bytes()  # only its hash is stored
    assert hash_token(token).encode() in db_file.read_bytes()


def test_tokens_create_list_and_revoke_against_the_test_database(settings, runtime, app):
    env = dict(os.environ, DATABASE_URL=settings.database_url, SECRET_KEY=settings.secret_key)
    token = run_cli("tokens", "create", "--marketplace", "cli-store", "--name", "zapier", env=env).stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/rules", headers=headers).status_code == 200
    reader = run_cli(
        "tokens", "create", "--marketplace", "cli-store", "--name", "reports", "--role", "viewer", env=env
    ).stdout.strip()
    assert app.test_client().get("/api/v1/rules", headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    assert (
        app.test_client()
        .post("/api/v1/products", json={"external_id": "1", "name": "x"}, headers={"Authorization": f"Bearer {reader}"})
        .status_code
        == 403
    )
    assert run_cli("tokens", "create", "--marketplace", "cli-store", "--role", "admin", env=env).returncode != 0
    listed = run_cli("tokens", "list", "--marketplace", "cli-store", env=env).stdout
    rows = [row.split("\t") for row in listed.splitlines()]
    assert [(marketplace, name, state, role) for _, marketplace, _, name, state, role in rows] == [
        ("cli-store", "zapier", "active", "owner"),
        ("cli-store", "reports", "active", "viewer"),
    ]
    assert token not in listed and reader not in listed
    token_id = rows[0][0]
    assert run_cli("tokens", "revoke", token_id, env=env).returncode == 0
    assert app.test_client().get("/api/v1/rules", headers=headers).status_code == 401
    assert run_cli("tokens", "revoke", "99999", env=env).returncode != 0


def test_users_create_makes_an_account_that_signs_in(settings, runtime):
    from hookyard.accounts import authenticate

    env = dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.secret_key,
        HOOKYARD_PASSWORD="a long enough password",
    )
    made = run_cli("users", "create", "--marketplace", "cli-store", "--email", "Ops@Example.com", env=env)
    assert made.returncode == 0 and "created owner ops@example.com" in made.stdout, made.stderr
    again = run_cli("users", "create", "--marketplace", "cli-store", "--email", "ops@example.com", env=env)
    assert again.returncode != 0 and "already exists" in again.stderr
    weak = run_cli(
        "users",
        "create",
        "--marketplace",
        "cli-store",
        "--email",
        "v@example.com",
        "--role",
        "viewer",
        env={**env, "HOOKYARD_PASSWORD": "short"},
    )
    assert weak.returncode != 0 and "password: Use 10 to 1024 characters." in weak.stderr
    with runtime.db.session() as session:
        user = authenticate(session, "ops@example.com", "a long enough password")
        assert user is not None and user.role == "owner"
        assert authenticate(session, "v@example.com", "short") is None


def test_users_passwd_list_and_remove_end_sessions_and_keep_an_owner(settings, runtime):
    from hookyard import user_sessions
    from hookyard.accounts import authenticate, create_user
    from hookyard.models import User, UserSession
    from hookyard.tokens import get_or_create_marketplace

    env = dict(os.environ, DATABASE_URL=settings.database_url, SECRET_KEY=settings.secret_key)
    env.pop("HOOKYARD_PASSWORD", None)
    with runtime.db.session() as session:
        shop = get_or_create_marketplace(session, "cli-store")
        for email, role in (("ops@example.com", "owner"), ("vic@example.com", "viewer")):
            user = create_user(session, shop, {"email": email, "password": "a long enough password", "role": role})
            user_sessions.start(session, user, "Firefox")
            user_sessions.start(session, user, "Safari")
        session.commit()

    listed = [
        row.split("\t") for row in run_cli("users", "list", "--marketplace", "cli-store", env=env).stdout.splitlines()
    ]
    assert [(mp, email, role, seen, live) for _, mp, email, role, seen, live in listed] == [
        ("cli-store", "ops@example.com", "owner", "never", "2 session(s)"),
        ("cli-store", "vic@example.com", "viewer", "never", "2 session(s)"),
    ]

    weak = run_cli("users", "passwd", "vic@example.com", "--password", "aaaaaaaaaa", env=env)
    assert weak.returncode != 0 and "password: A password cannot be one character repeated" in weak.stderr
    common = run_cli("users", "passwd", "vic@example.com", "--password", "password123", env=env)
    assert common.returncode != 0 and "This is a very common password." in common.stderr
    assert run_cli("users", "passwd", "nobody@example.com", "--password", "x", env=env).returncode != 0
    # Prompted (twice) when not given, as an operator at a terminal would type it.
    typed = subprocess.run(
        [HOOKYARD, "users", "passwd", "Vic@Example.com"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input="plum tractor lantern ocean\nplum tractor lantern ocean\n",
    )
    assert typed.returncode == 0, typed.stderr
    assert "password changed for vic@example.com; 2 session(s) signed out" in typed.stdout
    assert "plum tractor lantern ocean" not in typed.stdout + typed.stderr
    scripted = run_cli("users", "passwd", "ops@example.com", "--password", "another fine passphrase", env=env)
    assert scripted.returncode == 0 and "2 session(s) signed out" in scripted.stdout, scripted.stderr

    last_owner = run_cli("users", "remove", "ops@example.com", env=env)
    assert last_owner.returncode != 0
    assert "user: ops@example.com is the store's only owner; add another owner first." in last_owner.stderr
    removed = run_cli("users", "remove", "vic@example.com", env=env)
    assert removed.returncode == 0 and "removed vic@example.com" in removed.stdout, removed.stderr
    assert run_cli("users", "remove", "vic@example.com", env=env).returncode != 0
    with runtime.db.session() as session:
        assert [u.email for u in session.query(User)] == ["ops@example.com"]
        assert authenticate(session, "ops@example.com", "another fine passphrase") is not None
        assert all(s.revoked_at is not None for s in session.query(UserSession))
        assert {s.user_agent for s in session.query(UserSession)} == {"Firefox", "Safari"}  # ops' only


def test_run_starts_redis_web_and_worker_and_ctrl_c_stops_them_all(tmp_path, plugin_site):
    """`hookyard run` (what `make run` calls) on embedded defaults: no Redis, no database beforehand."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY")}
    env.update(HOOKYARD_INSTANCE_PATH=str(tmp_path / "instance"), PORT=str(port), WEB_CONCURRENCY="1")
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen([HOOKYARD, "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:

        def ready():
            try:
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or a slow first answer on a busy machine
                return proc.poll() is not None

        wait_for(ready, timeout=60, message="/readyz did not answer 200")
        assert proc.poll() is None, (tmp_path / "run.log").read_text()
        output = (tmp_path / "run.log").read_text()
        assert f"http://127.0.0.1:{port}" in output and "tokens create" in output
        children = descendants(proc.pid)
        assert any("redis" in c or "valkey" in c for c in children.values()), children
        assert any("gunicorn" in c for c in children.values()) and any("worker" in c for c in children.values())
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(timeout=30)
        log.close()
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=30, message="children still running")


def test_without_marketplace_tokens_and_users_use_the_installs_one_store(settings, runtime):
    from hookyard.models import Marketplace

    env = dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.secret_key,
        HOOKYARD_PASSWORD="a long enough password",
    )
    first = run_cli("tokens", "create", env=env)  # a new install: the default store, the setup page's too
    assert first.returncode == 0 and first.stderr == "owner token for the store 'My store':\n", first.stderr
    assert run_cli("tokens", "create", "--role", "viewer", env=env).returncode == 0
    made = run_cli("users", "create", "--email", "ops@example.com", env=env)
    assert made.stdout == "created owner ops@example.com for marketplace My store\n", made.stderr
    assert {row.split("\t")[1] for row in run_cli("tokens", "list", env=env).stdout.splitlines()} == {"My store"}
    assert run_cli("tokens", "create", "--marketplace", "Second shop", env=env).returncode == 0
    ambiguous = run_cli("tokens", "create", env=env)
    assert (ambiguous.returncode, ambiguous.stdout) == (1, "")
    assert ambiguous.stderr == (
        "Error: this install has several stores (My store, Second shop): choose one with --marketplace NAME.\n"
    )
    assert "several stores" in run_cli("users", "create", "--email", "x@example.com", env=env).stderr
    too_long = run_cli("tokens", "create", "--marketplace", "x" * 201, env=env)
    assert too_long.returncode == 1 and "up to 200 characters" in too_long.stderr and "Traceback" not in too_long.stderr
    with runtime.db.session() as session:
        assert sorted(m.name for m in session.query(Marketplace)) == ["My store", "Second shop"]


def test_the_readme_token_and_the_first_run_page_land_in_the_same_store(settings, runtime, app):
    """The README's API example (a token, an event), then the browser's first-run page: one store, holding the
    owner and the event, whatever name the owner gives it."""
    from hookyard.models import Event, Marketplace, User

    from .web.session import PASSWORD, WebClient

    env = dict(os.environ, DATABASE_URL=settings.database_url, SECRET_KEY=settings.secret_key)
    token = run_cli("tokens", "create", env=env).stdout.strip()
    sent = app.test_client().post(
        "/api/v1/events",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "trigger": "samcart.product_purchased",
            "payload": {"customer": {"email": "ada@example.com"}, "product": {"id": "444", "name": "Community"}},
        },
    )
    assert sent.status_code in (200, 201, 202), sent.text
    web = WebClient(app)
    page = web.get("/setup")
    assert 'value="My store"' in page.text and "Your store already exists here" in page.text
    assert (
        web.post(
            "/setup",
            {
                "marketplace": "Ada's Courses",
                "email": "me@example.com",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
            },
        ).status_code
        == 302
    )
    with runtime.db.session() as session:
        store = session.query(Marketplace).one()
        assert store.name == "Ada's Courses"
        assert session.query(User).one().marketplace_id == store.id
        assert session.query(Event).one().marketplace_id == store.id
    assert app.test_client().get("/api/v1/rules", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert run_cli("tokens", "list", env=env).stdout.split("\t")[1] == "Ada's Courses"


def test_the_first_run_page_offers_the_default_store_on_a_new_install(runtime, app):
    from hookyard.models import Marketplace

    from .web.session import PASSWORD, WebClient

    web = WebClient(app)
    page = web.get("/setup")
    assert 'value="My store"' in page.text and "Your store already exists" not in page.text
    assert (
        web.post(
            "/setup",
            {"marketplace": "My store", "email": "me@example.com", "password": PASSWORD, "password_confirm": PASSWORD},
        ).status_code
        == 302
    )
    env = dict(os.environ, DATABASE_URL=runtime.settings.database_url, SECRET_KEY=runtime.settings.secret_key)
    made = run_cli("tokens", "create", env=env)  # the README's command, after the browser
    assert made.returncode == 0 and made.stderr == "owner token for the store 'My store':\n", made.stderr
    with runtime.db.session() as session:
        assert [m.name for m in session.query(Marketplace)] == ["My store"]
