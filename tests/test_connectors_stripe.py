"""`type: stripe` against a local Stripe API: MRR normalised to a month, per currency,
counts, errors, pagination, and MRR over time for backfill."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest

from kpi_collector.errors import ExtractError, HttpError
from kpi_collector.sources.stripe import API_VERSION, Stripe, _parse
from kpi_collector.sources.stripe.fake import (
    FakeStripe,
    coupon,
    discount,
    subscription,
    tax_rate,
)
from tests.fakes.collect import backfill, collect, outcome

KEY = "sk_test_51FakeKeyValueForTests0000abcd"
RESTRICTED = "rk_test_51FakeRestrictedKey000000wxyz"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def ts(day: str) -> float:
    return datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()


def dataset(bulk: int = 0) -> list[dict]:
    subs = [
        subscription(customer="cus_A", start=ts("2025-06-01"), amount=4900),  # 49.00 a month
        subscription(
            customer="cus_B", start=ts("2025-09-15"), amount=49000, interval="year", quantity=2
        ),
        subscription(
            customer="cus_C", start=ts("2026-02-01"), amount=1000, interval="week", interval_count=2
        ),
        subscription(customer="cus_A", start=ts("2026-01-10"), amount=100, interval="day"),
        subscription(
            customer="cus_D",
            start=ts("2025-05-01"),
            amount=2000,
            status="canceled",
            ended_at=ts("2026-02-20"),
        ),
        subscription(
            customer="cus_E",
            start=ts("2025-01-01"),
            amount=2000,
            status="canceled",
            ended_at=ts("2025-12-01"),
        ),
        subscription(
            customer="cus_F",
            start=ts("2026-03-05"),
            amount=3000,
            status="trialing",
            trial=(ts("2026-03-05"), ts("2026-03-19")),
        ),
        subscription(customer="cus_G", start=ts("2026-01-01"), amount=1500, status="past_due"),
        subscription(customer="cus_H", start=ts("2026-03-01"), amount=9900, status="incomplete"),
        subscription(customer="cus_I", start=ts("2026-02-01"), amount=7, usage_type="metered"),
        subscription(
            customer="cus_J",
            start=ts("2025-11-01"),
            amount=10000,
            discounts=[discount(coupon(percent_off=20.0), start=ts("2025-11-01"))],
        ),
        subscription(customer="cus_K", start=ts("2026-01-15"), amount=5000, currency="eur"),
        subscription(
            customer="cus_L", start=ts("2025-10-01"), amount=120000, currency="jpy"
        ),  # zero-decimal
    ]
    subs += [
        subscription(customer=f"cus_bulk{i}", start=ts("2026-02-10"), amount=100)
        for i in range(bulk)
    ]
    return subs


@pytest.fixture
def stripe():
    fake = FakeStripe(keys={KEY, RESTRICTED}, restricted_keys={RESTRICTED}, subscriptions=dataset())
    with fake.serve():
        yield fake


def source(fake: FakeStripe, **kwargs) -> Stripe:
    return Stripe(api_key=kwargs.pop("api_key", KEY), api_url=fake.url, **kwargs)


USD_MRR = 49 + 49000 * 2 / 100 / 12 + 10 / (2 * 12 / 52) + 1 * 365 / 12 + 15 + 80  # = 277.75


def test_mrr_normalised_to_a_month_in_one_currency(stripe: FakeStripe) -> None:
    values = collect(
        source(
            stripe,
            currency="USD",
            metrics=[
                "mrr",
                "arr",
                "active_subscriptions",
                "trialing_subscriptions",
                "customers",
                "churned_subscriptions_30d",
            ],
        ),
        now=NOW,
    )
    assert values == {
        "mrr": pytest.approx(USD_MRR, abs=0.01),
        "arr": pytest.approx(USD_MRR * 12, abs=0.1),
        "active_subscriptions": 9,  # every active or past-due one, in any currency, metered too
        "trialing_subscriptions": 1,
        "customers": 8,  # cus_A has two
        "churned_subscriptions_30d": 1,  # cus_D ended 18 days ago; cus_E too long ago
    }
    (request,) = stripe.requests
    assert request.query["status"] == "all" and request.query["limit"] == "100"
    assert request.headers["Authorization"] == f"Bearer {KEY}"


def test_several_currencies_need_a_choice(stripe: FakeStripe) -> None:
    result = outcome(
        source(stripe, metrics=["mrr", "mrr_usd", "mrr_eur", "arr_jpy", "customers"]), now=NOW
    )
    assert result.values == {
        "mrr_usd": pytest.approx(USD_MRR, abs=0.01),
        "mrr_eur": 50.0,
        "arr_jpy": 1_440_000.0,
        "customers": 8,
    }
    ((metric, message, _),) = result.errors
    assert metric == "mrr" and "subscriptions are in eur, jpy, usd" in message
    assert "`currency:`" in message and "mrr_eur, mrr_jpy, mrr_usd" in message


def test_a_single_currency_needs_no_choice(stripe: FakeStripe) -> None:
    stripe.subscriptions = [s for s in stripe.subscriptions if s["currency"] == "eur"]
    assert collect(source(stripe, metrics=["mrr", "arr"]), now=NOW) == {"mrr": 50.0, "arr": 600.0}


def test_pages_follow_starting_after(stripe: FakeStripe) -> None:
    stripe.subscriptions = dataset(bulk=150)
    values = collect(
        source(stripe, currency="usd", metrics=["mrr", "active_subscriptions"]), now=NOW
    )
    assert values["active_subscriptions"] == 159 and values["mrr"] == pytest.approx(
        USD_MRR + 150, abs=0.01
    )
    afters = [r.query.get("starting_after") for r in stripe.requests]
    assert len(afters) == 2 and afters[0] is None and afters[1].startswith("sub_")


def test_wrong_key_names_the_variable_and_hides_the_key(stripe: FakeStripe) -> None:
    wrong = "sk_test_51WrongKeyValue00000000000zzzz"
    result = outcome(source(stripe, api_key=wrong), now=NOW)
    ((_, message, transient),) = result.errors
    assert (
        "Stripe refused the credentials (HTTP 401: Invalid API Key provided: sk_test_****"
        in message
    )
    assert "`api_key`" in message and "${STRIPE_API_KEY}" in message
    assert wrong not in message and not transient


def test_restricted_key_without_subscriptions_read(stripe: FakeStripe) -> None:
    with pytest.raises(
        HttpError, match="restricted key needs read access to Subscriptions"
    ) as caught:
        collect(source(stripe, api_key=RESTRICTED), now=NOW)
    assert RESTRICTED not in str(caught.value)


def test_rate_limit_without_retry_after_backs_off(stripe: FakeStripe) -> None:
    stripe.inject(
        429,
        {
            "error": {
                "message": "Request rate limit exceeded.",
                "type": "invalid_request_error",
                "code": "rate_limit",
            }
        },
    )
    assert collect(source(stripe, currency="usd", metrics=["mrr"]), now=NOW)[
        "mrr"
    ] == pytest.approx(USD_MRR, 0.01)
    assert stripe.calls() == 2


def test_backfill_mrr_over_time(stripe: FakeStripe) -> None:
    points = backfill(
        source(
            stripe,
            currency="usd",
            metrics=[
                "mrr",
                "active_subscriptions",
                "customers",
                "churned_subscriptions_30d",
                "mrr_eur",
            ],
        ),
        date(2025, 12, 1),
        now=NOW,
    )
    by = {(p.metric, p.ts.date()): p.value for p in points}
    assert min(d for _, d in by) == date(2025, 12, 1) and max(d for _, d in by) == date(2026, 3, 9)
    # end of 2025-12-31: A 49, B 81.67, D 20, J 80 (E ended on Dec 1)
    assert by[("mrr", date(2025, 12, 31))] == pytest.approx(49 + 81.67 + 20 + 80, abs=0.01)
    assert by[("active_subscriptions", date(2025, 12, 31))] == 5  # A, B, D, J and the yen one
    # 2026-02-25: D has ended, C, G, the daily one and the metered one have started
    assert by[("mrr", date(2026, 2, 25))] == pytest.approx(USD_MRR, abs=0.01)
    assert by[("customers", date(2026, 2, 25))] == 8
    assert by[("churned_subscriptions_30d", date(2026, 2, 25))] == 1
    assert by[("churned_subscriptions_30d", date(2025, 12, 30))] == 1  # E ended on Dec 1
    assert by[("churned_subscriptions_30d", date(2025, 12, 31))] == 0  # more than 30 days before
    assert by[("mrr_eur", date(2026, 1, 14))] == 0 and by[("mrr_eur", date(2026, 1, 15))] == 50
    assert all(p.ts.hour == 23 for p in points)


def test_backfill_with_several_currencies_and_no_choice_fails(stripe: FakeStripe) -> None:
    with pytest.raises(Exception, match="set `currency:`"):
        backfill(source(stripe, metrics=["mrr"]), date(2026, 1, 1), now=NOW)


def test_per_currency_metric_names_are_accepted_and_checked() -> None:
    assert Stripe(api_key=KEY, metrics=["mrr_usd", "arr_gbp"]).kpi_ids() == [
        "stripe.mrr_usd",
        "stripe.arr_gbp",
    ]
    with pytest.raises(ValueError, match="unknown metric 'mrr_dollars'"):
        Stripe(api_key=KEY, metrics=["mrr_dollars"])


def test_a_service_echoing_the_key_in_its_error_is_redacted(stripe: FakeStripe) -> None:
    stripe.inject(
        400,
        {"error": {"message": f"Invalid request for key {KEY}", "type": "invalid_request_error"}},
    )
    result = outcome(source(stripe), now=NOW)
    ((_, message, _),) = result.errors
    assert "Invalid request for key ***" in message and KEY not in message


SEATS = [  # graduated: the first 5 seats at $10, the next 5 at $8, then $5 plus a $20 platform fee
    {"up_to": 5, "unit_amount": 1000, "unit_amount_decimal": "1000", "flat_amount": None,
     "flat_amount_decimal": None},
    {"up_to": 10, "unit_amount": 800, "unit_amount_decimal": "800", "flat_amount": None,
     "flat_amount_decimal": None},
    {"up_to": None, "unit_amount": 500, "unit_amount_decimal": "500", "flat_amount": 2000,
     "flat_amount_decimal": "2000"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "quantity", "monthly"),
    [
        ("graduated", 3, 30.0),
        ("graduated", 12, 5 * 10 + 5 * 8 + 2 * 5 + 20),  # 120
        ("volume", 3, 30.0),
        ("volume", 7, 7 * 8.0),
        ("volume", 12, 12 * 5 + 20.0),  # every seat at the tier 12 falls in
    ],
)
def test_tiered_prices_are_read_with_their_tiers(
    stripe: FakeStripe, mode: str, quantity: int, monthly: float
) -> None:
    stripe.subscriptions = [
        subscription(
            customer="cus_T",
            start=ts("2026-01-01"),
            amount=0,
            quantity=quantity,
            tiers=SEATS,
            tiers_mode=mode,
        ),
        subscription(  # the same price again: read once
            customer="cus_U", start=ts("2026-01-02"), amount=0, quantity=0, tiers=SEATS
        ),
    ]
    stripe.subscriptions[1]["items"]["data"][0]["price"] = stripe.subscriptions[0]["items"]["data"][
        0
    ]["price"]
    values = collect(source(stripe, metrics=["mrr"]), now=NOW)
    assert values == {"mrr": pytest.approx(monthly)}
    assert len(stripe.prices_read) == 1
    price_request = next(r for r in stripe.requests if r.path.startswith("/v1/prices/"))
    assert price_request.query.getall("expand[]") == ["tiers"]


def test_transform_quantity_bills_per_package(stripe: FakeStripe) -> None:
    per_thousand = {"divide_by": 1000, "round": "up"}
    stripe.subscriptions = [
        subscription(
            customer="cus_T",
            start=ts("2026-01-01"),
            amount=900,  # $9 per started 1,000 units
            quantity=2500,
            transform_quantity=per_thousand,
        )
    ]
    assert collect(source(stripe, metrics=["mrr"]), now=NOW) == {"mrr": 27.0}
    per_thousand["round"] = "down"
    assert collect(source(stripe, metrics=["mrr"]), now=NOW) == {"mrr": 18.0}


def test_a_key_that_cannot_read_prices_is_told_so(stripe: FakeStripe) -> None:
    stripe.subscriptions = [
        subscription(customer="cus_T", start=ts("2026-01-01"), amount=0, quantity=2, tiers=SEATS)
    ]
    stripe.no_price_read.add(KEY)
    with pytest.raises(HttpError, match="restricted key needs read access to Prices"):
        collect(source(stripe, metrics=["mrr"]), now=NOW)


# discounts: the basil shape, coupon durations, currencies ------------------------------------


def test_a_forever_coupon_in_discounts_halves_mrr(stripe: FakeStripe) -> None:
    """Since 2025-03-31.basil a subscription has only `discounts` (ids unless expanded): a $100
    subscription with a 50% forever coupon is $50 of MRR, not $100."""
    half = coupon(percent_off=50.0, duration="forever")
    stripe.subscriptions = [
        subscription(
            customer="cus_H",
            start=ts("2026-01-01"),
            amount=10000,
            discounts=[discount(half, start=ts("2026-01-01"))],
        )
    ]
    assert collect(source(stripe, metrics=["mrr", "arr"]), now=NOW) == {"mrr": 50.0, "arr": 600.0}
    (request,) = stripe.requests
    assert request.headers["Stripe-Version"] == API_VERSION == "2025-03-31.basil"
    assert request.query["expand[0]"] == "data.discounts"
    assert request.query["expand[1]"] == "data.items.data.discounts"


def test_the_pinned_version_wins_over_the_accounts_default(stripe: FakeStripe) -> None:
    stripe.account_version = "2024-06-20"  # an old account: `discount` without the header
    stripe.subscriptions = [
        subscription(
            customer="cus_H",
            start=ts("2026-01-01"),
            amount=10000,
            discounts=[discount(coupon(percent_off=50.0), start=ts("2026-01-01"))],
        )
    ]
    assert collect(source(stripe, metrics=["mrr"]), now=NOW) == {"mrr": 50.0}
    assert stripe.versions == [API_VERSION]


def test_the_older_single_discount_shape_is_read_too() -> None:
    """Before basil, `discount` holds the object and `discounts` its id: counted once."""
    half = discount(coupon(percent_off=50.0), start=ts("2026-01-01"))
    raw = subscription(customer="cus_H", start=ts("2026-01-01"), amount=10000)
    raw |= {"discount": half, "discounts": [half["id"]]}
    assert _parse(raw, NOW.timestamp()).spans == [(ts("2026-01-01"), float("inf"), 50.0)]


def test_discount_ids_without_their_coupons_are_an_error_not_full_price() -> None:
    raw = subscription(customer="cus_H", start=ts("2026-01-01"), amount=10000)
    raw["discounts"] = ["di_1NotExpanded"]
    with pytest.raises(ExtractError, match=r"di_1NotExpanded .* without its coupon"):
        _parse(raw, NOW.timestamp())


def dated(fake: FakeStripe, limits: list[str] | None = None) -> dict[tuple[str, date], float]:
    points = backfill(source(fake, metrics=["mrr"]), date(2025, 12, 1), now=NOW, limits=limits)
    return {(p.metric, p.ts.date()): p.value for p in points}


def test_a_once_coupon_covers_only_the_first_invoice(stripe: FakeStripe) -> None:
    stripe.subscriptions = [
        subscription(
            customer="cus_O",
            start=ts("2026-01-05"),
            amount=10000,
            discounts=[discount(coupon(percent_off=50.0, duration="once"), start=ts("2026-01-05"))],
        )
    ]
    assert collect(source(stripe, metrics=["mrr"]), now=NOW) == {"mrr": 100.0}
    by = dated(stripe)
    assert by[("mrr", date(2026, 1, 5))] == 50 and by[("mrr", date(2026, 2, 4))] == 50
    assert by[("mrr", date(2026, 2, 5))] == 100  # the second invoice is at full price


def test_a_once_coupon_added_later_covers_the_next_renewal(stripe: FakeStripe) -> None:
    stripe.subscriptions = [
        subscription(
            customer="cus_O",
            start=ts("2025-12-15"),
            amount=10000,
            discounts=[
                discount(
                    coupon(amount_off=3000, currency="usd", duration="once"), start=ts("2026-01-20")
                )
            ],
        )
    ]
    by = dated(stripe)
    assert by[("mrr", date(2026, 1, 31))] == 100  # added after the January invoice
    assert by[("mrr", date(2026, 2, 15))] == 70 and by[("mrr", date(2026, 3, 9))] == 70
    assert collect(source(stripe, metrics=["mrr"]), now=datetime(2026, 3, 16, tzinfo=UTC)) == {
        "mrr": 100.0
    }


def test_a_coupon_with_a_trial_is_spent_on_the_free_first_invoice(stripe: FakeStripe) -> None:
    """Stripe applies a `once` coupon to the first invoice, the $0 one that opens a trial."""
    stripe.subscriptions = [
        subscription(
            customer="cus_T",
            start=ts("2026-02-01"),
            amount=10000,
            status="active",
            trial=(ts("2026-02-01"), ts("2026-02-15")),
            discounts=[discount(coupon(percent_off=50.0, duration="once"), start=ts("2026-02-01"))],
        )
    ]
    limits: list[str] = []
    by = dated(stripe, limits)
    assert min(d for _, d in by) == date(2026, 2, 15)  # nothing is paid before the trial ends
    assert limits == ["the first subscription began paying on 2026-02-15"]
    assert by[("mrr", date(2026, 2, 15))] == 100 and by[("mrr", date(2026, 3, 9))] == 100


def test_a_repeating_coupon_ends_after_its_months(stripe: FakeStripe) -> None:
    three_months = coupon(percent_off=20.0, duration="repeating", duration_in_months=3)
    stripe.subscriptions = [
        subscription(
            customer="cus_R",
            start=ts("2025-11-01"),
            amount=10000,
            discounts=[discount(three_months, start=ts("2025-12-10"), end=ts("2026-03-10"))],
        )
    ]
    by = dated(stripe)
    assert by[("mrr", date(2025, 12, 9))] == 100 and by[("mrr", date(2025, 12, 10))] == 80
    assert by[("mrr", date(2026, 3, 9))] == 80
    assert collect(source(stripe, metrics=["mrr"]), now=NOW) == {"mrr": 100.0}  # ended this noon


def test_amount_off_is_per_invoice_in_the_coupons_currency(stripe: FakeStripe) -> None:
    euro_only = coupon(amount_off=1000, currency="eur")
    stripe.subscriptions = [
        subscription(  # $1,200 a year less $12 an invoice: $99 a month
            customer="cus_Y",
            start=ts("2026-01-01"),
            amount=120000,
            interval="year",
            discounts=[discount(coupon(amount_off=1200, currency="usd"), start=ts("2026-01-01"))],
        ),
        subscription(  # a coupon in euros takes nothing off dollars
            customer="cus_Z",
            start=ts("2026-01-01"),
            amount=5000,
            discounts=[discount(euro_only, start=ts("2026-01-01"))],
        ),
        subscription(  # ...unless it defines an amount for dollars too
            customer="cus_W",
            start=ts("2026-01-01"),
            amount=5000,
            discounts=[
                discount(
                    {**euro_only, "currency_options": {"usd": {"amount_off": 500}}},
                    start=ts("2026-01-01"),
                )
            ],
        ),
        subscription(  # more off than the price: nothing, never less
            customer="cus_V",
            start=ts("2026-01-01"),
            amount=500,
            discounts=[discount(coupon(amount_off=900, currency="usd"), start=ts("2026-01-01"))],
        ),
    ]
    assert collect(source(stripe, metrics=["mrr"]), now=NOW) == {"mrr": 99 + 50 + 45 + 0}


def test_stacked_discounts_apply_in_their_order(stripe: FakeStripe) -> None:
    stripe.subscriptions = [
        subscription(
            customer="cus_S",
            start=ts("2026-01-01"),
            amount=10000,
            discounts=[
                discount(coupon(percent_off=50.0), start=ts("2026-01-01")),
                discount(coupon(amount_off=1000, currency="usd"), start=ts("2026-01-01")),
            ],
        )
    ]
    assert collect(source(stripe, metrics=["mrr"]), now=NOW) == {"mrr": 40.0}


def test_the_worked_example_of_the_docs(stripe: FakeStripe) -> None:
    """The MRR example in the stripe connector's docs, figure for figure (on 2026-03-10)."""
    stripe.subscriptions = [
        subscription(customer="cus_A", start=ts("2025-06-01"), amount=5000, quantity=2),
        subscription(
            customer="cus_B",
            start=ts("2025-09-01"),
            amount=120000,
            interval="year",
            discounts=[discount(coupon(percent_off=25.0), start=ts("2025-09-01"))],
        ),
        subscription(
            customer="cus_C",
            start=ts("2026-03-05"),
            amount=3000,
            status="trialing",
            trial=(ts("2026-03-05"), ts("2026-03-19")),
        ),
        subscription(
            customer="cus_D",
            start=ts("2026-01-10"),
            amount=2000,
            status="past_due",
            discounts=[
                discount(
                    coupon(amount_off=500, currency="usd", duration="once"),
                    start=ts("2026-01-10"),
                )
            ],
        ),
        subscription(
            customer="cus_E",
            start=ts("2025-10-01"),
            amount=10000,
            discounts=[
                discount(
                    coupon(percent_off=50.0, duration="repeating", duration_in_months=3),
                    start=ts("2026-02-01"),
                    end=ts("2026-05-01"),
                )
            ],
        ),
        subscription(
            customer="cus_F",
            start=ts("2025-05-01"),
            amount=4000,
            status="canceled",
            ended_at=ts("2026-02-20"),
        ),
        subscription(customer="cus_G", start=ts("2026-03-01"), amount=9900, status="incomplete"),
        subscription(  # 19% VAT inside a price of 119.00: 100.00 of revenue
            customer="cus_H",
            start=ts("2026-01-01"),
            amount=11900,
            tax_rates=[tax_rate(19.0, inclusive=True)],
        ),
        subscription(  # 19% VAT on top of 100.00: still 100.00
            customer="cus_I",
            start=ts("2026-01-01"),
            amount=10000,
            tax_rates=[tax_rate(19.0, inclusive=False)],
        ),
    ]
    values = collect(
        source(
            stripe,
            metrics=["mrr", "arr", "active_subscriptions", "trialing_subscriptions", "customers"],
        ),
        now=NOW,
    )
    assert values == {
        "mrr": 100 + 75 + 20 + 50 + 100 + 100,
        "arr": 5340,
        "active_subscriptions": 6,
        "trialing_subscriptions": 1,
        "customers": 6,
    }


