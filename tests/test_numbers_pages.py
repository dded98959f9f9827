"""Text → number as shop, finance and status pages write amounts: the German and Swiss
price dash (`12,–`, `Fr. 12.–`), the press's `£3.4m` after a currency, and bounds (`<1%`)
that are no value."""

from __future__ import annotations

import pytest

from kpi_collector.collect.numbers import parse_number
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
