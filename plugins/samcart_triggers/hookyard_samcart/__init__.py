"""SamCart for Hookyard: the 13 eCommerce and 4 Courses triggers of SamCart's Integration Engine, and the SamCart
app whose connections receive SamCart's Notify URL posts and import the store's products."""

from datetime import timedelta

from hookyard import App, PastEvents, TriggerType, hookimpl

from .connection import SamCartConfig, products, verify
from .examples import EXAMPLES
from .inbound import INBOUND
from .past import FROM_ORDERS, FROM_SUBSCRIPTIONS, past_events
from .payload import SamCartPayload, dedupe_key
from .settings import SETTINGS

# The hook API this plugin is written for: one outside the range is refused at load (docs/plugins/loading.md).
HOOKYARD_API = ">=1.2,<2"  # TriggerType(example=)

ECOMMERCE, COURSES = "eCommerce", "Courses"
PROSPECT_DELAY = timedelta(hours=2)

# (key, label, category, product-scoped, description): semantics as SamCart's help centre states them.
_TRIGGERS = [
    (
        "product_purchased",
        "Product Purchased",
        ECOMMERCE,
        True,
        "A product is bought as the primary product, an upsell, an order bump or a payment option "
        "(order.purchase_source says which). A multi-product order gives one event per product.",
    ),
    ("product_refunded", "Product Refunded", ECOMMERCE, True, "A refund for the product is issued in SamCart."),
    (
        "product_partially_refunded",
        "Product Partially Refunded",
        ECOMMERCE,
        True,
        "A partial refund for the product is issued in SamCart.",
    ),
    (
        "product_added_to_order",
        "Product Added to Order",
        ECOMMERCE,
        True,
        "The product is added to an existing order with SamCart's Add to Order feature.",
    ),
    (
        "prospect_created",
        "Prospect Created (cart abandonment)",
        ECOMMERCE,
        True,
        "Cart abandonment: a prospect entered their details at checkout. Rules run 2 hours after the prospect "
        "was created, and are skipped when the same email bought the same product in between.",
    ),
    (
        "subscription_started",
        "Subscription Started",
        ECOMMERCE,
        True,
        "The customer completes the first recurring charge of a subscription.",
    ),
    (
        "subscription_charged",
        "Subscription Charged",
        ECOMMERCE,
        True,
        "A recurring charge of the subscription succeeds.",
    ),
    (
        "subscription_charge_failed",
        "Subscription Charge Failed",
        ECOMMERCE,
        True,
        "A recurring charge of the subscription fails (SamCart's Subscription Saver then retries it).",
    ),
    (
        "subscription_delinquent",
        "Subscription Delinquent",
        ECOMMERCE,
        True,
        "The subscription becomes delinquent after 4 failed payments in a row. SamCart also fires "
        "Subscription Canceled for it.",
    ),
    (
        "subscription_canceled",
        "Subscription Canceled",
        ECOMMERCE,
        True,
        "The subscription's status becomes Canceled or Delinquent: a rule here also runs on delinquency.",
    ),
    (
        "subscription_recovered",
        "Subscription Recovered",
        ECOMMERCE,
        True,
        "A charge succeeds while the subscription is in the dunning cycle.",
    ),
    (
        "subscription_restarted",
        "Subscription Restarted",
        ECOMMERCE,
        True,
        "The merchant manually restarts a subscription that was delinquent or canceled.",
    ),
    (
        "subscription_completed",
        "Subscription Completed",
        ECOMMERCE,
        True,
        "A limited subscription (a fixed number of payments) completes with its final payment.",
    ),
    ("course_enrolled", "Student Enrolled in Course", COURSES, False, "A student is added to a course."),
    ("course_removed", "Student Removed from Course", COURSES, False, "A student is removed from a course."),
    ("course_started", "Student Started Course", COURSES, False, "A student starts a course."),
    ("course_completed", "Student Completed Course", COURSES, False, "A student finishes a course."),
]


# What each trigger means for the customer's access (TriggerType.access, read by access reconciliation): a purchase
# or a (re)started subscription gives it, a refund, a cancellation or delinquency takes it away. A partial refund,
# a charge, a completed limited subscription (paid in full) and course progress change nothing.
ACCESS = {
    "product_purchased": "grants",
    "subscription_started": "grants",
    "subscription_recovered": "grants",
    "subscription_restarted": "grants",
    "course_enrolled": "grants",
    "product_refunded": "revokes",
    "subscription_canceled": "revokes",
    "subscription_delinquent": "revokes",
    "course_removed": "revokes",
}


def trigger_types() -> list[TriggerType]:
    types = []
    for key, label, category, product_scoped, description in _TRIGGERS:
        extra = {}
        if key == "prospect_created":
            extra = dict(delay=PROSPECT_DELAY, cancelled_by=("samcart.product_purchased",))
        types.append(
            TriggerType(
                key=f"samcart.{key}",
                label=label,
                category=category,
                description=description,
                payload_schema=SamCartPayload,
                product_scoped=product_scoped,
                dedupe_key=dedupe_key,
                example=EXAMPLES[key],
                access=ACCESS.get(key),
                **extra,
            )
        )
    return types


@hookimpl
def register_trigger_types(register):
    for trigger_type in trigger_types():
        register(trigger_type)


SAMCART = App(
    key="samcart",
    name="SamCart",
    config_schema=SamCartConfig,
    verify=verify,
    actions=(),
    inbound=INBOUND,
    products=products,
    # A backfill's past orders and subscriptions (hook API 1.2): what each brings in (past.py).
    past_events=PastEvents(past_events, triggers=(FROM_ORDERS, FROM_SUBSCRIPTIONS)),
    description="Receives your store's notifications at a Notify URL (no code), and imports your products.",
)


@hookimpl
def register_apps(register):
    register(SAMCART)


@hookimpl
def register_settings(register):
    register(SETTINGS)  # checked when the plugins load: a bad value stops the server at start, not each delivery


@hookimpl
def register_commands(register):
    from .commands import samcart

    register(samcart)
