"""The `hookyard` command: plugins, tokens, database, worker, the OpenAPI document, and `run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from .settings import Settings, find_instance


class WithPluginCommands(click.Group):
    """The core's commands, then those plugins add (hookspecs.register_commands), loaded only when a command is
    looked up that the core does not have, or when the commands are listed (``hookyard --help``)."""

    _plugin_commands: dict | None = None

    def _plugins(self) -> dict:
        if self._plugin_commands is None:
            from .plugins import load_registry

            commands = load_registry().commands
            clashes = sorted(set(commands) & set(self.commands))
            if clashes:
                click.echo(f"warning: plugin commands {', '.join(clashes)} are hidden by the core's own", err=True)
            WithPluginCommands._plugin_commands = {k: v for k, v in commands.items() if k not in self.commands}
        return self._plugin_commands

    def list_commands(self, ctx):
        with _plugin_errors():
            return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx, cmd_name):
        with _plugin_errors():
            return super().get_command(ctx, cmd_name) or self._plugins().get(cmd_name)

    def invoke(self, ctx):
        with _plugin_errors():
            return super().invoke(ctx)


@contextmanager
def _plugin_errors():
    """A plugin set the server refuses (one that fails to import, a duplicate key, …) is the operator's to fix: one
    line naming the plugin, as click prints its errors, not a traceback."""
    try:
        yield
    except Exception as exc:
        from .plugins import PluginError

        if isinstance(exc, PluginError):
            raise click.ClickException(str(exc)) from None
        raise


@click.group(cls=WithPluginCommands)
@click.version_option(package_name="hookyard", prog_name="hookyard", message="%(prog)s %(version)s")
def main():
    """Hookyard: store triggers in, app actions out.

    Commands use the instance folder in HOOKYARD_INSTANCE_PATH, else the nearest instance/ folder in the
    working directory or one above it (DATABASE_URL and SECRET_KEY, when set, take its database and key).
    """


def _settings(creates: bool = False, uses_secret_key: bool = False) -> Settings:
    """The settings a command runs with. Unless the command ``creates`` an instance (``db upgrade``), an instance
    it needs and cannot find is a clear error, never a new folder where it happens to be run. Settings' own
    errors (a malformed variable) come out as click errors too."""
    try:
        settings = Settings.from_env()
    except SystemExit as exc:
        raise click.ClickException(str(exc.code)) from None
    # Without DATABASE_URL the database is the instance's SQLite file; without SECRET_KEY the key is its file.
    needed = not os.environ.get("DATABASE_URL") or (uses_secret_key and not os.environ.get("SECRET_KEY"))
    if needed and not creates and find_instance() is None:
        raise click.ClickException(
            f"no Hookyard instance found: HOOKYARD_INSTANCE_PATH is not set and there is no instance/ folder in "
            f"{Path.cwd()} or any folder above it. Run this inside the project folder (where `make run` or "
            "`hookyard db upgrade` made instance/), or set HOOKYARD_INSTANCE_PATH to the instance folder "
            "(a deployment sets DATABASE_URL and SECRET_KEY instead)."
        )
    return settings


def _database(settings: Settings):
    """The database once it is known to hold Hookyard's schema, up to date; otherwise a clear error naming it and
    `hookyard db upgrade`. Nothing is created on the way: opening a missing SQLite file would create it empty."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from .db import Database
    from .migrate import alembic_config

    try:
        url = make_url(settings.database_url)
    except SQLAlchemyError as exc:
        raise click.ClickException(f"DATABASE_URL is not a database URL ({exc})") from None
    sqlite_file = (
        url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not url.database.startswith("file:")
    )
    shown = url.database if sqlite_file else url.render_as_string(hide_password=True)
    upgrade = (
        "run `hookyard db upgrade` (from the same folder, or with the same HOOKYARD_INSTANCE_PATH or DATABASE_URL)"
    )
    if sqlite_file and not Path(url.database).exists():
        raise click.ClickException(f"the database {shown} does not exist yet: {upgrade} to create it.")
    try:
        db = Database(settings.database_url)
        with db.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot open the database {shown}: {getattr(exc, 'orig', None) or exc}") from None
    if not current:
        db.dispose()
        raise click.ClickException(f"the database {shown} is not initialised (it has no Hookyard tables): {upgrade}.")
    script = ScriptDirectory.from_config(alembic_config(settings.database_url))
    heads = set(script.get_heads())
    if current != heads:
        try:
            behind = all(script.get_revision(rev) is not None for rev in current)
        except CommandError:
            behind = False  # a revision this code does not know: a newer release migrated it, and it may serve
        if behind:
            db.dispose()
            raise click.ClickException(
                f"the database {shown} is at revision {', '.join(sorted(current))} and this Hookyard needs "
                f"{', '.join(sorted(heads))}: {upgrade}."
            )
    return db