def test_a_subscription_with_more_items_than_its_embedded_list_holds() -> None:
    # Stripe embeds a subscription's `items` as a list object of at most 10 entries (a list's
    # default `limit`) with `has_more`; the rest are read from `GET /v1/subscription_items
    # ?subscription=...`, paginated with `starting_after` (docs.stripe.com/api/subscription_items/list).
    # 12 seats of $10.00 a month, each its own price: MRR 120.00 (before: 100.00, 10 items).
    first = subscription(customer="cus_Z", start=ts("2026-01-01"), amount=1000)
    extra = copy.deepcopy(first["items"]["data"][0])
    more = []
    for n in range(11):
        item = copy.deepcopy(extra)
        item["id"] = f"si_extra{n:06d}"
        item["price"]["id"] = f"price_extra{n:06d}"
        more.append(item)
    many = subscription(customer="cus_Z", start=ts("2026-01-01"), amount=1000, extra_items=more)
    fake = FakeStripe(keys={KEY}, subscriptions=[many])
    with fake.serve():
        values = collect(source(fake, metrics=["mrr", "active_subscriptions"]), now=NOW)
        assert values == {"mrr": 120.0, "active_subscriptions": 1}
        history = dated(fake)
    assert history[("mrr", date(2026, 3, 9))] == 120.0


