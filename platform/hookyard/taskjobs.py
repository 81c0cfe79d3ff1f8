"""The jobs behind tasks (hookyard.tasks), enqueued by name with the task's id only, like hookyard.jobs.run_rule."""

from __future__ import annotations

import logging

from . import connections, products, runtime
from .contract import Cancelled, ConnectionFailed
from .models import Integration
from .tasks import TaskFailed
from .tasks import run as run_task

log = logging.getLogger(__name__)


def refresh_integration(task_id: int) -> str:
    """Re-verifies the connection and reloads its option lists, reporting progress on the task."""
    rt = runtime.current()

    def work(session, task, progress) -> str:
        integration = session.get(Integration, task.target_id)
        if integration is None or integration.marketplace_id != task.marketplace_id:
            raise TaskFailed("The integration was deleted before it could be refreshed.")
        try:
            integration = connections.refresh(rt, session, integration, progress=progress)
        except connections.VerificationFailed as exc:
            raise TaskFailed(exc.reason) from exc
        except connections.IntegrationGone as exc:
            raise TaskFailed("The integration was deleted while it was being refreshed.") from exc
        session.commit()
        lists = integration.options or {}
        # The lists are named in the plural ("space_groups"); one of a kind drops the "s" ("1 space group").
        counts = ", ".join(
            f"{len(items)} {name.replace('_', ' ').removesuffix('s' if len(items) == 1 else '')}"
            for name, items in sorted(lists.items())
            if isinstance(items, list)
        )
        return f"“{integration.name}” refreshed{': ' + counts if counts else ''}."

    return run_task(rt, task_id, work)


def import_products(task_id: int) -> str:
    """Imports the store's products through the app's ``products`` pages, saving each page before asking for the
    next (no transaction stays open while the app asks its remote), and reporting the count so far."""
    rt = runtime.current()

    def work(session, task, progress) -> str:
        integration = session.get(Integration, task.target_id)
        if integration is None or integration.marketplace_id != task.marketplace_id:
            raise TaskFailed("The integration was deleted before its products could be imported.")
        app = connections.app_for(rt, integration.app)
        if app.products is None:
            raise TaskFailed(f"The {app.name} app cannot list products.")
        config, info, name = connections.full_config(rt, integration), dict(integration.info or {}), integration.name
        session.commit()
        done = added = renamed = 0
        progress(0, None, f"Asking {app.name} for its products.")
        try:
            for page in app.products(config, info):
                page = list(page or [])
                new, changed = products.upsert(session, task.marketplace_id, page)
                session.commit()
                done, added, renamed = done + len(page), added + new, renamed + changed
                progress(done, None, f"{done} products read so far ({added} new).")
        except Cancelled:
            raise
        except ConnectionFailed as exc:
            raise TaskFailed(f"{exc.message} ({done} products were imported before that.)") from exc
        except Exception as exc:  # a plugin bug: the task says so, the log has the traceback
            log.exception("app %s failed while listing products", app.key)
            raise TaskFailed(
                f"The {app.name} plugin failed while listing products ({exc.__class__.__name__}); "
                f"the worker's log has the details. {done} were imported before that."
            ) from exc
        progress(done, done, "Done.")
        return (
            f"{done} products imported into “{name}”'s store: {added} new, {renamed} renamed, "
            f"{done - added - renamed} unchanged."
        )

    return run_task(rt, task_id, work)
