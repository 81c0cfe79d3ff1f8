"""A fake of SamCart's Public API v1 as a real HTTP server, for tests and local development.

It follows /work/shared/reference/samcart.md §4 and §9: the ``sc-api`` key header, read-only GET endpoints,
``{"data": [...], "pagination": {"next": ..., "prev": ...}}`` lists with ``limit`` (default and maximum 100),
``offset`` (an id cursor) and ``dir`` (next|prev), amounts in integer cents, dates as "YYYY-MM-DD HH:MM:SS" in
UTC. What the reference leaves open (error bodies, the 429 wait header, the shape of ``next``) is a switchable
attribute or a fault argument, so tests can exercise each possibility.

Standard library only, plus hookyard.fakeserver (the HTTP plumbing the plugins' fakes share, itself standard
library only): the module must stay runnable on its own, with no app, database or worker.

    python -m hookyard_samcart.fake --port 8766 --demo
"""

from __future__ import annotations

import argparse
import itertools
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

from hookyard.fakeserver import FakeServer, Handler, gateway_page, run_until_interrupted, send
from hookyard.fakeserver import Reply as _Reply

BASE_PATH = "/v1"
DEFAULT_API_KEY = "test-samcart-api-key"
DEFAULT_LIMIT = MAX_LIMIT = 100  # §9: "limit (default and maximum 100)"
NEXT_STYLES = ("url", "path", "cursor")
SUBSCRIPTION_STATUSES = (
    "active",
    "canceled",
    "delinquent",
    "completed",
    "paused",
    "invalid_processor",
    "sca_required",
    "deleted",
)

# SamCart publishes no error bodies. These are our guess, shaped like most JSON APIs: {"message": ...}.
BAD_KEY = "Unauthorized: the API key is missing or invalid."
NO_ACCESS = "Forbidden: this API key does not have access to this resource."
NOT_FOUND = "Not Found"
TOO_MANY = "Too Many Requests"


# --------------------------------------------------------------------------- records and replies


class Headers(dict):
    """Request headers; names compare case-insensitively, as HTTP says, and are stored lower-cased."""

    def __init__(self, items=()):
        super().__init__((name.lower(), value) for name, value in items)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name, default=None):
        return super().get(name.lower(), default)


@dataclass
class RecordedRequest:
    method: str
    path: str  # relative to /v1 (the raw path when outside it)
    query: dict[str, str]
    headers: Headers
    status: int | None = None  # None while in flight
    at: float = field(default_factory=time.monotonic)


class _ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(status, message)
        self.reply = _Reply(status, {"message": message}, headers or {})