def test_a_subscription_paused_at_its_trial_end_never_paid() -> None:
    # "paused: The subscription has ended its trial period without a default payment method
    # and the trial_settings.end_behavior.missing_payment_method is set to pause. Invoices
    # are no longer created" (docs.stripe.com/api/subscriptions/object#subscription_object-status):
    # paused at 2026-02-15, it paid nothing on any day after (before: 30.00 every day to
    # yesterday), and nothing now. A paying subscription beside it keeps the days stored.
    paused = subscription(
        customer="cus_P",
        start=ts("2026-02-01"),
        amount=3000,
        status="paused",
        trial=(ts("2026-02-01"), ts("2026-02-15")),
    )
    paying = subscription(customer="cus_Q", start=ts("2026-01-01"), amount=1000)
    fake = FakeStripe(keys={KEY}, subscriptions=[paused, paying])
    with fake.serve():
        metrics = ["mrr", "active_subscriptions", "customers"]
        assert collect(source(fake, metrics=metrics), now=NOW) == {
            "mrr": 10.0,
            "active_subscriptions": 1,
            "customers": 1,
        }
        points = backfill(source(fake, metrics=metrics), date(2026, 1, 1), now=NOW)
    by = {(p.metric, p.ts.date()): p.value for p in points}
    for day in (date(2026, 2, 14), date(2026, 2, 20), date(2026, 3, 9)):
        assert by[("mrr", day)] == 10.0
        assert by[("active_subscriptions", day)] == 1
        assert by[("customers", day)] == 1


