"""``hookyard webhook …``: the Webhook app's commands (hookspecs.register_commands).

The core keeps secret fields write-only: every read (API, UI) masks them. The secret Hookyard generates is shown
once, in the answer to the create (``revealed_secrets``, the UI's banner); this command is for after that: it shows
it, or replaces it (``--new``: the rotation), to someone with a shell on the server, who can read every secret anyway
(they hold SECRET_KEY)."""

from __future__ import annotations

import click


@click.group("webhook")
def webhook():
    """The Webhook app: read or replace a connection's signing secret."""


@webhook.command("secret")
@click.argument("integration_id", type=int)
@click.option(
    "--new",
    "rotate",
    is_flag=True,
    help="Replace it with a freshly generated secret first (the "
    "receiver must be given the new one: the old one stops working).",
)
def secret(integration_id, rotate):
    """Print the signing secret of Webhook connection INTEGRATION_ID, for its receiver to verify signatures with."""
    from marshmallow import ValidationError

    from hookyard import connections
    from hookyard.cli import instance_runtime
    from hookyard.models import Integration

    from .signing import new_secret

    rt = instance_runtime()  # no instance or an uninitialised database: a clear error, not a traceback
    with rt.db.session() as session:
        integration = session.get(Integration, integration_id)
        if integration is None or integration.app != "webhook":
            raise click.ClickException(f"no Webhook connection with id {integration_id}")
        if rotate:
            try:  # an edit like any other: re-verified (the URL checked by the guard again), then saved
                connections.update(rt, session, integration, None, {"secret": new_secret()})
            except ValidationError as exc:
                raise click.ClickException(f"the connection was not changed: {exc.messages}") from exc
            session.commit()
        click.echo(connections.full_config(rt, integration)["secret"])
