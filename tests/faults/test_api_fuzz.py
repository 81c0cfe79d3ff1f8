"""A fuzzing pass over the OpenAPI document (schemathesis) against a running server: no 5xx, and every answer
is one the document describes, with the body, headers and status its schema describes.

Three kinds of request, for every operation:
- fuzzing: valid and invalid requests generated from the document (schemathesis' fuzzing phase);
- coverage: schemathesis' deterministic boundary cases (its coverage phase): missing and extra fields, a
  missing body, methods the document does not declare, values at and past each documented limit;
- hostile values (strategies below) put into valid requests, anywhere a JSON body or a query string holds a
  value: nesting far past any limit, lone surrogates, integers too long for Python to convert, NaN and
  Infinity, and instants at the ends of the calendar. These are valid for the document (a payload or a name is
  "any object", "any string"), so the generated requests never hold them; each once answered 500 (issue 9).

Generation is derandomized; it also follows the order of string hashing, so `PYTHONHASHSEED=0` replays a run
request for request."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import jsonschema_rs
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import GenerationConfig
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from hookyard.models import ReconcileReport, Run

from ..conftest import purchase
from ..recorder import TOKEN
from ..web.browser import serve

# In all: about 2,100 generated requests, 1,100 coverage cases and 500 hostile ones, under a minute per database
# on two cores.
EXAMPLES = 50  # per operation and generation run
HOSTILE_EXAMPLES = 10  # per operation and kind of hostile value


@schemathesis.check
def json_header_conformance(ctx, response, case):
    """A header documented as JSON content (X-Pagination) must be JSON matching its schema.
    response_headers_conformance validates only headers documented with a `schema`."""
    raw = case.operation.schema.raw_schema
    operation = raw["paths"][case.operation.path][case.operation.method.lower()]
    documented = operation["responses"].get(str(response.status_code), {})
    for name, header in documented.get("headers", {}).items():
        schema = header.get("content", {}).get("application/json", {}).get("schema")
        value = response.headers.get(name.lower())
        if schema is None or not value:
            continue
        try:
            parsed = json.loads(value[0])
        except ValueError:
            raise AssertionError(f"{name} is documented as JSON, but is not: {value[0]!r}") from None
        errors = [
            e.message
            for e in jsonschema_rs.validator_for({**schema, "components": raw["components"]}).iter_errors(parsed)
        ]
        assert not errors, f"{name} does not match its documented schema: {errors}"


# Every check schemathesis has for a single response. Not those that send more requests of their own (a resource
# after its DELETE, the request again without or with another token): tests/test_auth_tenancy.py and
# tests/faults/test_tenant_isolation.py test authentication and tenancy directly.
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    json_header_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
]
# A hostile request is generated valid and then made invalid on purpose: the two checks that judge a request by
# its generation mode do not apply; what it must get is checked directly (a 4xx).
HOSTILE_CHECKS = [c for c in CHECKS if c not in (negative_data_rejection, positive_data_acceptance)]

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: problems are collected rather than raised, one report for each kind.
    phases=[Phase.generate],
    # The server is across a socket: slow examples are its time, not a bad strategy.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
HOSTILE_SETTINGS = settings(FUZZ_SETTINGS, max_examples=HOSTILE_EXAMPLES)


# -- hostile values ---------------------------------------------------------------------------------------------


class Raw(str):
    """JSON text put into the body as it is: json.dumps cannot write 1,000 levels or 5,000 digits."""


def _nesting(levels: int, opener: str) -> Raw:
    if opener == "[":
        return Raw("[" * levels + "]" * levels)
    return Raw('{"a": ' * levels + "1" + "}" * levels)


END, START = datetime.max.replace(microsecond=0), datetime.min
# Seconds from an end of the calendar: mostly close to it.
NEAR = st.one_of(st.integers(0, 60), st.integers(0, 3 * 3600), st.integers(0, 2 * 86400))
OFFSET = st.integers(-14 * 60, 14 * 60)  # minutes; offsets go up to 14 hours


def _written(local: datetime, minutes: int) -> str:
    offset = "Z" if minutes == 0 else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
    return local.isoformat() + offset


def _without_utc_instant(at_end: bool, distance: int, beyond: int) -> str:
    """A local time near an end, at an offset that puts its UTC instant past it (e.g. 9999-12-31T23:59:59-14:00)."""
    local = END - timedelta(seconds=distance) if at_end else START + timedelta(seconds=distance)
    minutes = min(14 * 60, distance // 60 + beyond)
    return _written(local, -minutes if at_end else minutes)


def _near_the_end(distance: int, minutes: int) -> str:
    """A real instant shortly before the last one, in any offset: a trigger's delay can take it past the end."""
    instant = END - timedelta(seconds=distance)
    try:
        return _written(instant + timedelta(minutes=minutes), minutes)
    except OverflowError:
        return _written(instant, 0)