def test_a_discount_on_one_item_lowers_that_item() -> None:
    # A subscription item has its own `discounts` ("Subscription item discounts are applied
    # before subscription discounts", docs.stripe.com/api/subscription_items/object), ids
    # unless expanded (`expand[]=data.items.data.discounts` on the list). $100.00 a month
    # with 50% off `forever` on that item, beside a $20.00 item without one: MRR 70.00
    # (before: 120.00, the item's coupon unseen); with 10% off the whole subscription
    # after it, 63.00.
    sub = subscription(customer="cus_I", start=ts("2026-01-01"), amount=2000)
    item = copy.deepcopy(sub["items"]["data"][0])
    item["id"], item["price"]["id"] = "si_discounted000", "price_discounted000"
    item["price"]["unit_amount"], item["price"]["unit_amount_decimal"] = 10000, "10000"
    item["discounts"] = [discount(coupon(percent_off=50.0), start=ts("2026-01-01"))]
    sub["items"]["data"].append(item)
    fake = FakeStripe(keys={KEY}, subscriptions=[sub])
    with fake.serve():
        assert collect(source(fake, metrics=["mrr"]), now=NOW) == {"mrr": 70.0}
        sub["discounts"] = [discount(coupon(percent_off=10.0), start=ts("2026-02-01"))]
        assert collect(source(fake, metrics=["mrr"]), now=NOW) == {"mrr": 63.0}
        by = dated(fake)
    assert by[("mrr", date(2026, 1, 15))] == 70.0 and by[("mrr", date(2026, 2, 15))] == 63.0
    # unexpanded, the item's discount ids are an error, not the full price
    raw = copy.deepcopy(sub)
    raw["items"]["data"][1]["discounts"] = ["di_1ItemNotExpanded"]
    with pytest.raises(ExtractError, match=r"di_1ItemNotExpanded .* without its coupon"):
        _parse(raw, NOW.timestamp())


