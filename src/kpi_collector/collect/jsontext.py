"""Reading JSON that came from outside (a server's answer, a program's output): every
failure, too deep a nesting included, is a ValueError the caller turns into its message.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

#: why a document nested too deeply fails (Python's reader recurses once per level and stops
#: at the interpreter's recursion limit, about 1,000 levels)
TOO_DEEP = "it nests deeper than the JSON reader goes"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of JSON text whose keys are all different (RFC 8259 section 4: which of
    two values a reader keeps is undefined): ValueError naming the first repeated key."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            shown = key if len(key) <= 60 else f"{key[:57]}..."
            raise ValueError(f"the key {shown!r} appears twice in one object")
        found[key] = value
    return found


def _exact_float(text: str) -> float | Decimal:
    """A JSON number with a fraction or an exponent: the float, or, when no double holds
    it (1e-400 would be 0.0, 1e400 infinity), the Decimal of what it wrote, which a metric
    refuses with its reason (`extract.finish`) rather than storing 0 or failing as infinity."""
    value = float(text)
    if (value == 0.0 and any(c in "123456789" for c in text.split("e")[0].split("E")[0])) or (
        value in (math.inf, -math.inf)
    ):
        return Decimal(text)
    return value


def loads(data: str | bytes, *, unique_keys: bool = False, exact: bool = False) -> Any:
    """`json.loads(data)`, with a RecursionError (`[[[[...` 100,000 levels deep, which a
    hostile server sends in 200 kB) raised as ValueError(TOO_DEEP), like any other JSON
    that cannot be read, so that it is an error of the source and never looks like a bug.

    A byte order mark before the text is no part of it, as in bytes. With `unique_keys`,
    an object that has a key twice (`{"users": 5, "users": 7}`) is a ValueError, never
    the last of them. With `exact`, a number that no double holds is a Decimal
    (`_exact_float`).

    Raises: ValueError (json.JSONDecodeError for malformed text).
    """
    if isinstance(data, str) and data.startswith("\ufeff"):
        # a byte order mark that text decoded as UTF-8 kept: RFC 8259 lets readers ignore
        # it, and Python's refuses it ("Unexpected UTF-8 BOM") only in text, not in bytes
        data = data[1:]
    try:
        return json.loads(
            data,
            object_pairs_hook=_unique_keys if unique_keys else None,
            parse_float=_exact_float if exact else None,
        )
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
