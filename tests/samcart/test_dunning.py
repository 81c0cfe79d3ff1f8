"""Derived subscription triggers (docs/samcart.md, "Derived subscription triggers"): SamCart's dunning cycle replayed
from the charges its Notify URL sends, with identities that make SamCart's own Cancel or Recovered one event with
the derived one, and a history that reprocessing never advances. Time is injected: each delivery says when it came."""

import json
from datetime import timedelta

import pytest

from hookyard_samcart import dunning
from tests.samcart.mapping_helpers import RECEIVED, JSONState, body, map_, short

SID = "333"


class Store:
    """One store's deliveries, one at a time, as the core hands them over: increasing ids, times we choose."""

    def __init__(self):
        self.state = JSONState()
        self.delivery_id = 100
        self.at = RECEIVED
        self.made: dict[tuple[str, str], int] = {}  # (trigger, identity) -> how often made

    def send(self, name, *, after=timedelta(days=1), charge_id=None, sid=SID, looked_up=None, drop=(), **extra):
        b = body(name)
        for key in drop:
            del b[key]
        b["order"]["subscription_id"] = sid
        if charge_id:
            b["charge_id"] = charge_id
        b.update(extra)
        self.delivery_id += 1
        self.at += after
        events = map_(b, delivery_id=self.delivery_id, received_at=self.at, state=self.state, looked_up=looked_up or {})
        for e in events:
            self.made[(e.trigger, e.identity)] = self.made.get((e.trigger, e.identity), 0) + 1
        return events

    def again(self, delivery_id, name, *, received_at, **kwargs):
        b = body(name)
        b["order"]["subscription_id"] = kwargs.pop("sid", SID)
        return map_(b, delivery_id=delivery_id, received_at=received_at, state=self.state, **kwargs)

    def distinct(self, trigger: str) -> int:
        """Events the core would keep: one per (trigger, identity)."""
        return len({identity for (t, identity) in self.made if t == f"samcart.{trigger}"})


FAILED, SUCCEEDED = "recurring_payment_failed", "subscription_charged"


@pytest.mark.parametrize("with_ids", [True, False], ids=["charge ids", "no ids, a day apart"])
def test_three_failures_then_a_success_is_one_charge_failed_and_one_recovered(with_ids):
    store = Store()
    made = [short(store.send(FAILED, charge_id=f"ch_{n}" if with_ids else None)) for n in range(3)]
    made.append(short(store.send(SUCCEEDED, charge_id="ch_3" if with_ids else None)))
    assert made == [["subscription_charge_failed"], [], [], ["subscription_recovered", "subscription_charged"]]
    assert (
        store.distinct("subscription_charge_failed"),
        store.distinct("subscription_recovered"),
        store.distinct("subscription_charged"),
    ) == (1, 1, 1)


@pytest.mark.parametrize("with_ids", [True, False], ids=["charge ids", "no ids, a day apart"])
def test_four_failures_are_one_charge_failed_one_delinquent_and_one_canceled(with_ids):
    store = Store()
    made = [short(store.send(FAILED, charge_id=f"ch_{n}" if with_ids else None)) for n in range(4)]
    assert made == [["subscription_charge_failed"], [], [], ["subscription_delinquent", "subscription_canceled"]]
    assert {
        t: store.distinct(t)
        for t in (
            "subscription_charge_failed",
            "subscription_delinquent",
            "subscription_canceled",
            "subscription_recovered",
        )
    } == {
        "subscription_charge_failed": 1,
        "subscription_delinquent": 1,
        "subscription_canceled": 1,
        "subscription_recovered": 0,
    }


def test_every_derived_event_says_why():
    store = Store()
    first = store.send(FAILED)[0]
    assert "first failed charge of a run" in first.note
    store.send(FAILED), store.send(FAILED)
    delinquent, canceled = store.send(FAILED)
    assert "4th failed charge in a row" in delinquent.note
    assert "also fires when a subscription becomes delinquent" in canceled.note


def test_a_fifth_failure_makes_nothing_new():
    store = Store()
    for _ in range(4):
        store.send(FAILED)
    assert store.send(FAILED) == []


def test_samcarts_own_cancel_after_the_derived_one_is_the_same_event():
    store = Store()
    derived = [e for _ in range(4) for e in store.send(FAILED)][-1]
    sent = store.send("cancel", after=timedelta(minutes=1))
    assert short(sent) == ["subscription_canceled"]
    assert (sent[0].trigger, sent[0].identity) == (derived.trigger, derived.identity)
    assert "already recorded as delinquent" in sent[0].note