def test_a_trial_canceled_before_it_paid_is_not_churn() -> None:
    # Churn is the loss of paying subscriptions: Stripe's billing analytics count a churned
    # subscriber only among the active (paying) ones, and "trialing subscriptions are not
    # counted as active". A trial canceled on 2026-03-01, before its end, never paid: 0
    # churned (before: 1); a paying one canceled the same day: 1.
    trial = subscription(
        customer="cus_T",
        start=ts("2026-02-20"),
        amount=3000,
        status="canceled",
        trial=(ts("2026-02-20"), ts("2026-03-06")),
        ended_at=ts("2026-03-01"),
    )
    paid = subscription(
        customer="cus_U",
        start=ts("2026-01-01"),
        amount=3000,
        status="canceled",
        ended_at=ts("2026-03-01"),
    )
    fake = FakeStripe(keys={KEY}, subscriptions=[trial])
    with fake.serve():
        metrics = ["churned_subscriptions_30d"]
        assert collect(source(fake, metrics=metrics), now=NOW) == {"churned_subscriptions_30d": 0}
        fake.subscriptions.append(paid)
        assert collect(source(fake, metrics=metrics), now=NOW) == {"churned_subscriptions_30d": 1}
        points = backfill(source(fake, metrics=metrics), date(2026, 2, 1), now=NOW)
    by = {p.ts.date(): p.value for p in points}
    assert by[date(2026, 2, 28)] == 0 and by[date(2026, 3, 1)] == 1