HOSTILE = {
    # Past the limit (32 levels), past the parser's recursion limit (~1,000), and far past it.
    "nesting": st.builds(
        _nesting, st.one_of(st.integers(33, 1200), st.integers(1200, 20_000)), st.sampled_from(["[", "{"])
    ),
    "lone surrogates": st.builds(
        lambda a, s, b: a + s + b,
        st.text(max_size=8),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
        st.text(max_size=8),
    ),
    # Past 64 bits, and past Python's int-string conversion limit (4,300 digits).
    "long integers": st.one_of(
        st.integers(2**63, 10**30).map(str),
        st.integers(-(10**30), -(2**63) - 1).map(str),
        st.integers(4300, 6000).map(lambda n: "7" * n),
    ).map(Raw),
    "non-finite numbers": st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]).map(Raw),
    # Instants with no UTC equivalent, and instants a delay away from the last one.
    "extreme instants": st.one_of(
        st.builds(_without_utc_instant, st.booleans(), NEAR, st.integers(1, 14 * 60)),
        st.builds(_near_the_end, NEAR, st.one_of(st.just(0), OFFSET)),
    ),
}
# Refused wherever they are put (the instants only where a date-time is read).
ALWAYS_REFUSED = {"nesting", "lone surrogates", "long integers", "non-finite numbers"}
QUERY_KINDS = ("long integers", "extreme instants")  # the others cannot be sent in a URL at all
PLACEHOLDER = "\x1e-hostile-\x1e"


