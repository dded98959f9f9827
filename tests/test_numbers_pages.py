"""Text → number as shop, finance and status pages write amounts: the German and Swiss
price dash (`12,–`, `Fr. 12.–`), the press's `£3.4m` after a currency, and bounds (`<1%`)
that are no value."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.collect.numbers import parse_number
from kpi_collector.demo.server import BackgroundServer
from tests.cli import run_kpi
from tests.numbers_caches import _fresh_number_caches  # noqa: F401 (autouse)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("12,– €", "de", 12),
        ("€ 12,-", "de", 12),
        ("12,—", "de", 12),
        ("1.234,–", "de", 1234),
        ("Fr. 12.–", "de-CH", 12),
        ("CHF 1'200.–", "de-CH", 1200),
        ("12,– €", "de-AT", 12),
        ("(12,–)", "de", -12),  # accounting parentheses around a price
        ("–12,–", "de", -12),  # a minus before, the price dash after
    ],
)
def test_the_price_dash_after_the_decimal_sign_means_no_cents(
    text: str, locale: str, value: float
) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale", "message"),
    [
        ("12,-", "en", "minus after the number"),  # `,` is not en's decimal sign
        ("12,50-", "de", "minus after the number"),  # an accounting export's negative
        ("1.234,00 €-", "de", "minus after the number"),
    ],
)
def test_a_dash_after_digits_or_another_sign_is_still_unsure(
    text: str, locale: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_number(text, locale)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("£3.4m", None, 3.4e6),
        ("€12m", None, 12e6),
        ("US$1.2m", None, 1.2e6),
        ("US$ 5m", None, 5e6),
        ("-$3.4m", None, -3.4e6),
        ("($3.4m)", None, -3.4e6),
        ("$1.5b", None, 1.5e9),
        ("USD 2.5m", None, 2.5e6),
        ("₹4.5m", "en-IN", 4.5e6),
    ],
)
def test_m_and_b_after_an_amount_of_money_are_million_and_billion(
    text: str, locale: str | None, value: float
) -> None:
    """Money is no length nor data: after a currency `m` is the press's million."""
    assert parse_number(text, locale) == value


@pytest.mark.parametrize("text", ["3.4m", "3.4m users", "12 m", "5b"])
def test_m_and_b_without_money_stay_unsure(text: str) -> None:
    with pytest.raises(ValueError, match="could be"):
        parse_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "<1%",
        "< 5",
        "≤ 5",
        "＜5 ms",
        "Error rate: <0.1%",
        "⩽3",
        "<=5",
        "Less than 1%",
        "fewer than 10 errors",
    ],
)
def test_an_upper_bound_is_no_value(text: str) -> None:
    """`<1%` says the value is below 1 (maybe 0): storing 1 would be another number."""
    with pytest.raises(ValueError, match=r"a bound .* not the value.*`regex:`") as caught:
        parse_number(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10M+", 10e6),  # a lower bound is the figure the page shows as it grows
        (">1,000", 1000),
        ("~1,200", 1200),
        ("≈1,200", 1200),
        ("a <b>bold</b> 5", 5),  # markup as text: no bound
        ("1 < 2", None),
    ],
)
def test_lower_bounds_and_approximations_read_as_shown(text: str, value: float | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match="more than one number"):
            parse_number(text)
    else:
        assert parse_number(text) == value


SHOP = """<html lang="de"><body>
<div itemscope itemtype="https://schema.org/Product">
  <meta itemprop="price" content="1.234"><span id="shown">1,234 €</span>
  <meta itemprop="ratingCount" content="1234">
  <data id="units" value="1.5">1,5 Stück</data>
  <span id="tip" title="1.234,5 Downloads">mehr</span>
</div></body></html>"""


@pytest.fixture
def shop() -> Iterator[str]:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=SHOP, content_type="text/html")

    app.router.add_get("/", handler)
    with BackgroundServer(app) as url:
        yield url


def test_an_attribute_is_a_programs_number_not_the_pages(shop: str, workdir: Path) -> None:
    """An attribute's number is written for programs (schema.org's `content="1.234"` is
    1.234, HTML's `<data value>` a valid floating-point number); on a `de` page it was
    read as the page writes numbers, 1234. Where `en` and the page read it differently
    it is an error asking for the metric's `locale:`; the page's own text stays `de`."""
    (workdir / "kpi.yaml").write_text(f"""\
sources:
  - name: shop
    type: html
    url: {shop}/
    metrics:
      price: {{css: "meta[itemprop=price]", attr: content}}
      price_x: {{xpath: "//meta[@itemprop='price']/@content"}}
      price_en: {{css: "meta[itemprop=price]", attr: content, locale: en}}
      price_de: {{css: "meta[itemprop=price]", attr: content, locale: de}}
      shown: "#shown"
      ratings: {{css: "meta[itemprop=ratingCount]", attr: content}}
      units: {{css: "#units", attr: value}}
      tip: {{css: "#tip", attr: title}}
""")
    result = run_kpi(workdir, "run", "--format", "json")
    assert result.returncode == 1, result.stderr
    values = {v["kpi"]: v["value"] for v in json.loads(result.stdout)["values"]}
    assert values == {
        "shop.price_en": 1.234,
        "shop.price_de": 1234,  # the metric says so itself
        "shop.shown": 1.234,  # the page's text, as de writes it
        "shop.ratings": 1234,
        "shop.units": 1.5,  # 1.5 reads one way only
        "shop.tip": 1234.5,  # a text for people, that every reading agrees on
    }
    with sqlite3.connect(workdir / "kpi.db") as conn:
        errors = dict(conn.execute("SELECT kpi, message FROM run_errors"))
    assert set(errors) == {"shop.price", "shop.price_x"}
    for name in ("price", "price_x"):
        assert errors[f"shop.{name}"] == (
            f"{name}: '1.234' reads as 1.234 (as programs and en write numbers) or 1234 (as "
            "de writes them); set `locale:` on the metric to say which (en for 1.234)"
        )