def instance_runtime():
    """The runtime of the instance a command runs on, checked first: no instance found, or a database that is not
    initialised or is behind, is a clear error and never a traceback or a stray file. For plugins' commands
    (hookspecs.register_commands), which have no other way to get one safely; installed as runtime.current()."""
    from . import runtime

    settings = _settings(uses_secret_key=True)
    rt = runtime.Runtime(
        settings=settings,
        db=_database(settings),
        registry=runtime.load_registry(disabled=set(settings.disabled_plugins)),
    )
    runtime.install(rt)
    return rt


def _marketplace(session, name: str | None):
    """--marketplace's store, created if new; without it the install's only store, or, on a new install, the
    default one the setup page also starts with, so the README's token and the first account share one store."""
    from .tokens import DEFAULT_MARKETPLACE, get_or_create_marketplace, marketplace_names

    if name is None:
        names = marketplace_names(session)
        if len(names) > 1:
            raise click.ClickException(
                f"this install has several stores ({', '.join(names)}): choose one with --marketplace NAME."
            )
        name = names[0] if names else DEFAULT_MARKETPLACE
    if not name.strip() or len(name) > 200:
        raise click.ClickException("--marketplace: give the store a name of up to 200 characters.")
    return get_or_create_marketplace(session, name)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--settings",
    "settings_only",
    is_flag=True,
    help="List the plugins' settings (environment variables) with their types, defaults and descriptions, "
    "never their values.",
)
@click.pass_context
def plugins(ctx, as_json, settings_only):
    """List installed plugins with their hooks, trigger types and apps (or, with --settings, their settings);
    install or uninstall one."""
    if ctx.invoked_subcommand is not None:
        return
    from .plugins import load_registry

    infos = [vars(p) for p in load_registry().plugins()]
    if settings_only:
        listed = [dict(plugin=p["name"], **s) for p in infos for s in p["settings"]]
        if as_json:
            click.echo(json.dumps(listed, indent=2))
            return
        for p in infos:
            if not p["settings"]:
                continue
            click.echo(p["name"])
            for s in p["settings"]:
                default = (
                    "none"
                    if s["default"] is None
                    else "empty"
                    if s["default"] in ("", [])
                    else json.dumps(s["default"])
                )
                secret = ", secret" if s["secret"] else ""
                click.echo(f"  {s['name']} ({s['type']}{secret}; default {default})")
                click.echo(f"      {s['description']}")
        return
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    for p in infos:
        click.echo(f"{p['name']} {p['version'] or ''}".rstrip())
        click.echo(f"  hooks: {', '.join(p['hooks']) or '-'}")
        if p["trigger_types"]:
            click.echo(f"  trigger types: {', '.join(p['trigger_types'])}")
        if p["apps"]:
            click.echo(f"  apps: {', '.join(p['apps'])}")
        if p["blueprints"]:
            click.echo(f"  blueprints: {', '.join(p['blueprints'])}")
        if p["settings"]:
            click.echo(f"  settings: {', '.join(s['name'] for s in p['settings'])} (hookyard plugins --settings)")
        click.echo(f"  hook API: {p['hook_api'] or 'not declared'}")


_PIP_ARGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@plugins.command("install", context_settings=_PIP_ARGS)
@click.argument("pip_args", nargs=-1, required=True, type=click.UNPROCESSED)
def plugins_install(pip_args):
    """pip install PIP_ARGS into the server's own environment (a package, `-e ./folder`, `--upgrade`, any pip
    option), then list each plugin added or upgraded, and check the server would start with them."""
    from . import plugin_install

    _pip_and_report(plugin_install, ["install", *pip_args])


@plugins.command("uninstall")
@click.argument("name")
def plugins_uninstall(name):
    """pip uninstall the plugin NAME (its name, as `hookyard plugins` lists it, or its distribution's name)."""
    from . import plugin_install

    try:
        distribution = plugin_install.distribution_of(name, plugin_install.installed())
    except plugin_install.InstallError as exc:
        raise click.ClickException(str(exc)) from None
    _pip_and_report(plugin_install, ["uninstall", "--yes", distribution])


def _pip_and_report(plugin_install, args: list[str]) -> None:
    before = plugin_install.installed()
    try:
        plugin_install.pip(*args)
    except plugin_install.InstallError as exc:
        raise click.ClickException(str(exc)) from None
    changed = plugin_install.changes(before, plugin_install.installed())
    for change in changed:
        click.echo(change.line)
    if not changed:
        click.echo("no plugin was added, upgraded or removed")
    listed, problem = plugin_install.load_check()
    if listed is None:
        raise click.ClickException(f"the server would not start with the plugins now installed: {problem}")
    present = {change.name for change in changed if change.kind != "removed"}
    for p in listed:
        if p["name"] in present:
            provides = [f"trigger types: {', '.join(p['trigger_types'])}"] if p["trigger_types"] else []
            provides += [f"apps: {', '.join(p['apps'])}"] if p["apps"] else []
            click.echo(f"  {p['name']}: {'; '.join(provides) or 'no trigger types or apps'}")
    if changed:
        click.echo(plugin_install.RESTART)


