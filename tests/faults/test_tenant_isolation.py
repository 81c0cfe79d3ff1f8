"""With two marketplaces, every /api/v1 route tried with the other marketplace's ids answers 404 and changes
nothing. The routes come from the app's url_map, so a route added later is tried without editing this test,
and one taking an id this test cannot supply fails it until it learns to."""

from __future__ import annotations

import itertools
import re

from sqlalchemy import func, select

from hookyard.models import Base, Integration, ReconcileReport

from ..conftest import Setup, purchase

TRIED_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")

# Routes whose arguments name what the installed plugins provide, the same for every marketplace:
# there is nothing of another marketplace's to reach through them. Listed by rule, not by argument name,
# so a marketplace-owned route that happens to take a `key` is still tried (and fails the guard).
SHARED_CATALOG = {"/api/v1/triggers/<string:key>", "/api/v1/apps/<string:key>"}

# A body the route accepts, so that the answer is decided by ownership rather than by a 422 for the body.
# Keyed by (rule, method); a route that takes a body and is missing here fails the test.
BODIES = {
    ("/api/v1/integrations/<int:integration_id>", "PATCH"): {"name": "Renamed by the other store"},
    ("/api/v1/products/<int:product_id>", "PATCH"): {"name": "Renamed by the other store"},
    # Kept enabled: the routes tried after it (a test, a backfill) need an enabled rule in the control below.
    ("/api/v1/rules/<int:rule_id>", "PATCH"): {"enabled": True, "params": {"channel": "vip"}},
    ("/api/v1/rules/<int:rule_id>/backfill", "POST"): {
        "since": "2026-01-01T00:00:00Z",
        "until": "2026-01-02T00:00:00Z",
    },
    ("/api/v1/rules/<int:rule_id>/test", "POST"): {"mode": "live", "email": "ada@example.com"},
    ("/api/v1/reconcile-reports/<int:report_id>/fix", "POST"): {"all": True},
}
# Routes whose own-id request the test apps cannot carry out, answered 422 for that (the inbox app reads no members).
REFUSED_FOR_TEST_APPS = {("/api/v1/integrations/<int:integration_id>/reconcile", "POST")}
NO_BODY = {
    ("/api/v1/integrations/<int:integration_id>/refresh", "POST"),
    ("/api/v1/integrations/<int:integration_id>/inbound-url/rotate", "POST"),
    ("/api/v1/integrations/<int:integration_id>/products/import", "POST"),
    ("/api/v1/integrations/<int:integration_id>/deliveries/<int:delivery_id>/reprocess", "POST"),
    ("/api/v1/logs/<int:entry_id>/retry", "POST"),
    ("/api/v1/tasks/<int:task_id>/cancel", "POST"),
    ("/api/v1/integrations/<int:integration_id>/reconcile", "POST"),
}


