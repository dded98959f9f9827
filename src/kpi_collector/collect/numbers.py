"""Turning the text people put on pages ("12,374", "1.2k", "59.5%", "$1,200") into numbers."""

from __future__ import annotations

import re

from kpi_collector.secrets import redact_cut

_SUFFIX = {"k": 1e3, "m": 1e6, "mm": 1e6, "b": 1e9, "bn": 1e9, "g": 1e9, "t": 1e12}
_NUMBER = re.compile(
    r"(?P<sign>[-+−]?)\s*[$€£¥₹]?\s*"
    # spaces and apostrophes only ever group thousands (12 374, 1'234'567); other digits
    # separated by a space are two numbers
    r"(?P<num>\d{1,3}(?:['\u00a0\u202f ]\d{3})+(?:[.,]\d+)?(?!\d)|\d[\d,.]*\d|\d)\s*"
    r"(?P<suffix>bn|mm|[kmbgt](?![a-z]))?",
    re.IGNORECASE,
)
_GROUPED_COMMA = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
_GROUPED_DOT = re.compile(r"^\d{1,3}(\.\d{3})+(,\d+)?$")


def _plain(num: str) -> float:
    num = re.sub(r"['\u00a0\u202f ]", "", num)
    if "," in num and "." in num:
        # whichever separator comes last is the decimal point
        if num.rfind(",") > num.rfind("."):
            num = num.replace(".", "").replace(",", ".")
        else:
            num = num.replace(",", "")
    elif "," in num:
        num = num.replace(",", "") if _GROUPED_COMMA.match(num) else num.replace(",", ".")
    elif num.count(".") > 1 and _GROUPED_DOT.match(num):
        num = num.replace(".", "")
    return float(num)


def parse_number(text: str) -> float:
    """Read one number out of `text`; raise ValueError when there is none or more than one.

    Understands thousands separators, decimal commas, currency signs, a trailing percent
    (59.5% → 59.5), metric suffixes (1.2k, 3.4M, 2bn) and accounting negatives ((1,200)).
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("the text is empty")
    negative = stripped.startswith("(") and stripped.endswith(")")
    if negative:
        stripped = stripped[1:-1]
    matches = list(_NUMBER.finditer(stripped))
    if not matches:
        raise ValueError(f"no number in {_quote(text)}")
    if len(matches) > 1:
        raise ValueError(f"more than one number in {_quote(text)}; pick one with `regex:`")
    match = matches[0]
    try:
        value = _plain(match["num"])
    except ValueError:
        raise ValueError(f"cannot read a number from {_quote(text)}") from None
    if match["suffix"]:
        value *= _SUFFIX[match["suffix"].lower()]
    if match["sign"] in ("-", "−") or negative:
        value = -value
    return value


def _quote(text: str) -> str:
    """The page's text for a message: redacted before it is cut (a cut secret would
    survive redaction), at most 60 characters."""
    return repr(redact_cut(" ".join(text.split()), 60))
