"""What an `<input>`'s value is once the browser has read it: the HTML standard's "value
sanitization algorithm" of each input type (section 4.10.5.1), which a form sends instead of
the `value` attribute as the page wrote it (`<input type=email value=" me@x.org ">` sends
`me@x.org`, a `<input type=number value="abc">` nothing, a `<input type=range>` `50`).
Checked against Chromium's entry list (tests/test_login_forms_browser.py)."""

from __future__ import annotations

import colorsys
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
_HEX_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


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
    4.10.5.1.13, "range state"; "step mismatch": the nearest step, ties rounding up), written
    as Chromium writes it (`010`: `10`, `-0`: `0`, `2.50`: `2.5`; `1e1` that needs no
    change and no `min`: `1e+1`, `_chromium_text`)."""
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
    if result == number and given_min is None:  # kept as parsed (`1e1`: `1e+1`)
        return _chromium_text(number)
    return _decimal_text(result)


def _chromium_text(number: Decimal) -> str:
    """`number` as Chromium's `Decimal::ToString` writes a value it parsed and kept: trailing
    zeros dropped; plainly when written without a positive exponent (and not below 1e-6),
    else `d.ddde+N` (`1e1`: `1e+1`, `10e1`: `1e+2`, `2.5e1`: `25`)."""
    sign, digits, exponent = number.as_tuple()
    if not any(digits) or not isinstance(exponent, int):
        return "0"
    shown = "".join(map(str, digits)).lstrip("0")
    original = exponent
    stripped = shown.rstrip("0")
    exponent += len(shown) - len(stripped)
    adjusted = exponent + len(stripped) - 1
    if original <= 0 and adjusted >= -6:
        return _decimal_text(number)
    text = stripped[0] + ("." + stripped[1:] if len(stripped) > 1 else "")
    if adjusted:
        text += "e" + ("+" if adjusted > 0 else "") + str(adjusted)
    return ("-" if sign else "") + text


def _decimal_text(number: Decimal) -> str:
    """A number as the standard writes it: no exponent, no trailing zeros (`50`, `0.3`)."""
    text = f"{number.normalize():f}"
    return "0" if text in ("-0", "") else text


def _color(text: str) -> str:
    """`#rrggbb` in lower case, as Chromium reads a color input's value: hex digits (`#rgb`,
    `#rgba`, `#rrggbb`, `#rrggbbaa`, spaces around them ignored, the alpha dropped), a CSS
    color name (any case), `rgb()`/`rgba()` or `hsl()`/`hsla()`; anything else (nothing,
    `transparent`, a name with spaces around it) `#000000`. Another CSS color function
    (`lab()`, `color()`...) is sent as `#000000` too, where Chromium converts it.
    Checked against Chromium (tests/test_login_forms_browser.py)."""
    stripped = text.strip(_ASCII_SPACE)
    if _HEX_COLOR.fullmatch(stripped):
        digits = stripped[1:].lower()
        if len(digits) <= 4:
            digits = "".join(d * 2 for d in digits)
        return "#" + digits[:6]
    named = _COLOR_NAMES.get(text.lower())
    if named is not None:
        return "#" + named
    found = _COLOR_FUNCTION.fullmatch(text.lower())
    if found is not None:
        parts = [p for p in re.split(r"[\s,/]+", found["args"].strip()) if p]
        if len(parts) in (3, 4):
            rgb = _rgb(found["name"], parts[:3])
            if rgb is not None:
                return "#" + "".join(f"{min(255, max(0, c)):02x}" for c in rgb)
    return "#000000"


_COLOR_FUNCTION = re.compile(r"(?P<name>rgba?|hsla?)\((?P<args>[^()]*)\)")
_CSS_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[-+]?[0-9]+)?")


def _css_number(text: str) -> float | None:
    return float(text) if _CSS_NUMBER.fullmatch(text) else None


def _round(value: float) -> int:
    """Half up, as Chromium rounds a color channel (127.5: 128)."""
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def _rgb(name: str, parts: list[str]) -> tuple[int, int, int] | None:
    """The red, green and blue (0 to 255, not yet clamped) of `rgb(...)`/`hsl(...)`'s first
    three arguments (numbers or percentages; an `hsl` hue in degrees); None when not read."""
    if name.startswith("rgb"):
        channels = []
        for part in parts:
            number = _css_number(part.removesuffix("%"))
            if number is None:
                return None
            channels.append(_round(number * 255 / 100 if part.endswith("%") else number))
        return channels[0], channels[1], channels[2]
    hue = _css_number(parts[0].removesuffix("deg"))
    saturation = _css_number(parts[1].removesuffix("%"))
    lightness = _css_number(parts[2].removesuffix("%"))
    if hue is None or saturation is None or lightness is None:
        return None
    sat, light = min(max(saturation, 0), 100) / 100, min(max(lightness, 0), 100) / 100
    red, green, blue = colorsys.hls_to_rgb((hue % 360) / 360, light, sat)
    return _round(red * 255), _round(green * 255), _round(blue * 255)


#: the CSS named colors (CSS Color Module Level 4, "named colors") as Chromium reads them
_COLOR_NAMES = {
    "aliceblue": "f0f8ff",
    "antiquewhite": "faebd7",
    "aqua": "00ffff",
    "aquamarine": "7fffd4",
    "azure": "f0ffff",
    "beige": "f5f5dc",
    "bisque": "ffe4c4",
    "black": "000000",
    "blanchedalmond": "ffebcd",
    "blue": "0000ff",
    "blueviolet": "8a2be2",
    "brown": "a52a2a",
    "burlywood": "deb887",
    "cadetblue": "5f9ea0",
    "chartreuse": "7fff00",
    "chocolate": "d2691e",
    "coral": "ff7f50",
    "cornflowerblue": "6495ed",
    "cornsilk": "fff8dc",
    "crimson": "dc143c",
    "cyan": "00ffff",
    "darkblue": "00008b",
    "darkcyan": "008b8b",
    "darkgoldenrod": "b8860b",
    "darkgray": "a9a9a9",
    "darkgreen": "006400",
    "darkgrey": "a9a9a9",
    "darkkhaki": "bdb76b",
    "darkmagenta": "8b008b",
    "darkolivegreen": "556b2f",
    "darkorange": "ff8c00",
    "darkorchid": "9932cc",
    "darkred": "8b0000",
    "darksalmon": "e9967a",
    "darkseagreen": "8fbc8f",
    "darkslateblue": "483d8b",
    "darkslategray": "2f4f4f",
    "darkslategrey": "2f4f4f",
    "darkturquoise": "00ced1",
    "darkviolet": "9400d3",
    "deeppink": "ff1493",
    "deepskyblue": "00bfff",
    "dimgray": "696969",
    "dimgrey": "696969",
    "dodgerblue": "1e90ff",
    "firebrick": "b22222",
    "floralwhite": "fffaf0",
    "forestgreen": "228b22",
    "fuchsia": "ff00ff",
    "gainsboro": "dcdcdc",
    "ghostwhite": "f8f8ff",
    "gold": "ffd700",
    "goldenrod": "daa520",
    "gray": "808080",
    "green": "008000",
    "greenyellow": "adff2f",
    "grey": "808080",
    "honeydew": "f0fff0",
    "hotpink": "ff69b4",
    "indianred": "cd5c5c",
    "indigo": "4b0082",
    "ivory": "fffff0",
    "khaki": "f0e68c",
    "lavender": "e6e6fa",
    "lavenderblush": "fff0f5",
    "lawngreen": "7cfc00",
    "lemonchiffon": "fffacd",
    "lightblue": "add8e6",
    "lightcoral": "f08080",
    "lightcyan": "e0ffff",
    "lightgoldenrodyellow": "fafad2",
    "lightgray": "d3d3d3",
    "lightgreen": "90ee90",
    "lightgrey": "d3d3d3",
    "lightpink": "ffb6c1",
    "lightsalmon": "ffa07a",
    "lightseagreen": "20b2aa",
    "lightskyblue": "87cefa",
    "lightslategray": "778899",
    "lightslategrey": "778899",
    "lightsteelblue": "b0c4de",
    "lightyellow": "ffffe0",
    "lime": "00ff00",
    "limegreen": "32cd32",
    "linen": "faf0e6",
    "magenta": "ff00ff",
    "maroon": "800000",
    "mediumaquamarine": "66cdaa",
    "mediumblue": "0000cd",
    "mediumorchid": "ba55d3",
    "mediumpurple": "9370db",
    "mediumseagreen": "3cb371",
    "mediumslateblue": "7b68ee",
    "mediumspringgreen": "00fa9a",
    "mediumturquoise": "48d1cc",
    "mediumvioletred": "c71585",
    "midnightblue": "191970",
    "mintcream": "f5fffa",
    "mistyrose": "ffe4e1",
    "moccasin": "ffe4b5",
    "navajowhite": "ffdead",
    "navy": "000080",
    "oldlace": "fdf5e6",
    "olive": "808000",
    "olivedrab": "6b8e23",
    "orange": "ffa500",
    "orangered": "ff4500",
    "orchid": "da70d6",
    "palegoldenrod": "eee8aa",
    "palegreen": "98fb98",
    "paleturquoise": "afeeee",
    "palevioletred": "db7093",
    "papayawhip": "ffefd5",
    "peachpuff": "ffdab9",
    "peru": "cd853f",
    "pink": "ffc0cb",
    "plum": "dda0dd",
    "powderblue": "b0e0e6",
    "purple": "800080",
    "rebeccapurple": "663399",
    "red": "ff0000",
    "rosybrown": "bc8f8f",
    "royalblue": "4169e1",
    "saddlebrown": "8b4513",
    "salmon": "fa8072",
    "sandybrown": "f4a460",
    "seagreen": "2e8b57",
    "seashell": "fff5ee",
    "sienna": "a0522d",
    "silver": "c0c0c0",
    "skyblue": "87ceeb",
    "slateblue": "6a5acd",
    "slategray": "708090",
    "slategrey": "708090",
    "snow": "fffafa",
    "springgreen": "00ff7f",
    "steelblue": "4682b4",
    "tan": "d2b48c",
    "teal": "008080",
    "thistle": "d8bfd8",
    "tomato": "ff6347",
    "turquoise": "40e0d0",
    "violet": "ee82ee",
    "wheat": "f5deb3",
    "white": "ffffff",
    "whitesmoke": "f5f5f5",
    "yellow": "ffff00",
    "yellowgreen": "9acd32",
}


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
