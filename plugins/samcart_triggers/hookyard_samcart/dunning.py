"""A subscription's history, and the triggers SamCart fires from it that its Notify URL may not send.

SamCart's Subscription Saver retries a failed recurring charge until one succeeds or four have failed in a row
(then the subscription is delinquent, and Subscription Canceled fires too). Charge Failed, Recovered, Delinquent
and Canceled are therefore facts about a *run* of charges, not about one delivery: this module keeps, per
subscription, how many charges have failed in a row and what was already derived, in the plugin state under
``subscription:<id>``. Pure: the state is any object with get(key) and set(key, dict).

Identities are keyed by what happened once: a dunning *episode* (one run of failures) for charge_failed and
recovered, a *life* (from the start, or a restart, to the next cancel) for delinquent, canceled and restarted.
So SamCart sending Cancel or Recovered for something already derived from the charges (or the charges arriving
after SamCart's own Cancel) gives the same identity again, and the core sees a duplicate, not a second event.

Reprocessing a delivery must neither advance the history again nor change what it made: each applied delivery
is remembered with the history as it was before it (the last REMEMBERED of them), and is replayed against that.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta

VERSION = 1
DELINQUENT_AFTER = 4  # failed charges in a row (SamCart's Subscription Saver, §6)
REMEMBERED = 16  # applied deliveries kept per subscription for replay; over a year of monthly charges
# Two deliveries of one failed (or successful) charge without any id: SamCart's Notify URL rules for two of its
# triggers (legacy RecurringPaymentFailed and "Subscription Charge Failed") both post it, within seconds. Genuine
# charges of one subscription are retried days apart, so two within this window are one charge.
SAME_CHARGE_WINDOW = timedelta(hours=1)

# What a delivery says happened to the subscription (the trigger short keys that feed the history).
OUTCOMES = (
    "subscription_charged",
    "subscription_charge_failed",
    "subscription_recovered",
    "subscription_canceled",
    "subscription_delinquent",
    "subscription_restarted",
    "subscription_completed",
)


@dataclass(frozen=True)
class Derived:
    trigger: str  # short key, e.g. "subscription_recovered"
    key: str  # what makes it one event among this subscription's: "episode=2", "life=0", "charge.id=ch_9"
    note: str


@dataclass(frozen=True)
class Delivery:
    id: int
    received_at: datetime
    ref: str | None  # the charge/rebill ids and times the body carries ("charge_id=…|created_at=…"), if any


def fresh() -> dict:
    return {
        "v": VERSION,
        "status": "active",
        "life": 0,
        "life_from": "start",
        "episode": 0,
        "failures": 0,
        "recovered": 0,
        "recovered_unseen": False,
        "recovered_ref": None,
        "completed": False,
        "last": None,
    }


def key_for(subscription_id: str) -> str:
    return f"subscription:{subscription_id}"


def _loaded(stored) -> dict:
    """The stored document, or a fresh one when there is none or it is not one this code wrote."""
    if not isinstance(stored, dict) or stored.get("v") != VERSION:
        return {**fresh(), "applied": [], "forgot": 0, "product": None}
    return {**fresh(), "applied": [], "forgot": 0, "product": None, **copy.deepcopy(stored)}


def _core(history: dict) -> dict:
    """The history without what replaying needs not: only what differs from a fresh one, to keep the state small."""
    start = fresh()
    return {k: copy.deepcopy(history[k]) for k in start if history[k] != start[k]}


def remembered_product(state, subscription_id: str) -> dict | None:
    product = _loaded(state.get(key_for(subscription_id))).get("product")
    return product if isinstance(product, dict) and product.get("id") else None


def apply(
    state,
    subscription_id: str,
    outcome: str | None,
    delivery: Delivery,
    *,
    product: dict | None = None,
    completed: bool = False,
) -> list[Derived]:
    """What ``outcome`` (one of OUTCOMES, or None for a delivery that only names the subscription) means for this
    subscription, given its history; records the delivery in it. ``completed``: the API says the subscription is
    completed. The same delivery again returns the same list and changes nothing."""
    key = key_for(subscription_id)
    history = _loaded(state.get(key))
    for applied_id, before in history["applied"]:
        if applied_id == delivery.id:
            return _step({**fresh(), **copy.deepcopy(before)}, outcome, delivery, completed)
    if delivery.id <= history["forgot"]:
        return _forgotten(outcome, delivery)
    before = _core(history)
    derived = _step(history, outcome, delivery, completed)
    applied = [*history["applied"], [delivery.id, before]]
    evicted, history["applied"] = applied[:-REMEMBERED], applied[-REMEMBERED:]
    # Bounded: a delivery older than the ones kept is known to be applied, without its history to replay.
    history["forgot"] = max([history["forgot"], *(i for i, _ in evicted)])
    if product and product.get("id"):
        history["product"] = {"id": product["id"], "name": product.get("name")}
    state.set(key, history)
    return derived


def _forgotten(outcome: str | None, delivery: Delivery) -> list[Derived]:
    # Older than anything the history still remembers: what it derived is long made (and deduplicated by the core).
    # Only what needs no history is made again.
    if outcome != "subscription_charged":
        return []
    return [
        Derived(
            "subscription_charged",
            _charge_key(delivery),
            f"delivery {delivery.id} is older than the {REMEMBERED} deliveries this subscription's history "
            "remembers: only its charge is made again",
        )
    ]


def _charge_key(delivery: Delivery) -> str:
    # A charge without any id is told apart from the next billing period's by its delivery: reprocessing the same
    # delivery repeats the identity, two deliveries a month apart are two charges.
    return delivery.ref or f"delivery={delivery.id}"


def _same_charge(history: dict, outcome: str, delivery: Delivery) -> bool:
    last = history.get("last")
    if not isinstance(last, dict) or last.get("outcome") != outcome:
        return False
    if delivery.ref or last.get("ref"):
        return delivery.ref == last.get("ref")
    try:
        at = datetime.fromisoformat(last["at"])
    except (KeyError, TypeError, ValueError):
        return False
    return abs(delivery.received_at - at) <= SAME_CHARGE_WINDOW


def _step(h: dict, outcome: str | None, delivery: Delivery, completed: bool) -> list[Derived]:
    made: list[Derived] = []
    if outcome in ("subscription_charged", "subscription_charge_failed") and _same_charge(h, outcome, delivery):
        last = h["last"]
        made = [
            Derived(trigger, key, f"the same charge as delivery {last['delivery']}, sent again: nothing new")
            for trigger, key in last["made"]
        ]
    elif outcome == "subscription_charge_failed":
        made = _failed(h)
        h["last"] = _last(outcome, delivery, made)
    elif outcome == "subscription_charged":
        made = _charged(h, delivery)
        h["last"] = _last(outcome, delivery, made)
    elif outcome == "subscription_recovered":
        made = _recovered(h, delivery)
    elif outcome == "subscription_canceled":
        made = _canceled(h)
    elif outcome == "subscription_delinquent":
        made = _delinquent(h, sent=True)
    elif outcome == "subscription_restarted":
        made = _restarted(h)
    if outcome == "subscription_completed" or completed:
        made += _completed(h, sent=outcome == "subscription_completed")
    return made


def _last(outcome: str, delivery: Delivery, made: list[Derived]) -> dict:
    return {
        "outcome": outcome,
        "ref": delivery.ref,
        "at": delivery.received_at.isoformat(),
        "delivery": delivery.id,
        "made": [[d.trigger, d.key] for d in made],
    }


def _life(h: dict) -> str:
    return f"life={h['life']}"


def _failed(h: dict) -> list[Derived]:
    if h["failures"] == 0:
        h["episode"] += 1
    h["failures"] += 1
    n, episode = h["failures"], h["episode"]
    if n == 1:
        return [
            Derived(
                "subscription_charge_failed",
                f"episode={episode}",
                "the first failed charge of a run: SamCart's Subscription Saver retries it, up to "
                f"{DELINQUENT_AFTER} failures in a row",
            )
        ]
    if n == DELINQUENT_AFTER:
        return _delinquent(h, sent=False)
    return []  # the 2nd, 3rd (and any after the 4th) failure of a run: already reported


def _delinquent(h: dict, *, sent: bool) -> list[Derived]:
    already = h["status"] == "delinquent"
    if sent and not already:
        if h["failures"] == 0:
            h["episode"] += 1
        h["failures"] = max(h["failures"], DELINQUENT_AFTER)
    canceled_before = h["status"] == "canceled"
    h["status"] = "delinquent"
    if already:
        why = "SamCart says delinquent, as already recorded for this subscription"
    elif sent:
        why = "SamCart says the subscription is delinquent"
    else:
        why = f"the {DELINQUENT_AFTER}th failed charge in a row: SamCart makes the subscription delinquent"
    cancel_why = (
        "the cancellation SamCart already sent"
        if canceled_before or already
        else "SamCart's Subscription Canceled also fires when a subscription becomes delinquent"
    )
    return [
        Derived("subscription_delinquent", _life(h), why),
        Derived("subscription_canceled", _life(h), f"{why}; {cancel_why}"),
    ]


def _back_to_life(h: dict) -> str:
    """A charge that succeeds after the subscription was delinquent or canceled: it was restarted."""
    if h["status"] == "active":
        return ""
    was = h["status"]
    h["status"], h["life"], h["life_from"] = "active", h["life"] + 1, "charge"
    return f"; the subscription was {was}, so it was restarted"


def _charged(h: dict, delivery: Delivery) -> list[Derived]:
    n, episode = h["failures"], h["episode"]
    made = []
    if 1 <= n < DELINQUENT_AFTER:
        h["recovered"], h["recovered_unseen"], h["recovered_ref"] = episode, False, None
        made.append(
            Derived(
                "subscription_recovered",
                f"episode={episode}",
                f"a successful charge after {n} failed in a row, inside SamCart's dunning cycle",
            )
        )
    restarted = _back_to_life(h)
    h["failures"] = 0
    why = "a recurring charge succeeded"
    if made:
        why += f" (it recovered the subscription after {n} failed)"
    made.append(Derived("subscription_charged", _charge_key(delivery), why + restarted))
    return made


def _recovered(h: dict, delivery: Delivery) -> list[Derived]:
    n = h["failures"]
    if n >= 1:
        h["recovered"], h["recovered_unseen"], h["recovered_ref"] = h["episode"], False, None
        restarted = _back_to_life(h) if n >= DELINQUENT_AFTER else ""
        h["failures"] = 0
        return [
            Derived(
                "subscription_recovered",
                f"episode={h['episode']}",
                f"SamCart says recovered, after {n} failed charges in a row{restarted}",
            )
        ]
    same_unseen = h["recovered_unseen"] and delivery.ref and delivery.ref == h["recovered_ref"]
    if h["recovered"] == h["episode"] > 0 and (not h["recovered_unseen"] or same_unseen):
        return [
            Derived(
                "subscription_recovered",
                f"episode={h['episode']}",
                "SamCart's Recovered for the recovery already recorded for this subscription",
            )
        ]
    # No failed charge of this run reached us (the store may not send them): a recovery all the same.
    h["episode"] += 1
    h["recovered"], h["recovered_unseen"], h["recovered_ref"] = h["episode"], True, delivery.ref
    return [
        Derived(
            "subscription_recovered",
            f"episode={h['episode']}",
            "SamCart says recovered (no failed charge of this run was received)",
        )
    ]


def _canceled(h: dict) -> list[Derived]:
    if h["status"] in ("canceled", "delinquent"):
        return [
            Derived(
                "subscription_canceled",
                _life(h),
                f"SamCart's Cancel for the subscription already recorded as {h['status']}",
            )
        ]
    h["status"] = "canceled"
    return [Derived("subscription_canceled", _life(h), "SamCart says the subscription was canceled")]


def _restarted(h: dict) -> list[Derived]:
    if h["status"] in ("canceled", "delinquent"):
        why = f"the subscription was {h['status']} and the merchant restarted it"
        h["status"], h["life"], h["life_from"] = "active", h["life"] + 1, "restart"
    elif h["life_from"] == "restart":
        why = "SamCart's Restarted for the restart already recorded for this subscription"
    elif h["life_from"] == "charge":
        why = "restarted (a successful charge after it was canceled had already shown it)"
        h["life_from"] = "restart"
    else:
        why = "SamCart says restarted (no cancellation or delinquency of this subscription was received)"
        h["life"], h["life_from"] = h["life"] + 1, "restart"
    h["failures"] = 0
    return [Derived("subscription_restarted", _life(h), why)]


def _completed(h: dict, *, sent: bool) -> list[Derived]:
    if h["completed"]:
        return (
            [Derived("subscription_completed", "completed", "SamCart's Completed for the completion already recorded")]
            if sent
            else []
        )
    h["completed"] = True
    why = "SamCart says completed" if sent else "SamCart's API says the subscription is completed (its last payment)"
    return [Derived("subscription_completed", "completed", why)]
