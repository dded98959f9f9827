"""How numbers and changes are written for people: one place for the CLI, reports and messages."""

from __future__ import annotations

import math
import re

_CURRENCY = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def format_value(value: float, unit: str | None = None) -> str:
    """12374 → "12,374"; 0.1234 with unit % → "0.12%", with unit ratio → "12.34%";
    1200 USD → "$1,200";
    8450.5 USD → "$8,450.50" (a currency amount with cents always shows two decimals,
    JPY none: ISO 4217 minor units: the rounding the reader sees); from 1e16 up, the
    double's shortest form ("1e+300"). A value that is not whole never reads as a whole
    number (`_not_whole`): 99.999 → "99.999", not "100"."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if unit == "ratio":  # a share from 0 to 1 (stickiness = DAU / MAU) reads as a percent
        return format_value(round(value * 100, 10), "%")
    currency = (unit or "").upper() in _CURRENCY
    if currency and (unit or "").upper() == "JPY":
        value = round(value)
    if abs(value) >= 1e16:  # past a double's exact digits: its shortest form, no invented ones
        text = f"{value:,}"
    elif currency and value != int(value):
        text = f"{value:,.2f}"
    elif value == int(value):
        text = f"{int(value):,}"
    else:
        text = _not_whole(value)
    if text.startswith("-") and _shows_zero(text):
        text = text[1:]  # -0.001 USD is "$0.00": a zero shown has no sign
    if not unit:
        return text
    if unit.upper() in _CURRENCY:
        sign = "-" if text.startswith("-") else ""
        return f"{sign}{_CURRENCY[unit.upper()]}{text.lstrip('-')}"
    if unit == "%":
        return f"{text}%"
    return f"{text} {unit}"


#: the significant digits a double keeps of any decimal (DBL_DIG): digits past them are the
#: binary's noise (a float sum's 2.9999999999999996), not the page's number
_EXACT_DIGITS = 15


def _not_whole(value: float) -> str:
    """A value that is not a whole number (below 1e16), rounded visibly: one decimal from 100
    on ("123.5"), two from 1 on ("12.35", "12.3"), four significant digits below 1
    ("0.1235", "1.5e-07"). Where those would read as a whole number ("100" for 99.999,
    "1,000.0" for 999.99, "1" for 0.99999, "1e-07" for 1.00000004e-07) more digits are
    shown, until one that is not zero appears; a value that needs more than 15 significant
    digits for it (`_EXACT_DIGITS`) is the whole number marked "≈" ("≈3")."""
    if abs(value) < 1:
        for digits in range(4, _EXACT_DIGITS + 1):
            text = f"{value:.{digits}g}"
            if not _looks_whole(text) or float(text) == value:  # 1e-07 is the stored 1e-07
                return text
        return "≈" + f"{value:.4g}"
    first = 1 if abs(value) >= 100 else 2
    for decimals in range(first, _EXACT_DIGITS + 1):
        text = f"{value:,.{decimals}f}"
        if not _looks_whole(text):
            return text if first == 1 else text.rstrip("0").rstrip(".")
        if sum(c.isdigit() for c in text) >= _EXACT_DIGITS:
            break
    return "≈" + f"{round(value):,}"


def _looks_whole(text: str) -> bool:
    """Whether a formatted number reads as a whole number: no decimal but zeros before any
    exponent ("100.00", "1,000.0", "1", "1e-07")."""
    return not text.split("e")[0].partition(".")[2].strip("0")


def _shows_zero(text: str) -> bool:
    """Whether a formatted number shows zero ("0.00", "-0", "-$0.00"): no digit but 0
    before any exponent."""
    return not re.search("[1-9]", text.split("e")[0])


def signed(value: float, digits: int = 2) -> str:
    """`value` with `digits` decimals and its sign ("+1.67", "-0.50"); one that shows as zero
    has none ("0.00" for -0.001), as a number that is zero on the page has none."""
    shown = f"{value:+.{digits}f}"
    return shown[1:] if _shows_zero(shown) else shown


def plural(count: int, word: str, many: str | None = None) -> str:
    """ "1 error", "2 errors", "0 errors"; `many` for a word whose plural is not `word + s`
    ("1 delivery", "3 deliveries")."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def percent_change(current: float, previous: float | None) -> float | None:
    """The change in percent, or None where it has no meaning (no or zero previous value)."""
    if previous is None or previous == 0:
        return None
    return (current - previous) / abs(previous) * 100


def marker(current: float, previous: float | None) -> str:
    """⬆, ⬇ or ➡ for up, down and flat; empty with nothing to compare."""
    if previous is None:
        return ""
    if current > previous:
        return "⬆"
    if current < previous:
        return "⬇"
    return "➡"


def format_change(current: float, previous: float | None, unit: str | None = None) -> str:
    """ "+12 (+1.67%)", "-3 (-0.5%)", "±0", or "new" without a previous value; a share
    (`ratio` or `%`) changes in percentage points: 0.2 → 0.25 is "+5 pp (+25.00%)", 59.5% →
    60% "+0.5 pp (+0.84%)". A change or a percent that shows as zero has no sign: -0.001 USD
    is "±$0.00 (0.00%)", never "-$0.00"."""
    if previous is None:
        return "new"
    delta = _difference(current, previous)
    if delta == 0:
        return "±0"
    if unit in ("ratio", "%"):  # a change of a share is in percentage points, not in percent
        scale = 100 if unit == "ratio" else 1
        size = f"{format_value(round(abs(delta) * scale, 10))} pp"
    else:
        size = format_value(abs(delta), unit)
    sign = "±" if _shows_zero(size) else "+" if delta > 0 else "-"
    near, size = ("≈", size[1:]) if size.startswith("≈") else ("", size)
    text = near + sign + size  # "≈+3": the mark first, as on a value
    pct = percent_change(current, previous)
    if pct is not None:
        text += f" ({signed(pct)}%)"
    return text


def _difference(current: float, previous: float) -> float:
    """`current - previous` as the difference of the two numbers as written (their shortest
    forms), without the binary's noise: 0.3 - 0.1 is 0.2, not 0.19999999999999998 (which
    `format_value` would show with all its digits, as it is not 0.2)."""
    if not (math.isfinite(current) and math.isfinite(previous)):
        return current - previous
    from decimal import Decimal

    return float(Decimal(repr(current)) - Decimal(repr(previous)))


#: what a spreadsheet runs as a formula at the start of a cell (OWASP, "CSV Injection"): `=`,
#: `+`, `-`, `@`, a tab, a carriage return, and their full-width forms (Excel in CJK locales)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: a plain number as `number_text` or a spreadsheet saving the file writes it ("-5",
#: "-1.5e-07", "-0,25", "-$1,200.00", "-12 %"): it may start with a sign and stays a number
#: (no operator, parenthesis, letter or quote after the sign: never a formula)
_PLAIN_NUMBER = re.compile(
    r"[-+]\s?[$€£¥]?\s?(?:\d[\d.,\s\u00a0\u202f]*|[.,]\d+)(?:[eE][-+]?\d+)?\s?[%$€£¥]?"
)


def spreadsheet_text(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows and never runs: a text that starts like a
    formula (`FORMULA_STARTS`, after any `'`) gets a leading `'`; numbers ("-5") stay as they
    are. `cell_text` reads it back."""
    if text.lstrip("'").startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def cell_text(cell: str) -> str:
    """The text `spreadsheet_text` wrote into a cell (one leading `'` it added taken off)."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS):
        return cell[1:]
    return cell
