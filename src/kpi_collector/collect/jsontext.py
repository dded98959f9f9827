"""Reading JSON that came from outside (a server's answer, a program's output): every
failure, too deep a nesting included, is a ValueError the caller turns into its message.
"""

from __future__ import annotations

import json
from typing import Any

#: why a document nested too deeply fails (Python's reader recurses once per level and stops
#: at the interpreter's recursion limit, about 1,000 levels)
TOO_DEEP = "it nests deeper than the JSON reader goes"


def loads(data: str | bytes) -> Any:
    """`json.loads(data)`, with a RecursionError (`[[[[...` 100,000 levels deep, which a
    hostile server sends in 200 kB) raised as ValueError(TOO_DEEP), like any other JSON
    that cannot be read, so that it is an error of the source and never looks like a bug.

    A byte order mark before the text is no part of it, as in bytes.

    Raises: ValueError (json.JSONDecodeError for malformed text).
    """
    if isinstance(data, str) and data.startswith("\ufeff"):
        # a byte order mark that text decoded as UTF-8 kept: RFC 8259 lets readers ignore
        # it, and Python's refuses it ("Unexpected UTF-8 BOM") only in text, not in bytes
        data = data[1:]
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
