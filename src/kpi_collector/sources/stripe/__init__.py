"""`type: stripe`: MRR, ARR, subscriptions and paying customers from `GET /v1/subscriptions`
(every status, paginated with `has_more`/`starting_after`); MRR over time for backfill, from
the subscriptions' start, trial-end and end dates.

Amounts are normalised to a month: a price of `unit_amount` per `interval_count` `interval`s
(day, week, month, year) times the item's `quantity`, in the currency's major unit, less a
percent or amount coupon while it applies. A tiered price is read with its tiers
(`GET /v1/prices/{id}?expand[]=tiers`, once per price) and priced for the item's quantity,
graduated or volume; `transform_quantity` is applied. Metered prices have no amount before
the usage is billed and count 0. Discounts (`discounts`, expanded; the older `discount` too)
apply only while their coupon's `duration` covers the invoices: `forever`, `repeating` for
`duration_in_months`, `once` for one billing period. Inclusive tax rates are taken out of
the price; exclusive ones were never in it. Requests pin `Stripe-Version`. Currencies are never converted: `mrr`/`arr` are in `currency:` (or in the only
currency there is), and `mrr_usd`, `arr_eur`, ... give each currency on its own.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
import math
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, MetricErrors
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import MAX_PAGES, ServiceClient, ServiceSource, day_end, days
from kpi_collector.sources.base import Observation, SourceContext

#: the API version this connector reads (sent as `Stripe-Version`): subscriptions carry their
#: discounts only as `discounts` (https://docs.stripe.com/changelog/basil)
API_VERSION = "2025-03-31.basil"
_COUNTS = (
    "active_subscriptions",
    "trialing_subscriptions",
    "customers",
    "churned_subscriptions_30d",
)
_PER_CURRENCY = re.compile(r"^(mrr|arr)_([a-z]{3})$")
#: months in one interval unit
_MONTHS = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}
# https://docs.stripe.com/currencies: amounts are in the smallest unit, except these
_ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}
_THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
_NEVER_PAID = {"incomplete", "incomplete_expired"}
_NOT_PAYING_NOW = {"unpaid", "paused"}
_CHURN_DAYS = 30
_MAX_RENEWALS = 100_000  # a daily price renews 36,500 times in a century


@dataclass
class _Sub:
    """One subscription as spans of time with a monthly amount."""

    id: str
    customer: str
    currency: str
    status: str
    spans: list[tuple[float, float, float]] = field(default_factory=list)  # (from, until, monthly)
    ended_at: float | None = None
    trial: tuple[float, float] | None = None

    @property
    def paying_from(self) -> float | None:
        return self.spans[0][0] if self.spans else None

    @property
    def paying_until(self) -> float:
        return self.spans[-1][1] if self.spans else 0.0


class Stripe(ServiceSource):
    type: ClassVar[str] = "stripe"
    service_name: ClassVar[str] = "Stripe"
    known_metrics: ClassVar[tuple[str, ...]] = ("mrr", "arr", *_COUNTS)
    default_metrics: ClassVar[tuple[str, ...]] = (
        "mrr",
        "arr",
        "active_subscriptions",
        "customers",
        "churned_subscriptions_30d",
    )
    credentials: ClassVar[Mapping[str, str]] = {"api_key": "STRIPE_API_KEY"}

    api_key: Secret = Field(description="a secret key or a restricted key with Subscriptions read")
    currency: str | None = Field(default=None, description="the currency of mrr and arr, e.g. usd")
    api_url: str = "https://api.stripe.com"

    @classmethod
    def accepts_metric(cls, name: str) -> bool:
        return name in cls.known_metrics or _PER_CURRENCY.match(name) is not None

    @field_validator("currency")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError(f"{value!r} is not a currency code like usd or eur")
        return value.lower() if value else None

    def auth(self) -> Auth | None:
        return Auth(bearer=self.api_key)

    def headers(self) -> dict[str, str]:
        # without it the account's default version decides the shape of every answer
        return {**super().headers(), "Stripe-Version": API_VERSION}

    def forbidden(self, response: Response, message: str) -> str:
        needed = (
            "Prices"
            if "/v1/prices/" in response.url or "/v1/plans/" in response.url
            else "Subscriptions"
        )
        return (
            f"Stripe refused the key (HTTP 403{': ' + message if message else ''}): a restricted key needs "
            f"read access to {needed}; check `api_key` of source {self.name!r}"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        subs = await self._subscriptions(self.client(ctx), ctx.now.timestamp())
        now = ctx.now.timestamp()
        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        transient: list[str] = []
        for metric in self.wanted():
            try:
                values[metric] = _at([now], subs, metric, self.currency_of(metric, subs, now))[0]
            except ExtractError as exc:
                errors[metric] = str(exc)
                if exc.transient:
                    transient.append(metric)
        if errors:
            raise MetricErrors(values, errors, transient)
        return values

    def currency_of(self, metric: str, subs: list[_Sub], when: float | None) -> str | None:
        """The currency of a money metric (None for a count); several without `currency:` is
        an error, and so is one that no subscription has ever paid in while others have
        (a typo, or the wrong account: it would read 0 forever)."""
        per = _PER_CURRENCY.match(metric)
        chosen = per.group(2) if per else self.currency
        if metric not in ("mrr", "arr") and not per:
            return None
        if chosen:
            paid = sorted({s.currency for s in subs if s.spans})
            if paid and chosen not in paid:
                fix = (
                    f"ask for {', '.join(f'{metric[:3]}_{c}' for c in paid)} instead"
                    if per
                    else f"check `currency:` of source {self.name!r}"
                )
                raise ExtractError(
                    f"{metric}: no subscription has ever paid in {chosen} (they pay in "
                    f"{', '.join(paid)}); {fix}"
                )
            return chosen
        found = sorted(
            {
                s.currency
                for s in subs
                if s.spans and (when is None or any(a <= when < b for a, b, _ in s.spans))
            }
        )
        if len(found) > 1:
            listed = ", ".join(f"{metric}_{c}" for c in found)
            raise ExtractError(
                f"{metric}: subscriptions are in {', '.join(found)}; set `currency:` of source {self.name!r} "
                f"or ask for {listed} in `metrics:`"
            )
        return found[0] if found else "usd"

    async def _subscriptions(self, client: ServiceClient, now: float) -> list[_Sub]:
        params: dict[str, Any] = {
            "status": "all",
            "limit": 100,
            # Stripe's form arrays, indexed as its libraries send them: the subscriptions'
            # discounts and their items' own (4 levels, the deepest expansion allowed)
            "expand[0]": "data.discounts",
            "expand[1]": "data.items.data.discounts",
            # a coupon's products, "not included by default"
            "expand[2]": "data.discounts.coupon.applies_to",
        }
        raw = await _list_all(client, "/v1/subscriptions", params, "subscription list")
        await self._add_items(client, raw)
        await self._add_currency_options(client, raw)
        await self._add_tiers(client, raw)
        return [_parse(item, now) for item in raw]

    async def _add_items(self, client: ServiceClient, subscriptions: list[dict[str, Any]]) -> None:
        """A subscription embeds at most 10 of its items (a list's default `limit`), with
        `has_more` when it has others: read all of them from `GET /v1/subscription_items
        ?subscription=...`, paginated with `starting_after`
        (https://docs.stripe.com/api/subscription_items/list)."""
        for subscription in subscriptions:
            embedded = subscription.get("items")
            if not isinstance(embedded, dict) or not embedded.get("has_more"):
                continue
            params: dict[str, Any] = {
                "subscription": subscription.get("id"),
                "limit": 100,
                "expand[]": "data.discounts",
            }
            items = await _list_all(
                client, "/v1/subscription_items", params, "subscription item list"
            )
            subscription["items"] = {**embedded, "data": items, "has_more": False}

    async def _add_currency_options(
        self, client: ServiceClient, subscriptions: list[dict[str, Any]]
    ) -> None:
        """A multi-currency price bills a subscription in another currency than its default
        the amount of that currency's option (`currency_options`), which the list leaves out
        ("not included by default"): read each such price once with
        `expand[]=currency_options` and price the item by its option
        (https://docs.stripe.com/api/prices/object#price_object-currency_options)."""
        waiting: dict[str, list[tuple[dict[str, Any], str]]] = defaultdict(list)
        for subscription in subscriptions:
            currency = str(subscription.get("currency") or "").lower()
            for item in (subscription.get("items") or {}).get("data") or []:
                price = _price(item) if isinstance(item, dict) else {}
                own = str(price.get("currency") or "").lower()
                if currency and own and own != currency and price.get("id"):
                    waiting[str(price["id"])].append((price, currency))
        for price_id, prices in waiting.items():
            currencies = sorted({currency for _, currency in prices})
            expand = ["currency_options", *(f"currency_options.{c}.tiers" for c in currencies)]
            body = await client.json(
                f"/v1/prices/{price_id}", params={f"expand[{i}]": e for i, e in enumerate(expand)}
            )
            options = body.get("currency_options") if isinstance(body, dict) else None
            for price, currency in prices:
                option = (options or {}).get(currency)
                if not isinstance(option, dict):
                    raise ExtractError(
                        f"Stripe: price {price_id} is in {price.get('currency')} and has no amount "
                        f"in {currency}, the currency of a subscription it is on"
                    )
                if price.get("billing_scheme") == "tiered" and not option.get("tiers"):
                    # the default currency's tiers would price it in the wrong currency
                    raise ExtractError(
                        f"Stripe: price {price_id} is tiered and came without the tiers of "
                        f"its {currency} option"
                    )
                price["currency"] = currency
                for key in ("unit_amount", "unit_amount_decimal", "tiers"):
                    price[key] = option.get(key)

    async def _add_tiers(self, client: ServiceClient, subscriptions: list[dict[str, Any]]) -> None:
        """Stripe lists a tiered price without its tiers: read each such price once, with them."""
        waiting: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for subscription in subscriptions:
            for item in (subscription.get("items") or {}).get("data") or []:
                price = _price(item) if isinstance(item, dict) else {}
                if (
                    price.get("billing_scheme") == "tiered"
                    and _recurring(price).get("usage_type") != "metered"
                    and not price.get("tiers")
                    and price.get("id")
                ):
                    waiting[str(price["id"])].append(price)
        for price_id, prices in waiting.items():
            path = "/v1/plans/" if price_id.startswith("plan_") else "/v1/prices/"
            body = await client.json(path + price_id, params={"expand[]": "tiers"})
            tiers = body.get("tiers") if isinstance(body, dict) else None
            if not isinstance(tiers, list):
                raise ExtractError(f"Stripe: price {price_id} is tiered but came without tiers")
            for price in prices:
                price["tiers"] = tiers

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Each metric at the end of every day from `since` (or the first subscription) to yesterday.

        A subscription counts from its start (or the end of its trial) until it ended; the price
        is today's, so past price changes are not seen. `trialing_subscriptions` is not backfilled.
        """
        subs = await self._subscriptions(self.client(ctx), ctx.now.timestamp())
        starts = [s.paying_from for s in subs if s.paying_from is not None]
        if not starts:
            return
        first_paid = datetime.fromtimestamp(min(starts), ctx.tz).date()
        first = max(since, first_paid)
        if first_paid > since:
            ctx.limit(f"the first subscription began paying on {first_paid}")
        if "trialing_subscriptions" in self.wanted():
            ctx.limit("trialing_subscriptions has no past values")
        stamps = [day_end(d, ctx.tz) for d in days(first, ctx.today - timedelta(days=1))]
        if not stamps:
            return
        points = [s.timestamp() for s in stamps]
        for metric in self.wanted():
            if metric == "trialing_subscriptions":
                continue
            for stamp, value in zip(
                stamps, _at(points, subs, metric, self.currency_of(metric, subs, None)), strict=True
            ):
                yield Observation(metric, value, stamp)


def _at(points: list[float], subs: list[_Sub], metric: str, currency: str | None) -> list[float]:
    """A metric at each of the (sorted) moments, in one sweep over the subscriptions' spans."""
    if metric in ("mrr", "arr") or _PER_CURRENCY.match(metric):
        factor = 12.0 if metric.startswith("arr") else 1.0
        spans = [(a, b, m) for s in subs if s.currency == currency for a, b, m in s.spans]
        return [round(v * factor, 2) for v in _sweep(points, spans)]
    if metric == "active_subscriptions":
        return _sweep(
            points,
            [(s.paying_from, s.paying_until, 1.0) for s in subs if s.paying_from is not None],
        )
    if metric == "trialing_subscriptions":
        return _sweep(
            points,
            [(s.trial[0], s.trial[1], 1.0) for s in subs if s.trial and s.status != "canceled"],
        )
    if metric == "customers":
        return _customers(points, subs)
    if metric == "churned_subscriptions_30d":
        # churn is a paying subscription lost: one canceled in its trial (or before its first
        # payment) never paid, and was never in active_subscriptions
        ended = sorted(
            s.ended_at
            for s in subs
            if s.ended_at is not None and s.status == "canceled" and s.spans
        )
        window = _CHURN_DAYS * 86400
        return [
            float(bisect.bisect_right(ended, t) - bisect.bisect_right(ended, t - window))
            for t in points
        ]
    raise ExtractError(f"unknown stripe metric {metric!r}")


def _sweep(points: list[float], spans: Iterable[tuple[float, float, float]]) -> list[float]:
    """The sum of the amounts of the spans [from, until) that hold at each moment."""
    events = sorted((t, amount) for a, b, m in spans for t, amount in ((a, m), (b, -m)))
    out: list[float] = []
    total = 0.0
    index = 0
    for point in points:
        while index < len(events) and events[index][0] <= point:
            total += events[index][1]
            index += 1
        out.append(total if abs(total) > 1e-9 else 0.0)
    return out


def _customers(points: list[float], subs: list[_Sub]) -> list[float]:
    """Customers with at least one paying subscription at each moment."""
    events = sorted(
        (t, step, s.customer)
        for s in subs
        if s.paying_from is not None
        for t, step in ((s.paying_from, 1), (s.paying_until, -1))
    )
    active: dict[str, int] = defaultdict(int)
    paying = 0
    out: list[float] = []
    index = 0
    for point in points:
        while index < len(events) and events[index][0] <= point:
            _, step, customer = events[index]
            before = active[customer]
            active[customer] += step
            paying += (active[customer] > 0) - (before > 0)
            index += 1
        out.append(float(paying))
    return out


async def _list_all(
    client: ServiceClient, path: str, params: dict[str, Any], what: str
) -> list[dict[str, Any]]:
    """Every object of a Stripe list at `path`, page by page (`has_more`, then
    `starting_after` the last object's id: https://docs.stripe.com/api/pagination);
    ExtractError naming `what` for an answer without `data`, or past MAX_PAGES pages."""
    objects: list[dict[str, Any]] = []
    ids: set[Any] = set()
    for _ in range(MAX_PAGES):
        body = await client.json(path, params=params)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ExtractError(f"Stripe: the {what} has no `data`")
        page = [item for item in data if isinstance(item, dict)]
        if any(item.get("id") in ids for item in page):
            # a page read before (a cursor that did not move): its objects would count twice
            raise ExtractError(f"Stripe listed an object of the {what} twice")
        ids.update(item.get("id") for item in page)
        objects.extend(page)
        if not body.get("has_more"):
            return objects
        last = page[-1].get("id") if page and page[-1] is data[-1] else None
        if not isinstance(last, str) or not last:
            # no object to go on after: the rest of the list would be left out unsaid
            raise ExtractError(
                f"Stripe said the {what} has more, but its page ends without an object id "
                "to read on after"
            )
        params = {**params, "starting_after": last}
    raise ExtractError(f"Stripe kept answering has_more after {MAX_PAGES} pages")


def _parse(raw: dict[str, Any], now: float) -> _Sub:
    status = str(raw.get("status") or "")
    customer = raw.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    items = (raw.get("items") or {}).get("data") or []
    currency = str(
        raw.get("currency")
        or next((_price(i).get("currency") for i in items if isinstance(i, dict)), "usd")
        or "usd"
    ).lower()
    sub = _Sub(id=str(raw.get("id")), customer=str(customer), currency=currency, status=status)
    ended = _ts(raw.get("ended_at"))
    sub.ended_at = ended
    start = _ts(raw.get("start_date")) or _ts(raw.get("created"))
    trial_end = _ts(raw.get("trial_end"))
    trial_start = _ts(raw.get("trial_start"))
    if trial_start is not None and trial_end is not None:
        sub.trial = (trial_start, min(trial_end, ended) if ended is not None else trial_end)
    if status in _NEVER_PAID or start is None:
        return sub
    begin = max(start, trial_end) if trial_end is not None else start
    # an unpaid or paused subscription has no end date but pays nothing now; a paused one
    # stopped at its trial's end, the only way into `paused` ("ended its trial period without
    # a default payment method", https://docs.stripe.com/api/subscriptions/object)
    if ended is not None:
        until = ended
    elif status == "paused" and trial_end is not None:
        until = trial_end
    else:
        until = now if status in _NOT_PAYING_NOW else float("inf")
    if begin >= until:
        return sub
    parts = [
        (_monthly(item, currency) / _inclusive_tax(item, raw), item)
        for item in items
        if isinstance(item, dict)
    ]
    metered = any(
        _recurring(_price(item)).get("usage_type") == "metered"
        for item in items
        if isinstance(item, dict)
    )
    if not metered and not any(monthly > 0 for monthly, _ in parts):
        # a free plan: Stripe counts only "paid subscriptions" as active subscribers, and
        # MRR leaves out "subscribers on free plans" (docs.stripe.com/billing/subscriptions/
        # analytics/glossary); a metered one pays for its usage
        return sub
    sub.spans = _discounted(begin, until, parts, raw, currency, items)
    return sub


def _price(item: dict[str, Any]) -> dict[str, Any]:
    price = item.get("price") or item.get("plan") or {}
    return price if isinstance(price, dict) else {}


def _recurring(price: dict[str, Any]) -> dict[str, Any]:
    """A price's `recurring` (a legacy plan has interval and usage_type on itself)."""
    recurring = price.get("recurring")
    return recurring if isinstance(recurring, dict) else price


def _interval_months(price: dict[str, Any]) -> float:
    recurring = _recurring(price)
    interval = str(recurring.get("interval") or "month")
    count = recurring.get("interval_count") or 1
    return _MONTHS.get(interval, 1.0) * float(count)


def _monthly(item: dict[str, Any], currency: str) -> float:
    """An item's amount per month in the major unit; 0 for metered prices."""
    price = _price(item)
    if _recurring(price).get("usage_type") == "metered":
        return 0.0
    quantity = item.get("quantity")
    quantity = 1.0 if quantity is None else float(quantity)
    if price.get("billing_scheme") == "tiered":
        amount = _tiered(price.get("tiers") or [], str(price.get("tiers_mode")), quantity)
    else:
        unit = _amount(price, "unit_amount")
        if unit is None:
            unit = _amount(price, "amount") or 0.0  # a legacy plan
        amount = unit * _transformed(quantity, price.get("transform_quantity"))
    return amount / _minor_units(currency) / _interval_months(price)


def _inclusive_tax(item: dict[str, Any], raw: dict[str, Any]) -> float:
    """The factor of tax inside an item's price: its inclusive tax rates (`tax_rates`, else the
    subscription's `default_tax_rates`) add up to `percentage`, and the price is 1 + that.
    Exclusive rates are added on top of the price and never were in it: 1."""
    rates = item.get("tax_rates") or raw.get("default_tax_rates") or []
    percent = sum(
        float(rate.get("percentage") or 0)
        for rate in rates
        if isinstance(rate, dict) and rate.get("inclusive")
    )
    return 1 + percent / 100


def _amount(obj: dict[str, Any], key: str) -> float | None:
    """`key` in minor units, or its `_decimal` twin (a string that may hold fractions)."""
    value = obj.get(key)
    if value is None:
        value = obj.get(f"{key}_decimal")
    return None if value is None else float(value)


def _transformed(quantity: float, transform: Any) -> float:
    """The quantity billed under `transform_quantity` (e.g. per 1,000 units, rounded up)."""
    if not isinstance(transform, dict) or not transform.get("divide_by"):
        return quantity
    divided = quantity / float(transform["divide_by"])
    return float(math.floor(divided) if transform.get("round") == "down" else math.ceil(divided))


def _tiered(tiers: list[Any], mode: str, quantity: float) -> float:
    """What `quantity` costs under `tiers` (sorted by `up_to`, the last one unbounded):
    `volume` prices every unit at the tier the quantity falls in, `graduated` prices each
    unit at the tier it falls in; a tier's flat amount is paid once when it is reached."""
    total = 0.0
    below = 0.0  # units covered by the earlier tiers
    for tier in tiers:
        if not isinstance(tier, dict):
            continue
        up_to = tier.get("up_to")
        top = float("inf") if up_to in (None, "inf") else float(up_to)
        unit = _amount(tier, "unit_amount") or 0.0
        flat = _amount(tier, "flat_amount") or 0.0
        if mode == "volume":
            if quantity <= top:
                return quantity * unit + flat
        else:
            units = min(quantity, top) - below
            if units > 0:
                total += units * unit + flat
            if quantity <= top:
                return total
        below = top
    return total


def _minor_units(currency: str) -> float:
    return 1.0 if currency in _ZERO_DECIMAL else 1000.0 if currency in _THREE_DECIMAL else 100.0


@dataclass(frozen=True)
class _Discount:
    """A coupon applied to a subscription: from `start` until `end`, less `percent` or `amount`
    (a month's worth, in the major unit)."""

    start: float
    end: float
    percent: float = 0.0
    amount: float = 0.0
    #: the products it is limited to (its coupon's `applies_to.products`); None: every item
    products: frozenset[str] | None = None

    def apply(self, monthly: float) -> float:
        return max(0.0, monthly * (1 - self.percent / 100) - self.amount)

    def apply_to(self, amounts: list[float], products: list[str]) -> list[float]:
        """Items' monthly amounts after this discount, on the sum of the items it applies to
        (each lowered in proportion)."""
        chosen = [i for i, p in enumerate(products) if self.products is None or p in self.products]
        subtotal = sum(amounts[i] for i in chosen)
        if subtotal <= 0:
            return amounts
        factor = self.apply(subtotal) / subtotal
        return [a * factor if i in chosen else a for i, a in enumerate(amounts)]


def _discounted(
    begin: float,
    until: float,
    parts: list[tuple[float, dict[str, Any]]],
    raw: dict[str, Any],
    currency: str,
    items: list[Any],
) -> list[tuple[float, float, float]]:
    """[begin, until) split where the discounts start and stop applying, each part with its
    monthly amount after the discounts of that time: each item's own `discounts` on that
    item's amount (`parts`: (monthly amount, item)), then the subscription's on the sum
    ("subscription item discounts are applied before subscription discounts",
    https://docs.stripe.com/api/subscription_items/object), each in their order."""

    def active(found: Iterable[_Discount | None]) -> list[_Discount]:
        return [d for d in found if d is not None and d.start < d.end]

    first = next((i for i in items if isinstance(i, dict)), {})
    price = _price(first)
    discounts = active(
        _discount(obj, raw, currency, price, begin, until) for obj in _discount_objects(raw)
    )
    per_item = [
        active(
            _discount(obj, raw, currency, _price(item), begin, until)
            for obj in _discount_objects(
                item, of=f"item {item.get('id')} of subscription {raw.get('id')}"
            )
        )
        for _, item in parts
    ]
    every = [*discounts, *(d for found in per_item for d in found)]
    cuts = sorted(
        {begin, until, *(t for d in every for t in (d.start, d.end) if begin < t < until)}
    )
    spans = []
    products = [_product(item) for _, item in parts]
    for a, b in itertools.pairwise(cuts):
        amounts = []
        for (monthly, _), found in zip(parts, per_item, strict=True):
            for d in found:
                if d.start <= a < d.end:
                    monthly = d.apply(monthly)
            amounts.append(monthly)
        for d in discounts:
            if d.start <= a < d.end:
                amounts = d.apply_to(amounts, products)
        spans.append((a, b, sum(amounts)))
    return spans


def _product(item: dict[str, Any]) -> str:
    """The id of an item's product (`price.product`, an id or an expanded object)."""
    product = _price(item).get("product")
    return str(product.get("id") if isinstance(product, dict) else product)


def _discount_objects(raw: dict[str, Any], *, of: str = "") -> list[dict[str, Any]]:
    """The discount objects of a subscription (or of one of its items, named by `of`), from
    either shape: `discounts` (expanded, since API version 2025-03-31.basil the only one)
    and the older single `discount`."""
    found: dict[str, dict[str, Any]] = {}
    legacy = raw.get("discount")
    if isinstance(legacy, dict):
        found[str(legacy.get("id") or "discount")] = legacy
    for entry in raw.get("discounts") or []:
        if isinstance(entry, dict):
            found[str(entry.get("id") or len(found))] = entry
        elif str(entry) not in found:
            raise ExtractError(
                f"Stripe sent discount {entry} of {of or 'subscription ' + str(raw.get('id'))} "
                "without its coupon (`expand[]` was not applied); MRR would count it at full price"
            )
    return list(found.values())


def _discount(
    obj: dict[str, Any],
    raw: dict[str, Any],
    currency: str,
    price: dict[str, Any],
    begin: float,
    until: float,
) -> _Discount | None:
    """When a discount applies and what it takes off, by its coupon's `duration`
    (https://docs.stripe.com/api/coupons/object): `forever` from its start on, `repeating` for
    `duration_in_months` (until the discount's `end`), `once` for the one invoice that follows
    its start. None for a coupon in another currency (Stripe would not apply it)."""
    coupon = obj.get("coupon") or (obj.get("source") or {}).get("coupon")
    if not isinstance(coupon, dict):
        raise ExtractError(
            f"Stripe sent discount {obj.get('id')} of subscription {raw.get('id')} without its coupon"
        )
    start = _ts(obj.get("start")) or begin
    duration = str(coupon.get("duration") or "forever")
    if duration == "repeating":
        end = _ts(obj.get("end"))
        if end is None:
            months = int(coupon.get("duration_in_months") or 0)
            end = _add_months(start, months)
    elif duration == "once":
        start, end = _invoice_after(start, raw, price)
    else:
        end = until
    start, end = max(start, begin), min(end, until)
    limited = (coupon.get("applies_to") or {}).get("products")
    # an empty list limits nothing (a coupon for every product, however it is shown)
    products = frozenset(str(p) for p in limited) if isinstance(limited, list) and limited else None
    if coupon.get("percent_off"):
        return _Discount(start, end, percent=float(coupon["percent_off"]), products=products)
    amount_off = coupon.get("amount_off")
    if str(coupon.get("currency") or "").lower() != currency:
        options = (coupon.get("currency_options") or {}).get(currency) or {}
        amount_off = options.get("amount_off")
    if not amount_off:
        return None
    per_month = float(amount_off) / _minor_units(currency) / _interval_months(price)
    return _Discount(start, end, amount=per_month, products=products)


def _invoice_after(start: float, raw: dict[str, Any], price: dict[str, Any]) -> tuple[float, float]:
    """The billing period of the first invoice made at or after `start`: the subscription's
    first one (a trial's too) when the discount came with the subscription, else the period
    that opens at the next renewal (`billing_cycle_anchor` plus whole intervals)."""
    created = _ts(raw.get("start_date")) or _ts(raw.get("created")) or start
    anchor = _ts(raw.get("billing_cycle_anchor")) or created
    recurring = _recurring(price)
    interval = str(recurring.get("interval") or "month")
    count = int(recurring.get("interval_count") or 1)

    def renewal_after(moment: float, *, inclusive: bool) -> float:
        for k in range(_MAX_RENEWALS):
            renewal = _renewal(anchor, interval, count * k)
            if renewal > moment or (inclusive and renewal == moment):
                return renewal
        return math.inf

    opening = created if start <= created else renewal_after(start, inclusive=True)
    return opening, renewal_after(opening, inclusive=False)


def _renewal(anchor: float, interval: str, count: int) -> float:
    """`count` intervals after `anchor`; months keep the anchor's day, or the month's last."""
    if interval == "day":
        return anchor + count * 86400.0
    if interval == "week":
        return anchor + count * 7 * 86400.0
    return _add_months(anchor, count * (12 if interval == "year" else 1))


def _add_months(ts: float, months: int) -> float:
    when = datetime.fromtimestamp(ts, UTC)
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day).timestamp()


def _ts(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