def test_a_multi_currency_price_bills_its_option_in_the_subscriptions_currency() -> None:
    # A price with `currency_options` charges a subscription in another currency that
    # option's `unit_amount`; the option is "not included by default" in the list, only
    # with `GET /v1/prices/{id}?expand[]=currency_options` (docs.stripe.com/api/prices/object).
    # $10.00 a month by default, EUR 9.00 as its eur option, 2 seats in eur: mrr_eur 18.00
    # (before: 20.00, the usd amount counted as euros). The usd one is left as it is.
    eur = subscription(customer="cus_E", start=ts("2026-01-01"), amount=1000, quantity=2)
    usd = subscription(customer="cus_D", start=ts("2026-01-01"), amount=1000)
    eur["currency"] = "eur"
    options = {
        "usd": {"unit_amount": 1000, "unit_amount_decimal": "1000", "tax_behavior": "unspecified"},
        "eur": {"unit_amount": 900, "unit_amount_decimal": "900", "tax_behavior": "unspecified"},
    }
    eur["items"]["data"][0]["price"]["currency_options"] = options
    fake = FakeStripe(keys={KEY}, subscriptions=[eur, usd])
    with fake.serve():
        values = collect(source(fake, metrics=["mrr_eur", "mrr_usd"]), now=NOW)
        assert values == {"mrr_eur": 18.0, "mrr_usd": 10.0}
        assert fake.prices_read == [eur["items"]["data"][0]["price"]["id"]]
        # an option missing for the subscription's currency is an error, never the usd amount
        del options["eur"]
        result = outcome(source(fake, metrics=["mrr_eur", "mrr_usd"]), now=NOW)
    assert "no amount in eur" in str(result)