@dataclass
class _Fault:
    remaining: int
    status: int
    retry_after: float | None
    header: str | None
    path: str | None

    def matches(self, rec: RecordedRequest) -> bool:
        return self.remaining > 0 and (self.path is None or self.path == rec.path)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(moment: datetime | None) -> str | None:
    """SamCart's date format (§4.4): UTC without a zone marker."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "product"


def _as_id(value) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --------------------------------------------------------------------------- routes

# (path pattern relative to BASE_PATH, FakeSamCart method). Every route is a GET: SamCart's spec is read-only (§9).
_ROUTES = [
    (r"/products", "_list_products"),
    (r"/products/([^/]+)", "_show_product"),
    (r"/subscriptions", "_list_subscriptions"),
    (r"/subscriptions/([^/]+)", "_show_subscription"),
    (r"/orders", "_list_orders"),
    (r"/orders/([^/]+)", "_show_order"),
    (r"/customers", "_list_customers"),
    (r"/customers/([^/]+)", "_show_customer"),
]
_COMPILED_ROUTES = [(re.compile(pattern), name) for pattern, name in _ROUTES]

# List filters each endpoint honours: query parameter -> record field (compared as text).
_PRODUCT_FILTERS = {"status": "status", "product_category": "product_category", "pricing_type": "pricing_type"}
_SUBSCRIPTION_FILTERS = {"status": "status", "customer_id": "customer_id", "product_id": "product_id"}
_ORDER_FILTERS = {"customer_id": "customer_id"}
_CUSTOMER_FILTERS = {"email": "email"}


class FakeSamCart(FakeServer):
    """SamCart's Public API v1 on 127.0.0.1.

    Switches: ``clamp_limit`` (False: a ``limit`` over 100 is a 400, our reading of "maximum 100"; True: it is
    served as 100), ``next_style`` ("url": ``pagination.next`` is a full URL, as the clients in §4.3 read it;
    "path": a path from the host; "cursor": the bare id to send back as ``offset``), ``stuck_pagination`` (a broken
    server whose ``next`` is the page just served), ``latency`` (seconds before every answer) and
    ``log_requests``. Records are returned oldest (lowest id) first.

    Order of a request: recorded -> latency -> scripted fault (fail_next) -> routing (404/405) -> auth (401/403)
    -> the endpoint, under the one lock.
    """

    def __init__(self, port: int = 0, api_key: str = DEFAULT_API_KEY):
        super().__init__(port, BASE_PATH, "fake-samcart")
        self.api_key = api_key
        self.clamp_limit = False
        self.next_style = "url"
        self.stuck_pagination = False
        self.latency = 0.0

        self.requests: list[RecordedRequest] = []

        self._lock = threading.RLock()
        self._keys: dict[str, bool] = {api_key: True}  # key -> allowed (False answers 403)
        self._ids = itertools.count(100001)  # one sequence for every kind, so a mixed-up id never matches
        self._products: dict[int, dict] = {}
        self._subscriptions: dict[int, dict] = {}
        self._orders: dict[int, dict] = {}
        self._customers: dict[int, dict] = {}
        self._faults: list[_Fault] = []

        self._open = threading.Event()  # cleared by pause(): requests wait until resume()
        self._open.set()

    # ------------------------------------------------------------------ lifecycle

    def _end_waits(self):
        self._open.set()  # stopping ends paused requests too, as it ends latency waits

    # ------------------------------------------------------------------ keys and seed data

    def add_api_key(self, key: str, allowed: bool = True):
        """Another key the fake knows; ``allowed=False`` makes it a key that is refused with 403."""
        with self._lock:
            self._keys[key] = allowed

    def add_product(self, name: str, **fields) -> int:
        """A product; ``price`` is integer cents. Any §4.4 field can be given to override the default."""
        with self._lock:
            pid, now = next(self._ids), _stamp(_now())
            self._products[pid] = {
                "id": pid,
                "sku": f"SKU-{pid}",
                "internal_product_name": name,
                "product_name": name,
                "description": f"{name}, sold with SamCart.",
                "currency": "USD",
                "price": 4900,
                "product_category": "digital",
                "pricing_type": "one_time",
                "status": "active",
                "taxes": False,
                "upsell_funnels": False,
                "slug": _slugify(name),
                "custom_domain": None,
                "product_tags": [],
                "created_at": now,
                "updated_at": now,
                "archived_at": None,
                **fields,
            }
            return pid

    def add_products(self, n: int, prefix: str = "Product") -> list[int]:
        return [self.add_product(f"{prefix} {i + 1}") for i in range(n)]

    def add_customer(self, email: str, first_name: str | None = None, last_name: str | None = None, **fields) -> int:
        with self._lock:
            cid, now = next(self._ids), _stamp(_now())
            self._customers[cid] = {
                "id": cid,
                "first_name": first_name,
                "last_name": last_name,
                "email": email.strip().lower(),
                "phone": None,
                "lifetime_value": 0,
                "addresses": [],
                "created_at": now,
                "updated_at": now,
                **fields,
            }
            return cid

    def add_subscription(self, status: str = "active", **fields) -> int:
        """A subscription (§9's fields). ``status`` is not checked against SUBSCRIPTION_STATUSES on purpose: a
        status SamCart adds later must be possible to serve."""
        with self._lock:
            sid, now = next(self._ids), _now()
            self._subscriptions[sid] = {
                "id": sid,
                "customer_id": None,
                "product_id": None,
                "status": status,
                "start_date": _stamp(now),
                "next_rebilling_date": _stamp(now + timedelta(days=30)),
                "total_failed_charges": 0,
                "billing_cycle_count": 1,
                "recurring_price": {"total": 4900},
                "currency": "USD",
                "trial_days": 0,
                "end_date": None,
                "created_at": _stamp(now),
                "updated_at": _stamp(now),
                **fields,
            }
            return sid

    def set_subscription_status(self, subscription_id: int, status: str, **fields):
        with self._lock:
            if subscription_id not in self._subscriptions:
                raise ValueError(f"unknown subscription {subscription_id}")
            self._subscriptions[subscription_id].update(status=status, updated_at=_stamp(_now()), **fields)

    def add_order(
        self, customer_id: int | None = None, product_ids=(), subscription_id: int | None = None, **fields
    ) -> int:
        """An order (§4.4) with one cart item per product; amounts are the products' prices, in cents."""
        with self._lock:
            if customer_id is not None and customer_id not in self._customers:
                raise ValueError(f"unknown customer {customer_id}")
            unknown = [p for p in product_ids if p not in self._products]
            if unknown:
                raise ValueError(f"unknown product(s) {unknown}")
            oid, now = next(self._ids), _stamp(_now())
            items = []
            for pid in product_ids:
                product = self._products[pid]
                items.append(
                    {
                        "id": next(self._ids),
                        "product_id": pid,
                        "subscription_id": subscription_id,
                        "sku": product["sku"],
                        "internal_product_name": product["internal_product_name"],
                        "product_name": product["product_name"],
                        "charge_id": next(self._ids),
                        "pricing_type": product["pricing_type"],
                        "processor_transaction_id": f"ch_{oid}_{pid}",
                        "currency": product["currency"],
                        "quantity": 1,
                        "status": "charged",
                        "initial_price_subtotal": product["price"],
                        "initial_price_taxes": 0,
                        "initial_price_shipping": 0,
                        "initial_price_total": product["price"],
                    }
                )
            total = sum(item["initial_price_total"] for item in items)
            self._orders[oid] = {
                "id": oid,
                "customer_id": customer_id,
                "test_mode": False,
                "order_date": now,
                "cart_items": items,
                "subtotal": total,
                "discount": 0,
                "taxes": 0,
                "shipping": 0,
                "total": total,
                "card_used": "4242",
                "processor_name": "Stripe",
                "created_at": now,
                **fields,
            }
            return oid

    # ------------------------------------------------------------------ inspection

    def requests_for(self, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def reset_requests(self):
        with self._lock:
            self.requests.clear()

    # ------------------------------------------------------------------ faults

    def pause(self):
        """Requests from now on wait (recorded, unanswered) until resume(): a test sees work held mid-way without
        guessing at timings."""
        self._open.clear()

    def resume(self):
        self._open.set()

    def fail_next(
        self,
        n: int,
        status: int = 429,
        retry_after: float | None = 2,
        header: str | None = "Retry-After",
        path: str | None = None,
    ):
        """The next ``n`` requests (to ``path``, relative and exact, when given) answer ``status``. A 429 carries
        ``header: retry_after`` (SamCart does not say which header it sends: §9); header=None or retry_after=None
        sends none. 500 has a JSON body; 502, 503 and 504 a gateway's HTML page."""
        if not (status == 429 or 500 <= status <= 599):
            raise ValueError(f"fail_next takes 429 or a 5xx status, got {status}")
        with self._lock:
            self._faults.append(_Fault(n, status, retry_after, header, path))

    def clear_faults(self):
        with self._lock:
            self._faults.clear()
            self.latency = 0.0

    def _fault_reply(self, rec: RecordedRequest) -> _Reply | None:
        with self._lock:
            fault = next((f for f in self._faults if f.matches(rec)), None)
            if fault is None:
                return None
            fault.remaining -= 1
        if fault.status == 429:
            headers = (
                {} if fault.header is None or fault.retry_after is None else {fault.header: f"{fault.retry_after:g}"}
            )
            return _Reply(429, {"message": TOO_MANY}, headers)
        if fault.status in (502, 503, 504):
            return _Reply(fault.status, gateway_page(fault.status))
        return _Reply(fault.status, {"message": "Internal Server Error"})

    # ------------------------------------------------------------------ request pipeline

    def _handle(self, handler: Handler):
        rec = self._record(handler)
        self._open.wait()
        with self._lock:
            latency = self.latency
        if latency:
            self._stopping.wait(latency)
        reply = self._fault_reply(rec) or self._dispatch(rec)
        with self._lock:
            rec.status = reply.status  # before sending, so a client that has the answer sees it recorded
        send(handler, reply)

    def _record(self, handler: Handler) -> RecordedRequest:
        parts = urlsplit(handler.path)
        path = parts.path.rstrip("/") or "/"
        if path == BASE_PATH or path.startswith(BASE_PATH + "/"):
            path = path[len(BASE_PATH) :] or "/"
        length = handler.headers.get("Content-Length")
        if length and length.isdigit():
            handler.rfile.read(int(length))  # read-only API: a body is ignored, but must be consumed
        rec = RecordedRequest(
            handler.command,
            path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            Headers(handler.headers.items()),
        )
        with self._lock:
            self.requests.append(rec)
        return rec

    def _dispatch(self, rec: RecordedRequest) -> _Reply:
        try:
            action, args = self._route(rec)
            with self._lock:
                self._authenticate(rec.headers)
                return action(rec, *args)
        except _ApiError as exc:
            return exc.reply
        except Exception:  # a bug in the fake: answer 500, and say why on stderr
            traceback.print_exc()
            return _Reply(500, {"message": "Internal Server Error (fake)"})

    def _route(self, rec: RecordedRequest):
        for pattern, name in _COMPILED_ROUTES:
            match = pattern.fullmatch(rec.path)
            if match:
                if rec.method != "GET":
                    raise _ApiError(405, "Method Not Allowed", {"Allow": "GET"})
                return getattr(self, name), match.groups()
        raise _ApiError(404, NOT_FOUND)

    def _authenticate(self, headers: Headers):
        allowed = self._keys.get((headers.get("sc-api") or "").strip())
        if allowed is None:
            raise _ApiError(401, BAD_KEY)
        if not allowed:
            raise _ApiError(403, NO_ACCESS)

    # ------------------------------------------------------------------ pagination (under the lock)

    def _page(self, rec: RecordedRequest, table: dict[int, dict], filters: dict[str, str]) -> _Reply:
        query = rec.query
        limit = self._limit(query.get("limit"))
        direction = query.get("dir", "next") or "next"
        if direction not in ("next", "prev"):
            raise _ApiError(400, "dir must be next or prev.")
        raw_offset = query.get("offset")
        cursor = None if raw_offset in (None, "") else _as_id(raw_offset)
        if raw_offset not in (None, "") and cursor is None:
            raise _ApiError(400, "offset must be a record id.")
        records = [
            r
            for _, r in sorted(table.items())
            if all(str(r.get(column)) == query[param] for param, column in filters.items() if param in query)
        ]
        records = self._created_between(records, query)
        # The cursor is exclusive: dir=next serves the records after it, dir=prev those before it. Without one,
        # the first page (our reading; the spec does not say what prev without an offset means).
        if cursor is None:
            window = records[:limit]
        elif direction == "next":
            window = [r for r in records if r["id"] > cursor][:limit]
        else:
            window = [r for r in records if r["id"] < cursor][-limit:]
        more_after = bool(window) and records[-1]["id"] > window[-1]["id"]
        more_before = bool(window) and records[0]["id"] < window[0]["id"]
        kept = {k: v for k, v in query.items() if k not in ("offset", "dir", "limit")}
        if self.stuck_pagination:
            nxt = self._link(rec.path, query, None, None, style="url")
        else:
            nxt = self._link(rec.path, kept, limit, window[-1]["id"], "next") if more_after else None
        prev = self._link(rec.path, kept, limit, window[0]["id"], "prev") if more_before else None
        return _Reply(200, {"data": [dict(r) for r in window], "pagination": {"next": nxt, "prev": prev}})

    def _limit(self, raw) -> int:
        if raw in (None, ""):
            return DEFAULT_LIMIT
        if not (isinstance(raw, str) and raw.strip().isdigit()) or int(raw) < 1:
            raise _ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}.")
        if int(raw) > MAX_LIMIT and not self.clamp_limit:
            raise _ApiError(400, f"limit must be a whole number from 1 to {MAX_LIMIT}.")
        return min(int(raw), MAX_LIMIT)

    @staticmethod
    def _created_between(records: list[dict], query: dict) -> list[dict]:
        # §4.3's created_at_min / created_at_max; the format sorts as text, so text comparison is enough.
        low, high = query.get("created_at_min"), query.get("created_at_max")
        return [
            r
            for r in records
            if (not low or (r.get("created_at") or "") >= low) and (not high or (r.get("created_at") or "") <= high)
        ]

    def _link(self, path, params: dict, limit, cursor, direction=None, style=None):
        style = style or self.next_style
        if style == "cursor" and direction == "next":
            return cursor
        query = dict(params)
        if cursor is not None:
            query.update(limit=str(limit), offset=str(cursor), dir=direction)
        tail = BASE_PATH + path + ("?" + urlencode(query) if query else "")
        return tail if style == "path" else self.url + tail

    # ------------------------------------------------------------------ endpoints

    @staticmethod
    def _find(table: dict[int, dict], raw_id, what: str) -> _Reply:
        record = table.get(_as_id(raw_id))
        if record is None:
            raise _ApiError(404, f"{what} not found.")
        return _Reply(200, dict(record))

    def _list_products(self, rec):
        return self._page(rec, self._products, _PRODUCT_FILTERS)

    def _show_product(self, rec, raw_id):
        return self._find(self._products, raw_id, "Product")

    def _list_subscriptions(self, rec):
        return self._page(rec, self._subscriptions, _SUBSCRIPTION_FILTERS)

    def _show_subscription(self, rec, raw_id):
        return self._find(self._subscriptions, raw_id, "Subscription")

    def _list_orders(self, rec):
        return self._page(rec, self._orders, _ORDER_FILTERS)

    def _show_order(self, rec, raw_id):
        return self._find(self._orders, raw_id, "Order")

    def _list_customers(self, rec):
        return self._page(rec, self._customers, _CUSTOMER_FILTERS)

    def _show_customer(self, rec, raw_id):
        return self._find(self._customers, raw_id, "Customer")


# --------------------------------------------------------------------------- CLI


def seed_demo(fake: FakeSamCart):
    """A small store to click around in: products, a customer with an order, and subscriptions."""
    course = fake.add_product("Online Course", price=19700)
    community = fake.add_product("Community Membership", price=4900, pricing_type="recurring")
    fake.add_product("Coaching (3 payments)", price=30000, pricing_type="limited")
    fake.add_product("Workbook PDF", price=1900, product_category="digital")
    ada = fake.add_customer("ada@example.com", "Ada", "Lovelace", phone="+1 555 0100")
    fake.add_order(ada, [course])
    fake.add_subscription("active", customer_id=ada, product_id=community)
    fake.add_subscription("completed", customer_id=ada, product_id=community, billing_cycle_count=3)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m hookyard_samcart.fake", description="A fake SamCart Public API v1 server on 127.0.0.1."
    )
    parser.add_argument("--port", type=int, default=8766, help="port to listen on (0 picks a free one)")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the key the fake accepts in the sc-api header")
    parser.add_argument("--demo", action="store_true", help="seed products, a customer, an order, subscriptions")
    parser.add_argument("--products", type=int, default=0, metavar="N", help="also seed N numbered products")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)
    fake = FakeSamCart(port=args.port, api_key=args.api_key)
    fake.log_requests = not args.quiet
    fake.start()
    if args.demo:
        seed_demo(fake)
    if args.products:
        fake.add_products(args.products)
    print(f"Fake SamCart API v1: {fake.base_url}", flush=True)
    print(f"API key (sc-api): {fake.api_key}", flush=True)
    run_until_interrupted(fake)


if __name__ == "__main__":
    main()
