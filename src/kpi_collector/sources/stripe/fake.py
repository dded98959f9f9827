"""A local Stripe API: `GET /v1/subscriptions` (list objects, `has_more`/`starting_after`,
`status=all`, newest first; each subscription's `items` embedded as a list object of at most
10 entries, a list's default `limit`, with `has_more`), `GET /v1/subscription_items` (the
items of one subscription, paginated with `starting_after`), `GET /v1/prices/{id}` (`tiers` only with `expand[]=tiers` and
a multi-currency price's `currency_options` only with `expand[]=currency_options`, as Stripe
does), bearer or basic secret keys, and Stripe's error objects.

Answers are shaped by the API version: the `Stripe-Version` header, else the account's
default version. Since 2025-03-31.basil a subscription has no `discount`, only `discounts`,
a list of discount ids that `expand[]=data.discounts` turns into discount objects (each with
its coupon); before, `discount` held the first discount object and `discounts` its ids
(https://docs.stripe.com/changelog/basil/2025-03-31/deprecate-singular-coupon-promotion-code).
"""

from __future__ import annotations

import base64
import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, bearer, respond

_ids = itertools.count(1)
BASIL = "2025-03-31.basil"  # the first version without a subscription's `discount`


def coupon(
    *,
    duration: str = "forever",
    percent_off: float | None = None,
    amount_off: int | None = None,
    currency: str | None = None,
    duration_in_months: int | None = None,
) -> dict[str, Any]:
    """A coupon object shaped like Stripe's."""
    return {
        "id": f"CPN{next(_ids):08d}",
        "object": "coupon",
        "amount_off": amount_off,
        "created": 1735689600,
        "currency": currency,
        "duration": duration,
        "duration_in_months": duration_in_months,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": None,
        "percent_off": percent_off,
        "redeem_by": None,
        "times_redeemed": 1,
        "valid": True,
    }


def tax_rate(percentage: float, *, inclusive: bool) -> dict[str, Any]:
    """A tax rate object shaped like Stripe's."""
    return {
        "id": f"txr_{next(_ids):024d}",
        "object": "tax_rate",
        "active": True,
        "country": "DE",
        "display_name": "VAT",
        "inclusive": inclusive,
        "jurisdiction": "DE",
        "percentage": percentage,
        "tax_type": "vat",
    }


def discount(coupon: dict[str, Any], *, start: float, end: float | None = None) -> dict[str, Any]:
    """A discount object (the application of a coupon; `end` only for a `repeating` one)."""
    return {
        "id": f"di_{next(_ids):024d}",
        "object": "discount",
        "checkout_session": None,
        "coupon": coupon,
        "customer": None,
        "end": int(end) if end is not None else None,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "start": int(start),
        "subscription": None,
    }