def test_samcarts_cancel_before_the_fourth_failure_is_the_same_event_too():
    store = Store()
    for _ in range(3):
        store.send(FAILED)
    sent = store.send("cancel")
    delinquent, canceled = store.send(FAILED, after=timedelta(minutes=5))
    assert canceled.identity == sent[0].identity and "cancellation SamCart already sent" in canceled.note
    assert short([delinquent]) == ["subscription_delinquent"]


def test_samcarts_delinquent_and_the_derived_one_are_one():
    store = Store()
    store.send(FAILED), store.send(FAILED)
    sent = store.send("subscription_delinquent")
    later = [e for _ in range(2) for e in store.send(FAILED)]
    assert [(e.trigger, e.identity) for e in later] in ([], [(e.trigger, e.identity) for e in sent])
    assert store.distinct("subscription_delinquent") == 1 and store.distinct("subscription_canceled") == 1


def test_samcarts_recovered_after_the_derived_recovery_is_the_same_event():
    store = Store()
    store.send(FAILED)
    derived = store.send(SUCCEEDED)[0]
    sent = store.send("recurring_payment_recovered", after=timedelta(minutes=1))
    assert (sent[0].trigger, sent[0].identity) == (derived.trigger, derived.identity)
    assert store.distinct("subscription_recovered") == 1


def test_samcarts_recovered_before_the_success_is_still_one_recovery_and_one_charge():
    store = Store()
    store.send(FAILED), store.send(FAILED)
    assert short(store.send("recurring_payment_recovered")) == ["subscription_recovered"]
    assert short(store.send(SUCCEEDED, after=timedelta(minutes=1))) == ["subscription_charged"]
    assert store.distinct("subscription_recovered") == 1 and store.distinct("subscription_charged") == 1


def test_recoveries_samcart_sends_without_the_failures_are_each_new():
    store = Store()
    first = store.send("subscription_recovered")
    second = store.send("subscription_recovered", after=timedelta(days=60))
    assert first[0].identity != second[0].identity
    assert "no failed charge of this run was received" in first[0].note


def test_a_new_run_of_failures_after_a_recovery_is_a_new_charge_failed():
    store = Store()
    first = store.send(FAILED)
    store.send(SUCCEEDED)
    second = store.send(FAILED, after=timedelta(days=30))
    assert short(second) == ["subscription_charge_failed"] and second[0].identity != first[0].identity


def test_a_success_without_failures_is_a_charge_and_two_rebills_a_month_apart_are_two():
    store = Store()
    one = store.send(SUCCEEDED, after=timedelta(days=30))
    two = store.send(SUCCEEDED, after=timedelta(days=30))
    assert short(one) == short(two) == ["subscription_charged"]
    assert one[0].identity != two[0].identity
    assert one[0].identity == f"subscription={SID}|product=444|delivery=101"
    with_id = store.send(SUCCEEDED, charge_id="ch_9", created_at="2026-05-01 10:00:00")
    assert with_id[0].identity == f"subscription={SID}|product=444|charge_id=ch_9|created_at=2026-05-01 10:00:00"


def test_one_failed_charge_posted_by_two_rules_within_minutes_counts_once():
    store = Store()
    store.send(FAILED)
    twin = store.send("subscription_charge_failed", after=timedelta(minutes=2))
    assert short(twin) == ["subscription_charge_failed"] and "same charge as delivery 101" in twin[0].note
    store.send(FAILED), store.send(FAILED)
    assert short(store.send(FAILED)) == ["subscription_delinquent", "subscription_canceled"]


def test_one_charge_posted_by_two_rules_is_one_charged():
    store = Store()
    store.send(SUCCEEDED)
    twin = store.send("recurring_payment_succeeded", after=timedelta(minutes=1), drop=("charge_id", "created_at"))
    assert store.distinct("subscription_charged") == 1 and short(twin) == ["subscription_charged"]


def test_a_success_after_delinquency_is_a_charge_not_a_recovery():
    store = Store()
    for _ in range(4):
        store.send(FAILED)
    events = store.send(SUCCEEDED)
    assert short(events) == ["subscription_charged"] and "it was restarted" in events[0].note


def test_restarted_after_delinquency_then_canceled_again_are_new_events():
    store = Store()
    first_cancel = [e for _ in range(4) for e in store.send(FAILED)][-1]
    restarted = store.send("subscription_restarted")
    assert short(restarted) == ["subscription_restarted"] and "delinquent" in restarted[0].note
    assert store.send("subscription_restarted", after=timedelta(minutes=1))[0].identity == restarted[0].identity
    again = store.send("cancel", after=timedelta(days=40))
    assert short(again) == ["subscription_canceled"] and again[0].identity != first_cancel.identity
    assert store.distinct("subscription_restarted") == 1 and store.distinct("subscription_canceled") == 2


