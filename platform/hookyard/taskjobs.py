"""The jobs behind tasks (hookyard.tasks), enqueued by name with the task's id only, like hookyard.jobs.run_rule."""
from __future__ import annotations

from . import connections, runtime
from .models import Integration
from .tasks import TaskFailed
from .tasks import run as run_task


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
        counts = ", ".join(f"{len(items)} {name.replace('_', ' ')}" for name, items in sorted(lists.items())
                           if isinstance(items, list))
        return f"“{integration.name}” refreshed{': ' + counts if counts else ''}."

    return run_task(rt, task_id, work)