def _paths(value, prefix=()) -> list[tuple]:
    """Every place in a JSON value that holds a value, and a new key in every object."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        found.append((*prefix, "x-hostile"))
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _put(value, path: tuple, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _put(value.get(head), rest, new)}
    items = list(value)
    items[head] = _put(items[head], rest, new)
    return items


def _hostile_body(body, path: tuple, value) -> str:
    text = json.dumps(_put(body, path, PLACEHOLDER))
    return text.replace(json.dumps(PLACEHOLDER), value if isinstance(value, Raw) else json.dumps(value))


# -- the objects requests name ------------------------------------------------------------------------------------


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
        run.history = [
            {
                "attempt": 1,
                "started_at": now.isoformat(),
                "finished_at": now.isoformat(),
                "status": "failed",
                "reason": "the app answered 500",
                "retryable": False,
                "details": {},
            }
        ]
        s.commit()
    # A task (queued: no worker runs here), started the way a client starts one: a refresh answers 202 with it.
    refresh = api.post(f"/api/v1/integrations/{integration}/refresh")
    assert refresh.status_code == 202, refresh.json
    task = int(refresh.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    # A connection that receives webhooks, with one delivery (received: no worker runs here).
    inbox = api.post("/api/v1/integrations", json={"app": "inbox", "name": f"Inbox {n}", "config": {}}).json
    posted = api._client.post("/" + inbox["inbound_url"].split("/", 3)[3], json={"events": []})
    assert posted.status_code == 200, posted.json
    # A reconciliation report, ready, with one difference (written as its task would: the recorder app reads no
    # members, so no check can be started through the API).
    with runtime.db.session() as s:
        report = ReconcileReport(
            marketplace_id=s.get(Run, entry).marketplace_id,
            integration_id=integration,
            status="ready",
            differences=[
                {
                    "id": 1,
                    "kind": "missing",
                    "email": "ada@example.com",
                    "rule_id": rule,
                    "event_id": event["id"],
                    "fixed": None,
                }
            ],
        )
        s.add(report)
        s.commit()
        report_id = report.id
    return {
        "report_id": report_id,
        "integration_id": integration,
        "product_id": product,
        "rule_id": rule,
        "event_id": event["id"],
        "entry_id": entry,
        "task_id": task,
        "delivery_id": posted.json["delivery_id"],
        "inbox_id": inbox["id"],
        "inbox_key": inbox["inbound_url"].rsplit("/", 1)[1],
    }


# Routes about what an inbound URL receives (and a store's product import) are tried on the inbox connection.
INBOUND_ROUTES = ("/deliveries", "/inbound-url/", "/products/import")


def _path_values(operation, ids: dict[str, int]) -> dict:
    """The seeded object (or the catalog entry) each path parameter can name."""
    catalog = {"key": "samcart.product_purchased" if "/triggers/" in operation.path else "recorder"}
    values = {**ids, **catalog}
    if any(part in operation.path for part in INBOUND_ROUTES):
        values["integration_id"] = ids["inbox_id"]
    values.update(app="inbox", key=ids["inbox_key"])  # the inbound URL, /hooks/{app}/{key}
    missing = [p.name for p in operation.path_parameters if p.name not in values]
    assert not missing, f"{operation.label}: no seeded object for {missing}; add one to _seed"
    return {p.name: values[p.name] for p in operation.path_parameters}


def real_purchase(n: int) -> dict:
    return purchase(
        product_id=f"fuzz-{n}", occurred_at="2026-01-01T12:00:00+02:00", order={"id": 1000 + n, "total_cents": 4900}
    )


class RealValues:
    """Body fields whose valid values are what exists on this server (an installed trigger or app, a seeded
    object) or what a plugin's own schema accepts (a payload, a config, parameters), and names that must be
    unique. The document cannot list them, so a positive case gets real ones, as path parameters do; a
    negative case keeps what was generated."""

    def __init__(self, runtime, recorder, ids, n, names):
        self.triggers = sorted(runtime.registry.trigger_types)
        # A rule for a product takes only a trigger that names one.
        self.product_triggers = sorted(k for k, t in runtime.registry.trigger_types.items() if t.product_scoped)
        self.delayed = sorted(k for k, t in runtime.registry.trigger_types.items() if t.delay)
        self.recorder, self.ids, self.n, self.names = recorder, ids, n, names

    def substitute(self, case, draw=None, delayed=False) -> None:
        if not isinstance(case.body, dict):
            return
        if case.path.startswith("/hooks/"):
            # Any object the store sends: the app's own body, as the inbox test app reads it. (Generated keys may
            # hold NUL, which no database stores; the document cannot say so, as OpenAPI 3.0 has no propertyNames.)
            case.body = {"events": [{"trigger": "samcart.product_purchased", "payload": real_purchase(self.n)}]}
            return
        body = dict(case.body)
        pick = (lambda options: draw(st.sampled_from(options))) if draw else (lambda options: options[0])
        is_rule = case.path.startswith("/api/v1/rules")
        real = {
            "trigger": pick(
                self.delayed if delayed and self.delayed else self.product_triggers if is_rule else self.triggers
            ),
            "payload": real_purchase(self.n),
            "app": "recorder",
            "config": {"endpoint": self.recorder.url, "token": TOKEN},
            "action": "record",
            "params": {"channel": "general"},
            "integration_id": self.ids["integration_id"],
            "product_id": self.ids["product_id"],
            "differences": [1],  # the seeded report's one difference
        }
        for key in body.keys() & real.keys():
            body[key] = real[key]
        if is_rule and case.method == "POST":
            # Optional in the document ({} by default), required by the action's own schema.
            body.setdefault("params", real["params"])
        if case.path.startswith("/api/v1/integrations") and isinstance(body.get("name"), str):
            # Unique per marketplace: a repeated one is refused, and generation repeats its simplest examples.
            body["name"] = f"{next(self.names)} {body['name']}"[:200]
        case.body = body


def _instant_fields(schema, operation) -> set[str]:
    """Body fields documented as date-time, and the payload's occurred_at (the contract's conventional key)."""
    raw = schema.raw_schema
    node = raw["paths"][operation.path][operation.method.lower()].get("requestBody", {})
    node = node.get("content", {}).get("application/json", {}).get("schema", {})
    while "$ref" in node:
        node = raw["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return {k for k, v in node.get("properties", {}).items() if v.get("format") == "date-time"} | {"occurred_at"}


# -- the run ------------------------------------------------------------------------------------------------------


def test_fuzzing_the_openapi_document_finds_no_server_error_and_no_schema_violation(
    app, api, setup, runtime, recorder, figures
):
    auth = {"Authorization": f"Bearer {api.token}"}
    statuses: Counter = Counter()
    cases: Counter = Counter()  # by kind: fuzzing, coverage, hostile
    hostile_kinds: Counter = Counter()
    violations = 0  # responses failing a check other than not_a_server_error
    failures: dict[tuple, str] = {}
    operations = 0
    names = itertools.count(1)
    seeded: set[str] = set()

    def send(case, kind, checks=CHECKS, what="", **kwargs):
        nonlocal violations
        response = case.call(base_url=server.url, session=http, headers=auth, **kwargs)
        statuses[response.status_code] += 1
        cases[kind] += 1
        try:
            case.validate_response(response, checks=checks, headers=auth)
        except FailureGroup as group:
            violations += any(not isinstance(f, ServerError) for f in group.exceptions)
            for failure in group.exceptions:
                # One report per kind of problem, with the first request that showed it.
                key = (case.operation.label, f"{failure.title}{what}", response.status_code)
                sent = (
                    f"{case.method} {case.formatted_path} with the body {kwargs['data'][:500]}"
                    if "data" in kwargs
                    else case.as_curl_command(headers=auth)
                )
                failures.setdefault(
                    key, f"{kind}: {sent}\n-> {response.status_code} {response.text[:500]}\n{failure.message[:1000]}"
                )
        return response

    with serve(app) as server, requests.Session() as http:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # Fresh objects for each operation: the previous one may have deleted or retried them.
            ids = _seed(setup, api, runtime, operations)
            real = _path_values(operation, ids)
            values = RealValues(runtime, recorder, ids, operations, names)

            # Fuzzing.
            runs = [(GenerationMode.POSITIVE, real)]
            if operation.body or operation.query or [h for h in operation.headers if h.name != "Authorization"]:
                runs.append((GenerationMode.NEGATIVE, real))
            if real:
                # Generated path values too: unknown ids (404), and the extremes an integer schema allows. Not the
                # ids of objects seeded for earlier operations: whatever those left them in (a rule whose
                # integration was deleted refuses any change, 422) is not what this run is about.
                runs.append((GenerationMode.POSITIVE, {}))
            seeded.update(str(value) for value in ids.values())
            for mode, path_parameters in runs:
                # The token is fixed, so that negative cases reach the handler instead of stopping at a 401.
                strategy = operation.as_strategy(
                    generation_mode=mode, headers=auth, path_parameters=path_parameters or None
                )
                if not path_parameters and real:
                    strategy = strategy.filter(lambda c: not {str(v) for v in c.path_parameters.values()} & seeded)

                @FUZZ_SETTINGS
                @given(data=st.data())
                def fuzz(data):
                    case = data.draw(strategy)
                    if mode is GenerationMode.POSITIVE:
                        values.substitute(case, data.draw)
                    send(case, "fuzzing")

                fuzz()

            # Coverage: the real objects, except where a case breaks them on purpose (a negative path or body).
            for case in schema.iter_coverage_cases(
                operation,
                generation_config=GenerationConfig(deterministic=True),
                generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            ):
                negative = {location for location, info in case.meta.components.items() if info.mode.is_negative}
                if ParameterLocation.PATH not in negative:
                    case.path_parameters = {**(case.path_parameters or {}), **real}
                if ParameterLocation.BODY not in negative:
                    values.substitute(case)
                send(case, "coverage")

            # Hostile values in valid requests.
            base = operation.as_strategy(
                generation_mode=GenerationMode.POSITIVE, headers=auth, path_parameters=real or None
            )
            has_body = bool(operation.body) and operation.method.upper() != "GET"
            for kind, hostile in HOSTILE.items():
                if not has_body and not (operation.query and kind in QUERY_KINDS):
                    continue
                instant_fields = _instant_fields(schema, operation) if kind == "extreme instants" else set()

                @HOSTILE_SETTINGS
                @given(data=st.data())
                def attack(data):
                    case = data.draw(base)
                    values.substitute(case, data.draw, delayed=kind == "extreme instants" and data.draw(st.booleans()))
                    value = data.draw(hostile)
                    if has_body and isinstance(case.body, dict):
                        targets = _paths(case.body)
                        if instant_fields:  # an instant matters where one is read
                            targets = [p for p in targets if p[-1] in instant_fields] or targets
                        path = data.draw(st.sampled_from(targets))
                        response = send(
                            case,
                            "hostile",
                            HOSTILE_CHECKS,
                            f" ({kind})",
                            data=_hostile_body(case.body, path, value),
                            json=None,
                        )
                    else:
                        names = [p.name for p in operation.query]
                        if instant_fields:
                            names = [n for n in names if n in instant_fields] or names
                        name = data.draw(st.sampled_from(names))
                        case.query = {**(case.query or {}), name: str(value)}
                        response = send(case, "hostile", HOSTILE_CHECKS, f" ({kind})")
                    hostile_kinds[kind] += 1
                    if kind in ALWAYS_REFUSED and has_body and response.status_code not in (400, 422):
                        failures.setdefault(
                            (operation.label, f"{kind} not refused", response.status_code),
                            f"{path} = {value[:200]!r} -> {response.status_code} {response.text[:500]}",
                        )

                attack()

    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    figures.update(
        operations=operations,
        cases=sum(cases.values()),
        **{f"{k}_cases": v for k, v in cases.items()},
        hostile_values=dict(hostile_kinds),
        server_errors=server_errors,
        schema_violations=violations,
        statuses=dict(sorted(statuses.items())),
    )
    routes = sum(
        len(rule.methods - {"HEAD", "OPTIONS"})
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/v1/", "/hooks/"))
    )
    assert operations == routes, (
        f"the document has {operations} operations for {routes} /api/v1 and /hooks routes and methods"
    )
    assert not failures, f"{len(failures)} problem(s):\n\n" + "\n\n".join(
        f"{label}: {title} ({status})\n{detail}" for (label, title, status), detail in sorted(failures.items())
    )
