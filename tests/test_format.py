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


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        # a value that is not whole never reads as a whole number, nor as the next magnitude
        (99.999, None, "99.999"),  # was "100"
        (999.99, None, "999.99"),  # was "1,000.0"
        (0.99999, None, "0.99999"),  # was "1"
        (100.04, None, "100.04"),  # was "100.0"
        (1.004, None, "1.004"),  # was "1"
        (-99.999, None, "-99.999"),
        (99.999, "%", "99.999%"),  # an uptime of 99.999% is not "100%"
        (0.99999, "ratio", "99.999%"),
        (1.00000004e-7, None, "1.00000004e-07"),  # was "1e-07"
        (1234567.04, "visits", "1,234,567.04 visits"),
        # past the 15 digits a double keeps of a decimal (a float sum's noise) it is marked
        (2.9999999999999996, None, "≈3"),
        (999.9999999999999, None, "≈1,000"),
        (0.9999999999999999, None, "≈1"),
        (-2.9999999999999996, None, "≈-3"),
        # whole numbers up to 1e16 have no stray ".0"
        (1e15, None, "1,000,000,000,000,000"),
        (9007199254740992.0, None, "9,007,199,254,740,992"),
        (-5e15, None, "-5,000,000,000,000,000"),
        (1e15 + 0.5, None, "1,000,000,000,000,000.5"),
        # the documented examples stay
        (12374.0, None, "12,374"),
        (0.1234, "%", "0.1234%"),
        (0.1234, "ratio", "12.34%"),
        (1200.0, "USD", "$1,200"),
        (8450.5, "USD", "$8,450.50"),
        (1e300, None, "1e+300"),
        (12.345, None, "12.35"),  # rounded visibly: two decimals that are not zero
        (123.45, None, "123.5"),
        (0.123456, None, "0.1235"),
    ],
)
def test_a_value_that_is_not_whole_never_reads_as_whole(
    value: float, unit: str | None, shown: str
) -> None:
    """99.999 was shown "100", 999.99 "1,000.0" and 0.99999 "1": a rounded value that reads
    as an exact whole number (an uptime of 99.999% as "100%"), against the promise that a
    number shown is the stored number, rounded visibly at most. Such a value gets the digits
    it needs; past a double's 15 digits it is marked "≈"."""
    assert format_value(value, unit) == shown


@pytest.mark.parametrize(
    ("current", "previous", "unit", "shown"),
    [
        (199.999, 100.0, None, "+99.999 (+100.00%)"),
        (100.0, 199.999, None, "-99.999 (-50.00%)"),
        (100.04, 100.0, None, "+0.04 (+0.04%)"),
        (99.999, 0.0, "%", "+99.999 pp"),
        # the noise of a float sum is marked before the sign: "≈+3", never "+≈3"
        (2.9999999999999996, 0.0, None, "≈+3"),
        (0.0, 2.9999999999999996, None, "≈-3 (-100.00%)"),
        # a change is the difference of the two numbers as written, not of their binary
        # forms: 0.3 - 0.1 is 0.2 ("0.19999999999999998" in binary)
        (0.3, 0.1, None, "+0.2 (+200.00%)"),
        (1.1, 2.2, None, "-1.1 (-50.00%)"),
    ],
)
def test_a_change_that_is_not_whole_never_reads_as_whole(
    current: float, previous: float, unit: str | None, shown: str
) -> None:
    assert format_change(current, previous, unit) == shown