@main.group()
def tokens():
    """API tokens."""


@tokens.command("create")
@click.option(
    "--marketplace",
    help="Marketplace (store) name; created if it does not exist. Default: the only "
    'store, or "My store" (the setup page\'s) on a new install.',
)
@click.option("--name", default="", help="A label for the token.")
@click.option(
    "--role",
    type=click.Choice(["owner", "viewer"]),
    default="owner",
    show_default=True,
    help="viewer tokens can only read (GET).",
)
def tokens_create(marketplace, name, role):
    """Create an API token and print it (it is shown only this once)."""
    from .tokens import create_token

    if len(name) > 200:
        raise click.ClickException("--name: a label of up to 200 characters.")
    db = _database(_settings())
    with db.session() as session:
        store = _marketplace(session, marketplace)
        token = create_token(session, store, name, role)
        session.commit()
    click.echo(f"{role} token for the store {store.name!r}:", err=True)  # stdout stays the token alone, for scripts
    click.echo(token)


@tokens.command("list")
@click.option("--marketplace", help="Only this marketplace's tokens.")
def tokens_list(marketplace):
    """List tokens (their prefix, never the token)."""
    from sqlalchemy import select

    from .models import ApiToken, Marketplace

    db = _database(_settings())
    with db.session() as session:
        query = select(ApiToken, Marketplace.name).join(Marketplace).order_by(ApiToken.id)
        if marketplace:
            query = query.where(Marketplace.name == marketplace)
        for token, mp in session.execute(query):
            state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
            click.echo(f"{token.id}\t{mp}\t{token.prefix}…\t{token.name or '-'}\t{state}\t{token.role}")


@tokens.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id):
    """Revoke a token by the id `tokens list` shows."""
    from .models import ApiToken
    from .tokens import revoke_token

    db = _database(_settings())
    with db.session() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            raise click.ClickException(f"no token with id {token_id}")
        revoke_token(token)
        session.commit()
    click.echo(f"token {token_id} revoked")


@main.group()
def users():
    """People who sign in to the web UI."""


@users.command("create")
@click.option(
    "--marketplace",
    help="Marketplace (store) name; created if it does not exist. Default: the only "
    'store, or "My store" on a new install.',
)
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["owner", "viewer"]), default="owner", show_default=True)
@click.option(
    "--password", envvar="HOOKYARD_PASSWORD", help="Prompted for when not given (or set HOOKYARD_PASSWORD for scripts)."
)
def users_create(marketplace, email, role, password):
    """Create a user who can sign in to the web UI."""
    from marshmallow import ValidationError

    from .accounts import create_user

    db = _database(_settings())
    # Prompted for only now: a mistyped folder is told before anyone types a password twice.
    password = password if password is not None else _ask_password("Password")
    with db.session() as session:
        store = _marketplace(session, marketplace)
        try:
            user = create_user(session, store, {"email": email, "password": password, "role": role})
        except ValidationError as exc:
            raise _invalid(exc) from exc
        session.commit()
        click.echo(f"created {user.role} {user.email} for marketplace {store.name}")


@users.command("list")
@click.option("--marketplace", help="Only this marketplace's people.")
def users_list(marketplace):
    """List people: id, marketplace, email, role, last sign-in, sessions signed in now."""
    from sqlalchemy import func, select

    from .models import Marketplace, User, UserSession, utcnow

    db = _database(_settings())
    with db.session() as session:
        live = (
            select(func.count(UserSession.id))
            .where(UserSession.user_id == User.id, UserSession.revoked_at.is_(None), UserSession.expires_at > utcnow())
            .scalar_subquery()
        )
        query = select(User, Marketplace.name, live).join(Marketplace).order_by(Marketplace.name, User.email)
        if marketplace:
            query = query.where(Marketplace.name == marketplace)
        for user, mp, sessions in session.execute(query):
            seen = f"{user.last_sign_in_at:%Y-%m-%d %H:%M}" if user.last_sign_in_at else "never"
            click.echo(f"{user.id}\t{mp}\t{user.email}\t{user.role}\t{seen}\t{sessions} session(s)")


@users.command("passwd")
@click.argument("email")
@click.option(
    "--password", envvar="HOOKYARD_PASSWORD", help="Prompted for when not given (or set HOOKYARD_PASSWORD for scripts)."
)
def users_passwd(email, password):
    """Set a person's password; every session they have is signed out."""
    from marshmallow import ValidationError

    from .accounts import set_password

    with _person(email) as (session, user):
        password = password if password is not None else _ask_password("New password")
        try:
            ended = set_password(session, user, password)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        session.commit()
        click.echo(f"password changed for {user.email}; {ended} session(s) signed out")


