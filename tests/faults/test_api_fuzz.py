"""A fuzzing pass over the OpenAPI document (schemathesis) against a running server: no 5xx, and every answer
is one the document describes, with the body its schema describes.

Generation is derandomized; it also follows the order of string hashing, so `PYTHONHASHSEED=0` replays a run
request for request."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from hookyard.models import Run

from ..conftest import purchase
from ..web.browser import serve

# Per operation and run: about 2,000 requests, under a minute on two cores.
EXAMPLES = 50
# response_headers_conformance is not among them: flask-smorest documents X-Pagination, a JSON text, as a
# "simple"-style object header, which the check (like any client reading the document) splits at the commas.
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance,
          negative_data_rejection]
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                         # No shrinking: problems are collected rather than raised, one report for each kind.
                         phases=[Phase.generate],
                         # The server is across a socket: slow examples are its time, not a bad strategy.
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much, HealthCheck.large_base_example])


def _seed(setup, api, runtime, n: int) -> dict[str, int]:
    """One of every object, so generated requests can reach real ones (their ids are substituted below)."""
    integration = setup.integration(name=f"Recorder {n}")
    product = setup.product(external_id=f"fuzz-{n}")
    setup.rule(integration)
    rule = setup.rule(integration, product_id=product)
    event = setup.emit(purchase(product_id=f"fuzz-{n}"))
    entry = api.get(f"/api/v1/events/{event['id']}").json["runs"][0]["id"]
    # Failed, as a worker would leave it, so that retrying it takes the 202 path rather than the 409.
    with runtime.db.session() as s:
        run = s.get(Run, entry)
        now = datetime.now(timezone.utc)
        run.status, run.reason, run.attempts, run.finished_at = "failed", "the app answered 500", 1, now
        run.history = [{"attempt": 1, "started_at": now.isoformat(), "finished_at": now.isoformat(),
                        "status": "failed", "reason": "the app answered 500", "retryable": False, "details": {}}]
        s.commit()
    return {"integration_id": integration, "product_id": product, "rule_id": rule, "event_id": event["id"],
            "entry_id": entry}


def _path_values(operation, ids: dict[str, int]) -> dict:
    """The seeded object (or the catalog entry) each path parameter can name."""
    catalog = {"key": "samcart.product_purchased" if "/triggers/" in operation.path else "recorder"}
    values = {**ids, **catalog}
    missing = [p.name for p in operation.path_parameters if p.name not in values]
    assert not missing, f"{operation.label}: no seeded object for {missing}; add one to _seed"
    return {p.name: values[p.name] for p in operation.path_parameters}


def _negatable(operation) -> bool:
    """Whether anything but the (fixed) token and path is there for negative generation to break."""
    return bool(operation.body or operation.query or [h for h in operation.headers if h.name != "Authorization"])


def test_fuzzing_the_openapi_document_finds_no_server_error_and_no_schema_violation(app, api, setup, runtime, figures):
    auth = {"Authorization": f"Bearer {api.token}"}
    statuses: Counter = Counter()
    violations = 0  # responses failing a check other than not_a_server_error
    failures: dict[tuple, str] = {}
    operations = 0
    with serve(app) as server, requests.Session() as http:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # Fresh objects for each operation: the previous one may have deleted or retried them.
            real = _path_values(operation, _seed(setup, api, runtime, operations))
            runs = [(GenerationMode.POSITIVE, real)]
            if _negatable(operation):
                runs.append((GenerationMode.NEGATIVE, real))
            if real:
                # Generated path values too: mostly unknown ids (404), and the extremes an integer schema allows.
                runs.append((GenerationMode.POSITIVE, {}))
            for mode, path_parameters in runs:
                # The token is fixed, so that negative cases reach the handler instead of stopping at a 401.
                strategy = operation.as_strategy(generation_mode=mode, headers=auth,
                                                 path_parameters=path_parameters or None)

                @FUZZ_SETTINGS
                @given(strategy)
                def fuzz(case):
                    nonlocal violations
                    response = case.call(base_url=server.url, session=http, headers=auth)
                    statuses[response.status_code] += 1
                    try:
                        case.validate_response(response, checks=CHECKS, headers=auth)
                    except FailureGroup as group:
                        violations += any(not isinstance(f, ServerError) for f in group.exceptions)
                        for failure in group.exceptions:
                            # One report per kind of problem, with the first request that showed it.
                            key = (case.operation.label, failure.title, response.status_code)
                            failures.setdefault(key, f"{case.as_curl_command(headers=auth)}\n"
                                                     f"-> {response.status_code} {response.text[:500]}\n"
                                                     f"{failure.message[:1000]}")

                fuzz()

    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    figures.update(operations=operations, cases=sum(statuses.values()), server_errors=server_errors,
                   schema_violations=violations, statuses=dict(sorted(statuses.items())))
    routes = sum(len(rule.methods - {"HEAD", "OPTIONS"}) for rule in app.url_map.iter_rules()
                 if rule.rule.startswith("/api/v1/"))
    assert operations == routes, f"the document has {operations} operations for {routes} /api/v1 routes and methods"
    assert not failures, f"{len(failures)} problem(s):\n\n" + "\n\n".join(
        f"{label}: {title} ({status})\n{detail}" for (label, title, status), detail in sorted(failures.items()))