def test_completed_from_the_api_once():
    store = Store()
    done = {"subscription_status": "completed"}
    assert short(store.send(SUCCEEDED, looked_up=done)) == ["subscription_charged", "subscription_completed"]
    assert short(store.send("refund", looked_up=done)) == ["product_refunded"]
    sent = store.send("subscription_completed")
    assert store.distinct("subscription_completed") == 1 and short(sent) == ["subscription_completed"]
    assert (
        store.send(SUCCEEDED, looked_up={"subscription_status": "active"})[-1].trigger == "samcart.subscription_charged"
    )


def test_completed_sent_directly_maps_directly():
    store = Store()
    assert short(store.send("subscription_completed")) == ["subscription_completed"]


# ------------------------------------------------------------------------------------------- reprocessing


def test_reprocessing_a_delivery_returns_the_same_events_and_changes_nothing():
    store = Store()
    store.send(FAILED), store.send(FAILED)
    third_at = store.at + timedelta(days=1)
    third_id = store.delivery_id + 1
    store.send(FAILED)
    fourth = store.send(FAILED)
    success = store.send(SUCCEEDED)
    before = store.state.snapshot()
    again = store.again(third_id + 1, FAILED, received_at=third_at + timedelta(days=1))
    assert [(e.trigger, e.identity, e.note) for e in again] == [(e.trigger, e.identity, e.note) for e in fourth]
    assert store.again(third_id, FAILED, received_at=third_at) == []
    assert store.again(third_id + 2, SUCCEEDED, received_at=store.at) == success
    assert store.state.snapshot() == before


def test_reprocessing_right_after_is_a_duplicate_not_a_second_failure():
    store = Store()
    first = store.send(FAILED)
    again = store.again(store.delivery_id, FAILED, received_at=store.at)
    assert again == first
    assert store.send(FAILED) == [] and json.loads(store.state.docs[f"subscription:{SID}"])["failures"] == 2


def test_the_history_is_bounded_and_a_forgotten_delivery_does_not_advance_it():
    store = Store()
    for n in range(40):
        store.send(SUCCEEDED if n % 3 else FAILED, after=timedelta(days=10))
    doc = store.state.docs[f"subscription:{SID}"]
    history = json.loads(doc)
    assert len(history["applied"]) == dunning.REMEMBERED and len(doc) < 8000
    before = store.state.snapshot()
    old = store.again(101, FAILED, received_at=RECEIVED + timedelta(days=10))
    assert old == [] and store.state.snapshot() == before
    old_charge = store.again(102, SUCCEEDED, received_at=RECEIVED + timedelta(days=20))
    assert short(old_charge) == ["subscription_charged"] and old_charge[0].identity.endswith("delivery=102")
    assert "older than the" in old_charge[0].note and store.state.snapshot() == before


def test_two_subscriptions_keep_two_histories():
    store = Store()
    store.send(FAILED, sid="1"), store.send(FAILED, sid="2")
    assert short(store.send(SUCCEEDED, sid="1")) == ["subscription_recovered", "subscription_charged"]
    assert short(store.send(FAILED, sid="2")) == []
    assert set(store.state.docs) == {"subscription:1", "subscription:2"}


def test_a_cancel_without_a_product_uses_the_subscriptions_earlier_one():
    store = Store()
    store.send("order_subscription")
    b = body("cancel")
    del b["product"]
    events = map_(b, delivery_id=500, received_at=RECEIVED + timedelta(days=3), state=store.state)
    assert events[0].payload["product"] == {"id": "444", "name": "Community Membership"}
    assert "taken from subscription 333's earlier deliveries" in events[0].note


def test_a_stored_history_this_code_did_not_write_starts_afresh():
    store = Store()
    store.state.docs[f"subscription:{SID}"] = json.dumps({"v": 99, "failures": "many"})
    assert short(store.send(FAILED)) == ["subscription_charge_failed"]


def test_without_a_subscription_id_every_failure_is_reported_as_sent():
    b = body(FAILED)
    del b["order"]["subscription_id"]
    state = JSONState()
    one = map_(b, delivery_id=1, state=state)
    two = map_(b, delivery_id=2, state=state)
    assert short(one) == short(two) == ["subscription_charge_failed"] and one[0].identity != two[0].identity
    assert "no subscription id" in one[0].note and state.writes == 0