def _ask_password(label: str) -> str:
    return click.prompt(label, hide_input=True, confirmation_prompt=True)


@contextmanager
def _person(email):
    """(database session, the person with this email), or a clear error naming the email."""
    from .accounts import find_user

    db = _database(_settings())
    with db.session() as session:
        user = find_user(session, email)
        if user is None:
            raise click.ClickException(f"no user with email {email}")
        yield session, user


@users.command("remove")
@click.argument("email")
def users_remove(email):
    """Remove a person (not a store's last owner); their sessions end at once."""
    from marshmallow import ValidationError

    from .accounts import remove_user

    with _person(email) as (session, user):
        try:
            remove_user(session, user.marketplace_id, user.id)
        except ValidationError as exc:
            raise _invalid(exc) from exc
        session.commit()
        click.echo(f"removed {user.email}")


def _invalid(exc) -> click.ClickException:
    """A ValidationError's per-field messages as one line: `password: This password is too easy to guess. …`."""
    return click.ClickException("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.messages.items()))


@main.group()
def keys():
    """The key that encrypts stored connection secrets."""


@keys.command("rotate")
@click.option("--dry-run", is_flag=True, help="Only count what would be re-encrypted.")
def keys_rotate(dry_run):
    """Re-encrypt every stored secret under SECRET_KEY (reading older ones with HOOKYARD_OLD_SECRET_KEYS)."""
    from sqlalchemy import select, update

    from .crypto import SecretBox
    from .models import Integration

    settings = _settings(uses_secret_key=True)
    db = _database(settings)
    box = SecretBox(settings.secret_key, settings.old_secret_keys)
    rotated, current, unreadable, last_id = 0, 0, [], 0
    while True:
        # A transaction per batch: an edit from the web waits for one batch at most, and an interrupted run keeps
        # its progress. Half-rotated is a fine state to stop in, because every process opens both keys.
        query = (
            select(Integration.id, Integration.secrets)
            .where(Integration.id > last_id, Integration.secrets.is_not(None))
            .order_by(Integration.id)
            .limit(200)
        )
        with db.session() as session, session.begin():
            # Locked (PostgreSQL; SQLite locks the database for the transaction) so an edit saved meanwhile
            # is not overwritten with the secret as it was read.
            rows = session.execute(query if dry_run else query.with_for_update()).all()
            for row_id, token in rows:
                try:
                    new = box.rotate(token)
                except RuntimeError:
                    unreadable.append(row_id)
                    continue
                if new == token:
                    current += 1
                    continue
                rotated += 1
                if not dry_run:
                    # Same updated_at: re-encrypting changes nothing the merchant configured.
                    session.execute(
                        update(Integration)
                        .where(Integration.id == row_id)
                        .values(secrets=new, updated_at=Integration.updated_at)
                    )
        if not rows:
            break
        last_id = rows[-1].id
    click.echo(
        f"{'would re-encrypt' if dry_run else 're-encrypted'} {rotated} integration(s); "
        f"{current} already under SECRET_KEY"
    )
    if unreadable:
        ids = ", ".join(map(str, unreadable[:50]))
        if len(unreadable) > 50:
            ids += f" and {len(unreadable) - 50} more"
        raise click.ClickException(
            f"{len(unreadable)} integration(s) could not be decrypted with SECRET_KEY or HOOKYARD_OLD_SECRET_KEYS "
            f"and were left as they are: {ids}. Add the key they were saved under to HOOKYARD_OLD_SECRET_KEYS "
            "and run this again."
        )


@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head")
def db_upgrade(revision):
    """Apply migrations (the Procfile's release step); on a new install, create the instance first."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from .migrate import upgrade
    from .startup import database_unreachable

    settings = _settings(creates=True)
    new = not os.environ.get("DATABASE_URL") and not settings.instance_path.exists()
    try:
        upgrade(settings.database_url, revision)
    except OperationalError as exc:  # unreachable (or refused us)
        raise click.ClickException(str(database_unreachable(settings.database_url, exc))) from None
    except (SQLAlchemyError, CommandError) as exc:  # a --revision that does not exist, a failed migration
        raise click.ClickException(f"cannot upgrade the database: {getattr(exc, 'orig', None) or exc}") from None
    if not os.environ.get("SECRET_KEY"):
        _ = settings.secret_key  # read, so generated into the instance now, by the command that sets it up
    if new:
        click.echo(f"created a new instance in {settings.instance_path}")
    click.echo("database is at the latest schema")


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option(
    "--fork/--no-fork",
    # Not forking by default: about five times the jobs per second (no fork, warm caches and connections), and a
    # worker that dies mid-job is recovered by its run's lease either way (docs/guarantees.md).
    default=lambda: os.environ.get("HOOKYARD_WORKER_FORK", "0") == "1",
    show_default="no fork, or HOOKYARD_WORKER_FORK=1",
    help="Run each job in the worker itself (the default: no per-job fork, warm caches and connections) or in a "
    "forked child (isolation from a plugin that leaks or crashes the interpreter, at about a fifth of the rate).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 32),
    # Read here rather than in Settings, like --fork: only this command has a use for it.
    default=lambda: os.environ.get("HOOKYARD_WORKER_THREADS", "1"),
    show_default="1, or HOOKYARD_WORKER_THREADS",
    help="Workers in this process, one per thread, without --fork: while one job waits on a slow remote the others "
    "run theirs (docs/operators.md).",
)
def worker(burst, fork, threads):
    """Run the job worker (with the scheduler for delayed triggers and retries)."""
    from sqlalchemy.orm import configure_mappers

    from . import logformat, runtime, startup
    from .worker import work
    from .worker_threads import work_in_threads

    if fork and threads > 1:
        raise click.UsageError("--threads runs the jobs in this process: it cannot be combined with --fork")

    # JSON lines on stdout by default (RQ's loggers too: they log through the root logger once it has a handler).
    logformat.configure(sys.stdout, logformat.chosen())
    # Plugins load here, once: with --fork, before the fork, so each job's child starts with them imported.
    rt = runtime.build_runtime(_settings(uses_secret_key=True))
    try:
        startup.check_database(rt)
        startup.check_redis(rt)
    except startup.ServiceUnreachable as exc:
        raise click.ClickException(str(exc)) from None
    runtime.install(rt)
    # Work every job would otherwise redo in its forked child: configuring the ORM mappers.
    configure_mappers()
    rt.db.dispose()  # with --fork, no pooled connection may cross the fork into a job
    # RQ runs its maintenance, and with it our sweep, first thing: what a dead worker left is recovered.
    if threads > 1:
        work_in_threads(rt, threads, burst)
    else:
        work(rt, fork, burst)


@main.group("rules")
def rules_group():
    """Rules: test one on a sample event."""


@rules_group.command("test")
@click.argument("rule_id", type=int)
@click.option("--live", is_flag=True, help="Run it for real, for --email (logged as a test). Default: a dry-run.")
@click.option("--email", help="The customer to run for: required with --live; replaces the sample's customer.email.")
@click.option(
    "--event", "event_id", type=int, help="A stored event of the rule's store and trigger (default: the example)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (as POST /api/v1/rules/{id}/test).")
def rules_test(rule_id, live, email, event_id, as_json):
    """Test a rule on a sample event: a dry-run lists the calls it would make (reads made, writes not sent, nothing
    stored); --live makes them for one email and logs the test."""
    from marshmallow import ValidationError

    from . import ruletest
    from .models import Rule

    rt = instance_runtime()
    if not rt.settings.redis_url:  # the connection's pacing budget is shared through Redis, with the workers
        raise click.ClickException("REDIS_URL is not set: a test is paced with the workers' calls, through Redis")
    with rt.db.session() as session:
        rule = session.get(Rule, rule_id) if 0 < rule_id else None
        if rule is None:
            raise click.ClickException(f"no rule with id {rule_id}")
        try:
            result = ruletest.run(
                rt, session, rule, ruletest.LIVE if live else ruletest.DRY_RUN, event_id=event_id, email=email
            )
        except ValidationError as exc:
            raise click.ClickException(_refusal(exc.messages)) from None
        except ruletest.Busy as busy:
            raise click.ClickException(
                f"not tested: {busy.reason}; nothing was called, try again in {busy.seconds:.0f} s"
            )
    if as_json:
        click.echo(json.dumps(ruletest.answer(result), indent=2, sort_keys=True))
        return
    sample = "the trigger's example" if result.example else f"event {result.event_id}"
    click.echo(f"rule {result.rule_id}, {result.mode}, on {sample}, for {result.email or 'no email'}:")
    rows = [("METHOD", "URL", "SENT", "STATUS", "BODY")]
    for call in result.calls:
        body = json.dumps(call["body"], sort_keys=True) if call["body"] is not None else "-"
        url = call["url"] + ("?" + "&".join(f"{k}={v}" for k, v in call["query"].items()) if call["query"] else "")
        sent = "sent" if call["sent"] else "would be sent"
        rows.append((call["method"], url, sent, str(call["status"] or "-"), body))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    if not result.calls:
        click.echo("(no remote calls)")
    click.echo(f"outcome: {result.outcome.status}: {result.outcome.reason}")
    if result.run_id is not None:
        click.echo(f"logged as entry {result.run_id}")


def _refusal(messages) -> str:
    """A ValidationError's messages as one line: "email: Required for a live test …"."""
    if isinstance(messages, dict):
        return "; ".join(
            f"{name}: {' '.join(map(str, text)) if isinstance(text, list) else text}" for name, text in messages.items()
        )
    return str(messages)


# --- rules backfill (hookyard.backfill) ---


def _instant(_ctx, _param, value):
    """An ISO 8601 instant; one without a time zone is taken as UTC (said in --help)."""
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or instant (e.g. 2026-01-31T00:00:00Z)") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


@rules_group.command("backfill")
@click.argument("rule_id", type=int)
@click.option(
    "--since", required=True, callback=_instant, help="Events that occurred at or after (ISO 8601; UTC if no zone)."
)
@click.option("--until", callback=_instant, help="…and before (default: now).")
@click.option(
    "--preview",
    is_flag=True,
    help="Print the counts only; start nothing (with --include-store-api a worker reads the store's API to count).",
)
@click.option(
    "--include-store-api",
    is_flag=True,
    help="First read past events from the store's API (SamCart's orders and live subscriptions, with a key); "
    "the counts then come from a worker's read of that API, followed until it ends (Ctrl-C cancels it).",
)
@click.option("--yes", is_flag=True, help="Start without asking.")
def rules_backfill(rule_id, since, until, preview, include_store_api, yes):
    """Apply a rule to past events: one run of this rule per stored event it has not run for, at the connection's
    pace, followed with a progress bar until every run is final (Ctrl-C cancels: its queued runs are skipped).

    The counts come first (--preview prints them only). With --include-store-api they include the past events the
    store's API reports that were never received: a worker reads the API for them (storing and running nothing),
    its progress on stderr; Ctrl-C cancels that read and exits 130."""
    import time
    from datetime import datetime, timezone

    from marshmallow import ValidationError

    from . import backfill, tasks
    from .models import Rule

    rt = instance_runtime()
    until = until or datetime.now(timezone.utc)
    with rt.db.session() as session:
        rule = session.get(Rule, rule_id) if 0 < rule_id <= 2**31 - 1 else None
        if rule is None:
            raise click.ClickException(f"no rule with id {rule_id}")
        try:
            backfill.check(rt, session, rule, since, until, include_store_api)
        except ValidationError as exc:
            raise click.ClickException(_refusal(exc.messages)) from None
        if include_store_api:
            counts = _store_api_preview(rt, session, rule, since, until)
        else:
            counts = backfill.preview(rt, session, rule, since, until).as_result()
        would_run = counts["would_run"]
        click.echo(
            f"rule {rule_id}: {counts['candidates']} past events in range, {would_run} would run, "
            f"{counts['already_run']} already run; stored events reach back to "
            f"{counts['oldest_event_at'] or 'none stored'} "
            f"(kept {counts['retention_days']} days once their log entries are trimmed)" + _store_api_counts(counts)
        )
        if preview or would_run == 0:
            return
        if not yes:
            click.confirm(f"Create {would_run} runs of rule {rule_id}?", abort=True)
        try:
            task = backfill.start(rt, session, rule, since, until, include_store_api)
        except tasks.TaskNotQueued as exc:
            raise click.ClickException(exc.task.message) from None
        click.echo(f"task {task.id}")
        try:
            with click.progressbar(length=max(would_run, 1), label="runs final") as bar:
                shown = 0
                while True:
                    session.refresh(task)
                    summary = backfill.runs_summary(session, task)
                    final = summary["succeeded"] + summary["skipped"] + summary["failed"]
                    bar.length = max(bar.length, sum(summary.values()))  # past events read from the API add runs
                    bar.update(max(0, final - shown))
                    shown = max(shown, final)
                    if backfill.finished(session, task):
                        break
                    session.commit()  # a new snapshot at each poll
                    time.sleep(1)
        except KeyboardInterrupt:
            task = backfill.cancel(rt, session, task)
            summary = backfill.runs_summary(session, task)
            click.echo(f"\ncancelled: {summary['skipped']} runs skipped, {summary['running']} still finishing")
            sys.exit(130)
        click.echo(
            f"task {task.status}: {task.message} runs: "
            + ", ".join(f"{summary[state]} {state}" for state in ("succeeded", "skipped", "failed"))
        )


def _store_api_preview(rt, session, rule, since, until) -> dict:
    """The counts of a backfill that reads the store's API (Preview.as_result): from the rule's preview task, which a
    worker runs, followed until it ends. A preview of this rule already queued or running for another range is
    waited for first, so the counts are this range's. Ctrl-C cancels the task and exits 130."""
    from datetime import timezone

    from . import backfill, tasks

    wanted = {"since": since.astimezone(timezone.utc).isoformat(), "until": until.astimezone(timezone.utc).isoformat()}
    while True:
        try:
            task = backfill.start_preview(rt, session, rule, since, until)
        except tasks.TaskNotQueued as exc:
            raise click.ClickException(exc.task.message) from None
        if task.params == wanted:
            break
        click.echo(
            f"preview task {task.id} of this rule (another range) is queued or running: waiting for it", err=True
        )
        _follow_task(rt, session, task, "preview")
    click.echo(f"preview task {task.id}: reading the store's API", err=True)
    task = _follow_task(rt, session, task, "preview")
    if task.status != "succeeded":
        raise click.ClickException(task.message or f"the preview task {task.status}")
    return task.result


def _follow_task(rt, session, task, what: str):
    """``task`` refreshed each second until it is no longer queued or running, each new message it reports meanwhile
    written to stderr as its own line (readable in a log as on a terminal). Ctrl-C cancels it: exit 130."""
    from . import tasks

    shown = None
    with _ctrl_c_noted() as interrupted:
        while True:
            session.refresh(task)
            if task.status not in tasks.TASK_ACTIVE_STATES:
                return task
            if task.message and task.message != shown:
                click.echo(f"  {task.message}", err=True)
                shown = task.message
            # Ended before waiting: on SQLite an open transaction holds the write lock the worker needs.
            session.commit()
            if interrupted.wait(1):
                break
    task = tasks.cancel(rt, session, task)
    click.echo(f"\n{what} task {task.id} cancelled: {task.message}", err=True)
    sys.exit(130)


class _CtrlC:
    """Ctrl-C noted by a signal handler; ``wait`` sleeps until then, or for ``seconds``. A flag, not a
    threading.Event: the handler runs in the thread that may be inside Event.wait, whose lock set() would need."""

    seen = False

    def wait(self, seconds: float) -> bool:
        import time

        deadline = time.monotonic() + seconds
        while not self.seen and time.monotonic() < deadline:
            time.sleep(0.05)  # a signal ends the sleep early (its handler runs), and the flag is seen at once
        return self.seen


@contextmanager
def _ctrl_c_noted():
    """Ctrl-C as a flag, not a KeyboardInterrupt: raised, it can land anywhere, inside a commit or the write turn's
    bookkeeping (hookyard.db), leaving the session unusable and this process's SQLite write turn held, so the cancel
    that follows would wait forever. The caller checks it between its steps."""
    noted = _CtrlC()

    def note(_signum, _frame):
        noted.seen = True

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


def _store_api_counts(counts: dict) -> str:
    """What the counts' store_api part adds to the line printed (nothing for a preview of stored events only)."""
    api = counts.get("store_api")
    if not api:
        return ""
    return (
        f"; the store's API reports {api['read']} past event{'s' if api['read'] != 1 else ''} of this rule in the "
        f"range, {api['not_stored']} never received"
    )


# --- reconcile (hookyard.reconcile) ---


@main.command("reconcile")
@click.argument("integration_id", type=int)
@click.option(
    "--fix", "fix_what", type=click.Choice(["all"]), help="Then fix every missing and should-be-gone difference."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as JSON (as GET /api/v1/reconcile-reports/{id})."
)
def reconcile_command(integration_id, fix_what, as_json):
    """Check who has access in the integration's app (Circle) against the rules and the store's events, with a
    progress bar while the worker reads the app (Ctrl-C cancels); --fix all then fixes the differences as runs."""
    import time

    from marshmallow import ValidationError

    from . import reconcile, tasks
    from .models import Integration, ReconcileReport, Task

    rt = instance_runtime()
    with rt.db.session() as session:
        integration = session.get(Integration, integration_id) if 0 < integration_id <= 2**31 - 1 else None
        if integration is None:
            raise click.ClickException(f"no integration with id {integration_id}")
        try:
            report = reconcile.start(rt, session, integration)
        except ValidationError as exc:
            raise click.ClickException(_refusal(exc.messages)) from None
        except tasks.TaskNotQueued as exc:
            raise click.ClickException(exc.task.message) from None
        report_id, task_id = report.id, report.task_id
        try:
            with click.progressbar(length=1, label="reading the app", file=sys.stderr) as bar:
                while True:
                    task = session.get(Task, task_id)
                    session.refresh(task)
                    bar.length = max(task.total or 1, task.done, 1)
                    bar.update(task.done - bar.pos)
                    report = session.get(ReconcileReport, report_id)
                    session.refresh(report)
                    report = reconcile.settle(session, report)
                    if report.status != "running":
                        break
                    # Ended before waiting: on SQLite an open transaction holds the write lock the worker needs.
                    session.commit()
                    time.sleep(0.5)
        except KeyboardInterrupt:
            tasks.cancel(rt, session, session.get(Task, task_id))
            click.echo("\ncancelled", err=True)
            sys.exit(130)
        if report.status != "ready":
            raise click.ClickException(
                f"report {report_id} {report.status}: {(report.summary or {}).get('message', '')}"
            )
        fixed = None
        if fix_what == "all":
            fixed = reconcile.fix(rt, session, report, None)
            session.refresh(report)
        out = {**reconcile.report_out(report), "differences": report.differences}
        if fixed is not None:
            out["fixed"] = {"runs": fixed.runs, "skipped": fixed.skipped}
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True, default=str))
        return
    click.echo(f"report {report_id}: {out['message']}")
    for d in out["differences"]:
        target = d["target"]["name"] or d["target"]["type"] + (f" {d['target']['id']}" if d["target"]["id"] else "")
        done = f"  fixed by run {d['fixed']}" if d["fixed"] else ""
        click.echo(f"  {d['id']:>5}  {d['kind']:<14}  {d['email']:<32}  {target}: {d['reason']}{done}")
    if fixed is not None:
        click.echo(f"{len(fixed.runs)} runs queued; {len(fixed.skipped)} differences skipped")