def test_a_free_plan_is_no_paying_subscription() -> None:
    # "If any of the customer's subscriptions are paid subscriptions in an active or past_due
    # state, the customer is an active subscriber"; MRR excludes "any subscribers on free
    # plans" (docs.stripe.com/billing/subscriptions/analytics/glossary). An active $0.00 plan
    # is neither a paying subscription nor a paying customer (before: 3 and 3); a metered
    # one still is (it pays for its usage), and so is the $10.00 one.
    free = subscription(customer="cus_F", start=ts("2026-01-01"), amount=0)
    metered = subscription(customer="cus_M", start=ts("2026-01-01"), amount=5, usage_type="metered")
    paying = subscription(customer="cus_P", start=ts("2026-01-01"), amount=1000)
    fake = FakeStripe(keys={KEY}, subscriptions=[free, metered, paying])
    metrics = ["mrr", "active_subscriptions", "customers"]
    with fake.serve():
        assert collect(source(fake, metrics=metrics), now=NOW) == {
            "mrr": 10.0,
            "active_subscriptions": 2,
            "customers": 2,
        }
        points = backfill(source(fake, metrics=metrics), date(2026, 2, 1), now=NOW)
    by = {(p.metric, p.ts.date()): p.value for p in points}
    assert by[("active_subscriptions", date(2026, 2, 1))] == 2
    assert by[("customers", date(2026, 3, 9))] == 2


def test_a_coupon_for_some_products_discounts_only_their_items() -> None:
    # A coupon's `applies_to.products` limits it to items of those products ("not included
    # by default": `expand[]=data.discounts.coupon.applies_to`, docs.stripe.com/api/coupons/object).
    # A $100.00 plan and a $20.00 add-on, 50% off the plan's product only: MRR 70.00 (before:
    # 60.00, the add-on halved too).
    sub = subscription(
        customer="cus_A",
        start=ts("2026-01-01"),
        amount=2000,
        discounts=[discount(coupon(percent_off=50.0), start=ts("2026-01-01"))],
    )
    plan = copy.deepcopy(sub["items"]["data"][0])
    plan["id"], plan["price"]["id"], plan["price"]["product"] = "si_plan", "price_plan", "prod_plan"
    plan["price"]["unit_amount"], plan["price"]["unit_amount_decimal"] = 10000, "10000"
    sub["items"]["data"].append(plan)
    sub["discounts"][0]["coupon"]["applies_to"] = {"products": ["prod_plan"]}
    fake = FakeStripe(keys={KEY}, subscriptions=[sub])
    with fake.serve():
        assert collect(source(fake, metrics=["mrr"]), now=NOW) == {"mrr": 70.0}
        assert dated(fake)[("mrr", date(2026, 2, 1))] == 70.0
        # `applies_to` with no products limits nothing: the whole subscription is halved
        sub["discounts"][0]["coupon"]["applies_to"] = {"products": []}
        assert collect(source(fake, metrics=["mrr"]), now=NOW) == {"mrr": 60.0}