def subscription(
    *,
    customer: str,
    start: float,
    amount: int,
    currency: str = "usd",
    interval: str = "month",
    interval_count: int = 1,
    quantity: int = 1,
    status: str = "active",
    ended_at: float | None = None,
    trial: tuple[float, float] | None = None,
    usage_type: str = "licensed",
    discounts: list[dict[str, Any]] | None = None,
    tax_rates: list[dict[str, Any]] | None = None,
    extra_items: list[dict[str, Any]] | None = None,
    tiers: list[dict[str, Any]] | None = None,
    tiers_mode: str = "graduated",
    transform_quantity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A subscription object shaped like Stripe's (one price item, plus any extra items)."""
    number = next(_ids)
    sub_id = f"sub_{number:024d}"
    price = {
        "id": f"price_{number:024d}",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": int(start),
        "currency": currency,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": f"prod_{number:014d}",
        "recurring": {
            "aggregate_usage": None,
            "interval": interval,
            "interval_count": interval_count,
            "trial_period_days": None,
            "usage_type": usage_type,
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": transform_quantity,
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }
    if tiers is not None:  # kept here, sent only to `expand[]=tiers`
        price |= {"billing_scheme": "tiered", "tiers_mode": tiers_mode, "tiers": tiers}
        price |= {"unit_amount": None, "unit_amount_decimal": None}
    item: dict[str, Any] = {
        "id": f"si_{number:014d}",
        "object": "subscription_item",
        "created": int(start),
        "metadata": {},
        "price": price,
        "subscription": sub_id,
    }
    if usage_type != "metered":
        item["quantity"] = quantity
    items = [item, *(extra_items or [])]
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "billing_cycle_anchor": int(trial[1]) if trial else int(start),
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": int(ended_at) if ended_at else None,
        "collection_method": "charge_automatically",
        "created": int(start),
        "currency": currency,
        "customer": customer,
        "days_until_due": None,
        "default_tax_rates": tax_rates or [],
        "default_payment_method": None,
        "description": None,
        "discounts": [{**d, "subscription": sub_id, "customer": customer} for d in discounts or []],
        "ended_at": int(ended_at) if ended_at else None,
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "total_count": len(items),
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": {},
        "quantity": quantity if len(items) == 1 else None,
        "start_date": int(start),
        "status": status,
        "trial_end": int(trial[1]) if trial else None,
        "trial_start": int(trial[0]) if trial else None,
    }


@dataclass
class FakeStripe(FakeService):
    keys: set[str] = field(default_factory=set)
    restricted_keys: set[str] = field(default_factory=set)  # keys without Subscriptions read
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    prices_read: list[str] = field(default_factory=list)  # ids asked of GET /v1/prices/{id}
    no_price_read: set[str] = field(default_factory=set)  # keys that may not read prices
    account_version: str = BASIL  # the version used when a request sends no Stripe-Version
    versions: list[str] = field(default_factory=list)  # the Stripe-Version header of each request

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/subscriptions", self.list_subscriptions)
        app.router.add_get("/v1/prices/{id}", self.get_price)
        app.router.add_get("/v1/subscription_items", self.list_items)

    def _after(
        self, request: web.Request, objects: list[dict[str, Any]], kind: str
    ) -> list[dict[str, Any]] | web.Response:
        """The list objects after `starting_after` (an object's id), as Stripe pages them; a
        400 `resource_missing` for an id the list does not hold."""
        after = request.query.get("starting_after")
        if not after:
            return objects
        ids = [o["id"] for o in objects]
        if after not in ids:
            return self._error(
                400, f"No such {kind}: '{after}'", param="starting_after", code="resource_missing"
            )
        return objects[ids.index(after) + 1 :]

    @staticmethod
    def _error(status: int, message: str, **extra: Any) -> web.Response:
        return respond(
            status,
            {"error": {"message": message, "type": "invalid_request_error", **extra}},
            {"Request-Id": "req_fake123"},
        )

    @staticmethod
    def key_of(request: web.Request) -> str | None:
        """The secret key a request carries: Stripe takes it as the username of HTTP Basic
        auth (its documented default, no password needed: `curl -u sk_test_...:`) or as a
        Bearer token (docs.stripe.com/api/authentication)."""
        value = request.headers.get("Authorization", "")
        if value.startswith("Basic "):
            try:
                decoded = base64.b64decode(value[6:], validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return None
            return decoded.partition(":")[0] or None
        return bearer(request)

    def _refused(self, request: web.Request) -> web.Response | None:
        key = self.key_of(request)
        if key is None:
            return self._error(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if key not in self.keys:
            masked = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
            return self._error(401, f"Invalid API Key provided: {masked}")
        if key in self.restricted_keys:
            return self._error(
                403,
                f"The provided key '{key[:8]}***' does not have the required permissions for "
                "this endpoint on account 'acct_1Fake'. Having the 'rak_subscription_read' permission "
                "would allow this request to continue.",
            )
        return None

    async def get_price(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        price_id = request.match_info["id"]
        if self.key_of(request) in self.no_price_read:
            return self._error(
                403,
                "The provided key 'rk_test_***' does not have the required permissions for this "
                "endpoint on account 'acct_1Fake'. Having the 'rak_price_read' permission would "
                "allow this request to continue.",
            )
        for sub in self.subscriptions:
            for item in sub["items"]["data"]:
                if item["price"]["id"] == price_id:
                    self.prices_read.append(price_id)
                    price = copy.deepcopy(item["price"])
                    if "tiers" not in _expansions(request):
                        price.pop("tiers", None)
                    if "currency_options" not in _expansions(request):
                        price.pop("currency_options", None)
                    return respond(200, price, {"Request-Id": "req_fake123"})
        return self._error(404, f"No such price: '{price_id}'", param="id", code="resource_missing")

    @staticmethod
    def _limit(request: web.Request) -> int | web.Response:
        try:
            limit = int(request.query.get("limit", 10))
        except ValueError:
            return FakeStripe._error(400, "Invalid integer: limit", param="limit")
        if not 1 <= limit <= 100:
            return FakeStripe._error(
                400, "This value must be between 1 and 100 (it currently is 1000).", param="limit"
            )
        return limit

    async def list_items(self, request: web.Request) -> web.Response:
        """`GET /v1/subscription_items?subscription=sub_...`: one subscription's items, oldest
        first, `limit` (default 10) a page, `starting_after` an item id."""
        refused = self._refused(request)
        if refused is not None:
            return refused
        limit = self._limit(request)
        if isinstance(limit, web.Response):
            return limit
        sub_id = request.query.get("subscription")
        if not sub_id:
            return self._error(400, "Missing required param: subscription.", param="subscription")
        sub = next((s for s in self.subscriptions if s["id"] == sub_id), None)
        if sub is None:
            return self._error(
                404,
                f"No such subscription: '{sub_id}'",
                param="subscription",
                code="resource_missing",
            )
        items = sub["items"]["data"]
        items_after = self._after(request, items, "subscription item")
        if isinstance(items_after, web.Response):
            return items_after
        items = items_after
        page = copy.deepcopy(items[:limit])
        expanded = "data.discounts" in _expansions(request)
        for item in page:  # a list never carries a price's tiers
            item["price"].pop("tiers", None)
            item["price"].pop("currency_options", None)  # includable only on a price itself
            found = item.setdefault("discounts", [])
            if not expanded:
                item["discounts"] = [d["id"] if isinstance(d, dict) else d for d in found]
        return respond(
            200,
            {
                "object": "list",
                "url": "/v1/subscription_items",
                "has_more": len(items) > limit,
                "data": page,
            },
            {"Request-Id": "req_fake123"},
        )

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        limit = self._limit(request)
        if isinstance(limit, web.Response):
            return limit
        status = request.query.get("status")
        if status == "all":
            items = self.subscriptions
        elif status:
            items = [s for s in self.subscriptions if s["status"] == status]
        else:  # by default, every subscription that is not canceled
            items = [
                s
                for s in self.subscriptions
                if s["status"] not in ("canceled", "incomplete_expired")
            ]
        items = sorted(items, key=lambda s: (s["created"], s["id"]), reverse=True)
        items_after = self._after(request, items, "subscription")
        if isinstance(items_after, web.Response):
            return items_after
        items = items_after
        page = copy.deepcopy(items[:limit])
        version = request.headers.get("Stripe-Version") or self.account_version
        self.versions.append(request.headers.get("Stripe-Version", ""))
        expand = _expansions(request)
        expanded = "data.discounts" in expand
        items_expanded = "data.items.data.discounts" in expand
        for sub in page:  # a list never carries a price's tiers
            for item in sub["items"]["data"]:
                item["price"].pop("tiers", None)
                # "not included by default": only `GET /v1/prices/{id}?expand[]=currency_options`
                item["price"].pop("currency_options", None)
            # an embedded list holds a list's default 10 entries; the rest are one request away
            embedded = sub["items"]["data"]
            sub["items"]["data"] = embedded[:10]
            sub["items"]["has_more"] = len(embedded) > 10
            objects = sub["discounts"]
            if version[:10] < BASIL[:10]:
                sub["discount"] = objects[0] if objects else None
            if "data.discounts.coupon.applies_to" not in expand:
                for d in objects:  # "not included by default"
                    d["coupon"].pop("applies_to", None)
            sub["discounts"] = objects if expanded else [d["id"] for d in objects]
            for item in sub["items"]["data"]:
                found = item.setdefault("discounts", [])
                if not items_expanded:
                    item["discounts"] = [d["id"] if isinstance(d, dict) else d for d in found]
        return respond(
            200,
            {
                "object": "list",
                "url": "/v1/subscriptions",
                "has_more": len(items) > limit,
                "data": page,
            },
            {"Request-Id": "req_fake123"},
        )


def _expansions(request: web.Request) -> list[str]:
    """The fields a request asks expanded: `expand[]=a&expand[]=b` or the indexed form the
    official libraries send, `expand[0]=a&expand[1]=b` (both are Stripe's form arrays)."""
    return [
        value
        for key, value in request.query.items()
        if key == "expand[]" or re.fullmatch(r"expand\[\d+\]", key)
    ]
