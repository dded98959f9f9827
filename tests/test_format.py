"""How `format.py` writes numbers and changes for people: a value or a change that shows as
zero has no sign. Before, a tiny negative amount (an average's float noise, a refund of a
fraction of a cent) was written "-$0.00", and a change of a few units on a large base
"+1 (+0.00%)" or "-$0.00 (-0.00%)"."""

from __future__ import annotations

import pytest

from kpi_collector.format import format_change, format_value, signed


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (-0.001, "USD", "$0.00"),
        (-0.004, "EUR", "€0.00"),
        (-0.0049, "GBP", "£0.00"),
        (-0.4, "JPY", "¥0"),  # the yen has no minor unit: rounds to 0
        (-0.0, "USD", "$0"),
        (-0.0, None, "0"),
        (-0.0, "%", "0%"),
        (-1e-13, "ratio", "0%"),
        # what does not show as zero keeps its sign
        (-0.005, "USD", "-$0.01"),
        (-0.6, "JPY", "-¥1"),
        (-1e-7, None, "-1e-07"),
        (-0.0001, "%", "-0.0001%"),
        (-1e-300, None, "-1e-300"),
        (-3.5, "EUR", "-€3.50"),
    ],
)
def test_a_value_shown_as_zero_has_no_sign(value: float, unit: str | None, shown: str) -> None:
    assert format_value(value, unit) == shown


@pytest.mark.parametrize(
    ("current", "previous", "unit", "shown"),
    [
        (100.0, 100.001, "USD", "±$0.00 (0.00%)"),
        (100.001, 100.0, "USD", "±$0.00 (0.00%)"),
        (1e9 + 1, 1e9, None, "+1 (0.00%)"),  # a change too small for two decimals of percent
        (1e9 - 1, 1e9, None, "-1 (0.00%)"),
        (5.0, 5.0000001, None, "-1e-07 (0.00%)"),
        (0.2, 0.2000000001, "ratio", "-1e-08 pp (0.00%)"),
        # unchanged behaviour around it
        (5.0, 5.0, None, "±0"),
        (8450.5, 8000.0, "USD", "+$450.50 (+5.63%)"),
        (97.0, 100.0, None, "-3 (-3.00%)"),
        (1000.0, 999.96, None, "+0.04 (0.00%)"),
        (10.0, None, None, "new"),
    ],
)
def test_a_change_shown_as_zero_has_no_sign(
    current: float, previous: float | None, unit: str | None, shown: str
) -> None:
    assert format_change(current, previous, unit) == shown


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [
        (-0.04, 1, "0.0"),
        (0.04, 1, "0.0"),
        (-0.05, 1, "-0.1"),
        (12.345, 2, "+12.35"),
        (-0.001, 2, "0.00"),
    ],
)
def test_a_signed_percent_that_shows_zero_has_no_sign(
    value: float, digits: int, shown: str
) -> None:
    """A change alert said "changed -0.0%" for a fall of 0.04 %: the sign of a figure that
    shows as zero is dropped there too (`signed`, which `format_change` uses)."""
    assert signed(value, digits) == shown