def test_a_tiered_multi_currency_price_uses_its_options_tiers() -> None:
    # A currency option of a tiered price has its own `tiers` (expanded as
    # `currency_options.<currency>.tiers`, docs.stripe.com/api/prices/object): 12 seats in
    # eur, graduated, EUR 9.00 for the first 10 and 4.50 after: mrr_eur 99.00, never the usd
    # tiers (120.00) counted as euros.
    usd_tiers = [
        {"up_to": 10, "unit_amount": 1000, "flat_amount": None},
        {"up_to": None, "unit_amount": 500, "flat_amount": None},
    ]
    eur_tiers = [
        {"up_to": 10, "unit_amount": 900, "flat_amount": None},
        {"up_to": None, "unit_amount": 450, "flat_amount": None},
    ]
    sub = subscription(
        customer="cus_E", start=ts("2026-01-01"), amount=0, quantity=12, tiers=usd_tiers
    )
    sub["currency"] = "eur"
    option = {"unit_amount": None, "unit_amount_decimal": None, "tiers": eur_tiers}
    sub["items"]["data"][0]["price"]["currency_options"] = {"eur": option}
    fake = FakeStripe(keys={KEY}, subscriptions=[sub])
    with fake.serve():
        assert collect(source(fake, metrics=["mrr_eur"]), now=NOW) == {"mrr_eur": 99.0}
        del option["tiers"]  # an option without its tiers is an error, not the usd tiers
        result = outcome(source(fake, metrics=["mrr_eur"]), now=NOW)
    assert "without the tiers of its eur option" in str(result)


def test_a_page_read_twice_stops_the_list(stripe: FakeStripe) -> None:
    """`has_more` with a cursor that does not move (the same page again) counted its
    subscriptions twice in MRR."""
    page = {
        "object": "list",
        "url": "/v1/subscriptions",
        "has_more": True,
        "data": [{"id": "sub_1Loop", "object": "subscription"}],
    }
    stripe.inject(200, page, path="/v1/subscriptions", times=2)
    result = outcome(source(stripe, currency="usd"), now=NOW)
    assert result.values == {}
    ((_, message, _),) = result.errors
    assert "Stripe listed an object of the subscription list twice" in message


def test_a_currency_no_subscription_ever_paid_in_is_an_error(stripe: FakeStripe) -> None:
    """`currency: gbp` on an account that bills in usd, eur and jpy read 0 MRR, run after
    run (a typo, or the wrong account): now an error naming the currencies there are. The
    other metrics are still read."""
    result = outcome(source(stripe, currency="GBP", metrics=["mrr", "customers"]), now=NOW)
    assert result.values == {"customers": 8}
    ((metric, message, _),) = result.errors
    assert metric == "mrr"
    assert message == (
        "mrr: no subscription has ever paid in gbp (they pay in eur, jpy, usd); "
        "check `currency:` of source 'stripe'"
    )
    result = outcome(source(stripe, metrics=["arr_gbp", "mrr_eur"]), now=NOW)
    assert result.values == {"mrr_eur": 50.0}
    ((metric, message, _),) = result.errors
    assert metric == "arr_gbp" and "ask for arr_eur, arr_jpy, arr_usd instead" in message


def test_a_currency_whose_subscriptions_all_ended_reads_0() -> None:
    """A currency that was paid in (its subscriptions ended) is no typo: its MRR is 0."""
    ended = subscription(
        customer="cus_X",
        start=ts("2025-01-01"),
        amount=2000,
        currency="gbp",
        status="canceled",
        ended_at=ts("2025-12-01"),
    )
    fake = FakeStripe(keys={KEY}, subscriptions=[*dataset(), ended])
    with fake.serve():
        values = collect(source(fake, currency="gbp", metrics=["mrr", "mrr_eur"]), now=NOW)
        assert values == {"mrr": 0.0, "mrr_eur": 50.0}
        # an account without any subscription has no currency to compare with: 0
        fake.subscriptions = []
        assert collect(source(fake, currency="gbp", metrics=["mrr"]), now=NOW) == {"mrr": 0.0}


def test_has_more_without_an_object_to_go_on_after_is_an_error(stripe: FakeStripe) -> None:
    """`has_more` on an empty page: the list stopped there and MRR counted only what came
    before, silently. Now an error says the rest could not be read."""
    stripe.inject(200, {"object": "list", "data": [], "has_more": True, "url": "/v1/subscriptions"})
    result = outcome(source(stripe, currency="usd", metrics=["mrr"]), now=NOW)
    assert result.values == {}
    ((_, message, _),) = result.errors
    assert "Stripe said the subscription list has more" in message
