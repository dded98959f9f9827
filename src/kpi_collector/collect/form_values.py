"""What an `<input>`'s value is once the browser has read it: the HTML standard's "value
sanitization algorithm" of each input type (section 4.10.5.1), which a form sends instead of
the `value` attribute as the page wrote it (`<input type=email value=" me@x.org ">` sends
`me@x.org`, a `<input type=number value="abc">` nothing, a `<input type=range>` `50`).
Checked against Chromium's entry list (tests/test_login_forms_browser.py)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_ASCII_SPACE = " \t\n\f\r"
#: "valid floating-point number" (HTML standard, 2.3.4.3): no `+`, no leading or trailing dot
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_YEAR = r"(?P<year>[0-9]{4,})"
_DATE = re.compile(rf"{_YEAR}-(?P<month>[0-9]{{2}})-(?P<day>[0-9]{{2}})")
_MONTH = re.compile(rf"{_YEAR}-(?P<month>[0-9]{{2}})")
_WEEK = re.compile(rf"{_YEAR}-W(?P<week>[0-9]{{2}})")
_TIME = re.compile(
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,3}))?)?"
)
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def sanitized(kind: str, value: str | None, attributes: dict[str, str]) -> str:
    """The value an input of type `kind` (lower case) holds when its `value` attribute is
    `value` (None: absent); `attributes` are its other attributes (`min`, `max`, `step`,
    `multiple`). Types with no sanitization of their own (`hidden`, `checkbox`...) keep the
    attribute as it is."""
    text = value or ""
    if kind in ("text", "search", "tel", "password"):
        return _one_line(text)
    if kind == "url":
        return _one_line(text).strip(_ASCII_SPACE)
    if kind == "email":
        if "multiple" in attributes:
            return ",".join(part.strip(_ASCII_SPACE) for part in text.split(","))
        return _one_line(text).strip(_ASCII_SPACE)
    if kind == "number":
        return text if _number(text) is not None else ""
    if kind == "range":
        return _range(text, attributes)
    if kind == "color":
        return _color(text)
    if kind == "date":
        return text if _date(text) else ""
    if kind == "month":
        found = _MONTH.fullmatch(text)
        return text if found and _valid_month(found) else ""
    if kind == "week":
        found = _WEEK.fullmatch(text)
        return text if found and _valid_week(found) else ""
    if kind == "time":
        return text if _time(text) is not None else ""
    if kind == "datetime-local":
        return _local_date_time(text)
    if kind == "file":  # no file chosen: an empty file name, whatever the attribute says
        return ""
    return text


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "")


def _number(text: str) -> Decimal | None:
    if not _FLOAT.fullmatch(text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _range(text: str, attributes: dict[str, str]) -> str:
    """A range's value: a number, clamped to `min`..`max` (0..100 by default), on its step
    (1 by default, counted from `min`), the middle when the page gives none (section
    4.10.5.1.13, "range state"; "step mismatch": the nearest step, ties rounding up)."""
    given_min = _number(attributes.get("min", ""))
    low = given_min if given_min is not None else Decimal(0)
    high = _number(attributes.get("max", ""))
    high = high if high is not None else Decimal(100)
    if high < low:
        high = low
    number = _number(text)
    if number is None:
        return _decimal_text(low + (high - low) / 2)
    result = min(max(number, low), high)
    step_text = attributes.get("step", "").strip(_ASCII_SPACE).lower()
    if step_text != "any":
        step = _number(step_text)
        step = step if step is not None and step > 0 else Decimal(1)
        base = given_min if given_min is not None else (_number(text) or Decimal(0))
        steps = (result - base) / step
        nearest = (steps + Decimal("0.5")).to_integral_value(rounding="ROUND_FLOOR")
        result = base + nearest * step
        while result > high:
            result -= step
        while result < low:
            result += step
    return text if result == number else _decimal_text(result)


def _decimal_text(number: Decimal) -> str:
    """A number as the standard writes it: no exponent, no trailing zeros (`50`, `0.3`)."""
    text = f"{number.normalize():f}"
    return "0" if text in ("-0", "") else text


def _color(text: str) -> str:
    """`#rrggbb` in lower case; `#rgb` written out; no value `#000000`. Chromium also reads a
    CSS color (`red`); such a value is sent as the page wrote it."""
    if not text.strip(_ASCII_SPACE):
        return "#000000"
    if _HEX_COLOR.fullmatch(text):
        digits = text[1:].lower()
        return "#" + ("".join(d * 2 for d in digits) if len(digits) == 3 else digits)
    return text


def _days_in(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _valid_month(found: re.Match[str]) -> bool:
    return int(found["year"]) > 0 and 1 <= int(found["month"]) <= 12


def _date(text: str) -> bool:
    found = _DATE.fullmatch(text)
    if not found or not _valid_month(found):
        return False
    return 1 <= int(found["day"]) <= _days_in(int(found["year"]), int(found["month"]))


def _valid_week(found: re.Match[str]) -> bool:
    """Weeks 1 to 52, or 53 in a year that has one (ISO 8601: it starts on a Thursday, or a
    Wednesday in a leap year)."""
    year, week = int(found["year"]), int(found["week"])
    if year <= 0 or not 1 <= week <= 53:
        return False
    if week < 53:
        return True
    # the weekday of 1 January (0: Monday), by Gauss's method
    first = (1 + 5 * ((year - 1) % 4) + 4 * ((year - 1) % 100) + 6 * ((year - 1) % 400)) % 7
    first = (first - 1) % 7
    leap = _days_in(year, 2) == 29
    return first == 3 or (leap and first == 2)


def _time(text: str) -> re.Match[str] | None:
    found = _TIME.fullmatch(text)
    if not found or int(found["hour"]) > 23 or int(found["minute"]) > 59:
        return None
    if found["second"] is not None and int(found["second"]) > 59:
        return None
    return found


def _local_date_time(text: str) -> str:
    """A `datetime-local` value as the standard normalizes it: `T` between date and time,
    the time as short as it can be (`03:04`, `03:04:05`, `03:04:05.5`); invalid: empty."""
    date, separator, time = text.partition("T")
    if not separator:
        date, separator, time = text.partition(" ")
    found = _time(time) if separator else None
    if found is None or not _date(date):
        return ""
    shown = f"{found['hour']}:{found['minute']}"
    second = int(found["second"] or 0)
    fraction = (found["fraction"] or "").rstrip("0")
    if second or fraction:
        shown += f":{second:02d}"
    if fraction:
        shown += f".{fraction}"
    return f"{date}T{shown}"
