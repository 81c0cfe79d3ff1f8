"""``hookyard samcart …``: the SamCart app's commands (hookspecs.register_commands)."""

from __future__ import annotations

import time

import click

POLL_EVERY = 0.5  # seconds between looks at the task: a person is watching a progress bar


@click.group("samcart")
def samcart():
    """The SamCart app: import products."""


@samcart.command("import-products")
@click.option("--marketplace", required=True, help="The store (marketplace) name.")
@click.option(
    "--integration", "integration_ref", help="The SamCart connection's id or name (needed when the store has several)."
)
def import_products(marketplace, integration_ref):
    """Import the store's products from SamCart's API, with a progress bar.

    The import runs in the worker (as POST /api/v1/integrations/{id}/products/import does), so the server's worker
    must be running; Ctrl-C cancels it. Running it again adds nothing twice."""
    from sqlalchemy import select

    from hookyard import connections, tasks
    from hookyard.cli import instance_runtime
    from hookyard.models import Integration, Marketplace, Task

    rt = instance_runtime()  # no instance or an uninitialised database: a clear error, not a traceback
    with rt.db.session() as session:
        store = session.scalar(select(Marketplace).where(Marketplace.name == marketplace))
        if store is None:
            raise click.ClickException(f"no marketplace named {marketplace!r}")
        found = list(
            session.scalars(
                select(Integration)
                .where(Integration.marketplace_id == store.id, Integration.app == "samcart")
                .order_by(Integration.id)
            )
        )
        if integration_ref:
            found = [i for i in found if str(i.id) == integration_ref or i.name == integration_ref]
        if not found:
            raise click.ClickException(
                f"{marketplace!r} has no SamCart connection"
                + (f" {integration_ref!r}" if integration_ref else "")
                + "; connect SamCart first (web UI or POST /api/v1/integrations)."
            )
        if len(found) > 1:
            names = ", ".join(f"{i.id} ({i.name})" for i in found)
            raise click.ClickException(
                f"{marketplace!r} has several SamCart connections: {names}; choose one with --integration"
            )
        try:
            task = connections.start_import_products(rt, session, found[0])
        except tasks.TaskNotQueued as exc:
            raise click.ClickException(exc.task.message) from exc
        task_id = task.id
    click.echo(f"task {task_id}: importing products into “{found[0].name}” (waiting for the worker)")
    try:
        task = _follow(rt, task_id)
    except KeyboardInterrupt:
        with rt.db.session() as session:
            tasks.cancel(rt, session, session.get(Task, task_id))
        raise click.ClickException(f"cancelled task {task_id}")
    click.echo(task.message)
    if task.status != "succeeded":
        raise SystemExit(1)


def _follow(rt, task_id: int):
    """Shows the task's count as a progress bar until it ends; returns the finished task."""
    from hookyard.models import Task

    shown = 0
    with click.progressbar(length=0, label="products", show_pos=True, show_percent=False) as bar:
        while True:
            with rt.db.session() as session:
                task = session.get(Task, task_id)
            if task.done > shown:
                bar.length = max(bar.length or 0, task.total or 0, task.done)
                bar.update(task.done - shown)
                shown = task.done
            if task.status not in ("queued", "running"):
                return task
            time.sleep(POLL_EVERY)  # polling a database row a person is waiting on; nothing to wait on instead