def _routes(app):
    """(rule, method) for every /api/v1 route with arguments, the shared catalog left out."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or not rule.arguments or rule.rule in SHARED_CATALOG:
            continue
        for method in sorted(set(TRIED_METHODS) & rule.methods):
            found.append((rule, method))
    # Deletions last: a leaking DELETE would otherwise hide what a leaking GET or PATCH does.
    return sorted(found, key=lambda rm: rm[1] == "DELETE")


def _body_for(rule, method):
    key = (rule.rule, method)
    if key in BODIES:
        return BODIES[key]
    if key in NO_BODY or method in ("GET", "DELETE"):
        return None
    raise AssertionError(
        f"{method} {rule.rule} is new: add a valid body to BODIES (or it to NO_BODY), so a "
        "422 for the body cannot hide a missing ownership check"
    )


def _path(rule, ids: dict) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(ids[m.group(1)]), rule.rule)


def _objects(setup: Setup, client, runtime) -> dict[str, list[int]]:
    """One of every object in a marketplace, by the name its id has in a route."""
    integration = setup.integration()
    product = setup.product()
    global_rule = setup.rule(integration)
    product_rule = setup.rule(integration, product_id=product)
    event = setup.emit(purchase())
    # Both rules match the purchase: no worker runs, so the two runs stay queued log entries.
    entries = [run["id"] for run in client.get(f"/api/v1/events/{event['id']}").json["runs"]]
    assert len(entries) == 2, entries
    # A refresh task; with no worker running it stays queued.
    task = client.post(f"/api/v1/integrations/{integration}/refresh")
    assert task.status_code == 202, task.json
    # A connection that receives webhooks, first (routes that need one are tried with it), with a delivery that
    # stays received (no worker runs).
    inbox = client.post("/api/v1/integrations", json={"app": "inbox", "name": "Inbox", "config": {}}).json
    posted = client._client.post("/" + inbox["inbound_url"].split("/", 3)[3], json={"events": []})
    assert posted.status_code == 200, posted.json
    # A reconciliation report, ready with one difference to fix (written as the task would: the test app reads no
    # members, so no check can be started through the API).
    with runtime.db.session() as s:
        report = ReconcileReport(
            marketplace_id=s.scalar(select(Integration.marketplace_id).where(Integration.id == integration)),
            integration_id=integration,
            status="ready",
            differences=[
                {
                    "id": 1,
                    "kind": "missing",
                    "email": "ada@example.com",
                    "rule_id": global_rule,
                    "event_id": event["id"],
                    "fixed": None,
                }
            ],
        )
        s.add(report)
        s.commit()
        report_id = report.id
    return {
        "integration_id": [inbox["id"], integration],
        "product_id": [product],
        "rule_id": [global_rule, product_rule],
        "event_id": [event["id"]],
        "entry_id": entries,
        "task_id": [task.json["id"]],
        "delivery_id": [posted.json["delivery_id"]],
        "report_id": [report_id],
    }


def _snapshot(client, runtime, objects: dict[str, list[int]]) -> dict:
    """What the marketplace's own client sees, plus the row count of every table."""
    seen = {}
    for listing in ("integrations", "products", "rules", "events", "logs"):
        r = client.get(f"/api/v1/{listing}")
        seen[listing] = (r.status_code, r.json)
    single = {
        "integration_id": "integrations",
        "product_id": "products",
        "rule_id": "rules",
        "event_id": "events",
        "entry_id": "logs",
        "task_id": "tasks",
        "report_id": "reconcile-reports",
    }
    for name, ids in objects.items():
        for object_id in ids:
            if name == "delivery_id":  # under the connection that received it
                r = client.get(f"/api/v1/integrations/{objects['integration_id'][0]}/deliveries/{object_id}")
                seen[f"{name}={object_id}"] = (r.status_code, r.json)
                continue
            r = client.get(f"/api/v1/{single[name]}/{object_id}")
            seen[f"{name}={object_id}"] = (r.status_code, r.json)
    with runtime.db.session() as s:
        seen["rows"] = {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
    return seen


def test_every_route_with_another_marketplaces_ids_is_404_and_changes_nothing(
    app, api, make_client, recorder, runtime, figures
):
    store_b = make_client("store-b")
    b = _objects(Setup(store_b, recorder), store_b, runtime)
    mine = _objects(Setup(api, recorder), api, runtime)
    routes = _routes(app)
    assert routes, "no /api/v1 route takes an id: the url_map is not what this test expects"
    for rule, _ in routes:
        unknown = set(rule.arguments) - set(b)
        assert not unknown, (
            f"{rule.rule} takes {sorted(unknown)}, which this test has no object for: create one "
            "in _objects so the route is tried with another marketplace's id"
        )

    before = _snapshot(store_b, runtime, b)
    assert all(v[0] == 200 for k, v in before.items() if k != "rows"), before
    answers, tried = [], []
    for rule, method in routes:
        body = _body_for(rule, method)
        names = sorted(rule.arguments)
        for values in itertools.product(*(b[n] for n in names)):
            path = _path(rule, dict(zip(names, values, strict=True)))
            r = getattr(api, method.lower())(path, **({"json": body} if body is not None else {}))
            answers.append((method, path, r.status_code, r.get_json(silent=True)))
        tried.append(f"{method} {rule.rule}")
    after = _snapshot(store_b, runtime, b)

    wrong = [
        (m, p, status, body)
        for m, p, status, body in answers
        if status != 404
        or not isinstance(body, dict)
        or body.get("code") != 404
        or body.get("status") != "Not Found"
        or not body.get("message")
    ]
    changed = sorted(k for k in before if before[k] != after[k])
    assert not wrong and not changed, (
        "answered something else than the API's 404:\n"
        + "\n".join(map(str, wrong))
        + f"\nand changed store-b's {changed}"
    )

    # The control: the same requests with the caller's own ids do reach the object (anything but a 404 or a
    # 422), so the 404s above are the ownership check and not a route that is broken for everyone.
    # Deletions come last, so every request finds its object.
    for rule, method in routes:
        body = _body_for(rule, method)
        names = sorted(rule.arguments)
        path = _path(rule, {n: mine[n][0] for n in names})
        r = getattr(api, method.lower())(path, **({"json": body} if body is not None else {}))
        if (rule.rule, method) in REFUSED_FOR_TEST_APPS and r.status_code == 422:
            continue  # it found the object and refused what the test apps cannot do (not a 404)
        assert r.status_code not in (404, 422) and r.status_code < 500, (method, path, r.status_code, r.json)

    figures.update(
        routes_tried=len({rule.rule for rule, _ in routes}),
        route_methods=len(tried),
        requests=len(answers),
        answered_404=sum(status == 404 for _, _, status, _ in answers),
        changes=len(changed),
    )