@main.group()
def openapi():
    """The OpenAPI document."""


@openapi.command("write")
@click.argument("path", type=click.Path(dir_okay=False, writable=True), default="openapi.json")
def openapi_write(path):
    """Write the OpenAPI document generated from the code."""
    Path(path).write_text(openapi_document() + "\n")
    click.echo(f"wrote {path}")


def openapi_document() -> str:
    from .app import create_app
    from .db import Database
    from .plugins import load_registry
    from .runtime import Runtime

    settings = Settings.from_env(
        env={"SECRET_KEY": "openapi", "HOOKYARD_INSTANCE_PATH": "/nonexistent"}, database_url="sqlite://"
    )
    rt = Runtime(settings=settings, db=Database("sqlite://"), registry=load_registry(disabled=set()))
    app = create_app(runtime=rt)
    with app.app_context():
        spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return json.dumps(spec, indent=2, sort_keys=True)


@main.command("new-plugin")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Where to create the hookyard-NAME folder.",
)
def new_plugin(name, directory):
    """Create a plugin distribution, hookyard-NAME/: one trigger, one app with one action, tests, README."""
    from .scaffold import ScaffoldError
    from .scaffold import new_plugin as scaffold

    try:
        root = scaffold(name, directory)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {root}")
    click.echo(
        f"next: hookyard plugins install -e '{root}[test]' && python -m pytest {root / 'tests'}   "
        "(docs/plugins/tutorial.md)"
    )


@main.command()
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", 5000)), show_default="$PORT or 5000")
def run(port):
    """Run everything on embedded defaults: migrations, a local Redis when REDIS_URL is unset, web and worker."""
    from . import localredis
    from .migrate import upgrade

    settings = Settings.from_env()
    env = dict(os.environ, PORT=str(port), HOOKYARD_INSTANCE_PATH=str(settings.instance_path))
    # A local run is not a public server. (Not HOST: some shells export it as the machine's name.)
    env.setdefault("HOOKYARD_BIND", "127.0.0.1")
    # honcho SIGKILLs what has not stopped 5 s after Ctrl-C: a job still running hands its run back before that.
    env.setdefault("HOOKYARD_WORKER_STOP_TIMEOUT", "3")
    # Read by a person at a terminal: the text log format, unless the operator chose one.
    env["HOOKYARD_LOG_FORMAT"] = env.get("HOOKYARD_LOG_FORMAT") or "text"
    if "SECRET_KEY" not in os.environ:
        env["SECRET_KEY"] = settings.secret_key  # generated once into the instance folder
    redis_proc = None
    if not settings.redis_url:
        redis_proc, env["REDIS_URL"] = localredis.start(settings.instance_path / "redis")
        click.echo(f"started a local Redis-compatible server at {env['REDIS_URL']}")
    try:
        upgrade(settings.database_url)
        host = "127.0.0.1" if env["HOOKYARD_BIND"] in ("0.0.0.0", "::") else env["HOOKYARD_BIND"]
        click.echo(f"\nHookyard is starting at http://{host}:{port}  (API docs: /api/docs)")
        click.echo("Open it in a browser to create the owner account (with the web UI installed), or create an API")
        click.echo("token with:  .venv/bin/hookyard tokens create\n")
        procfile = Path(__file__).resolve().parents[2] / "Procfile"
        bin_dir = Path(sys.executable).parent
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        honcho = subprocess.Popen([str(bin_dir / "honcho"), "-f", str(procfile), "start", "web", "worker"], env=env)
        # Ctrl-C reaches honcho, web and worker through the terminal's process group (Redis has its own session):
        # wait until they have stopped, however many Ctrl-Cs come meanwhile, and only then stop Redis.
        while True:
            try:
                honcho.wait()
                break
            except KeyboardInterrupt:
                if honcho.poll() is None:
                    honcho.send_signal(signal.SIGINT)  # in case the signal came from `kill -INT`, not the terminal
    except KeyboardInterrupt:
        pass  # Ctrl-C before web and worker started (during the migrations): nothing of theirs to wait for
    finally:
        if redis_proc is not None:
            localredis.stop(redis_proc)
