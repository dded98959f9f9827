"""Users' regular expressions (`regex:`), run by RE2: time linear in the text, whatever the
pattern, so `(a+)+b` on a hostile page cannot stall a run the way a backtracking engine does.

RE2's syntax is Python's without backreferences and lookaround
(https://github.com/google/re2/wiki/Syntax). Its `\\d`, `\\s` and `\\w` are ASCII only, while
in Python (and on real pages: `12 374` with a no-break space, Arabic-Indic digits) they are
Unicode; `compile_pattern` rewrites them to the Unicode classes Python means, so a pattern
reads the same text in both.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# Python's Unicode meaning of each shorthand (`str.isdecimal`, `str.isspace`, `str.isalnum`
# plus `_`), as RE2 classes; the first form stands alone, the second goes inside `[...]`
_WHITESPACE = r"\s\p{Z}\x0b\x1c-\x1f\x85"
_WORD = r"\p{L}\p{N}_"
_SHORTHAND = {
    "d": (r"\p{Nd}", r"\p{Nd}"),
    "D": (r"\P{Nd}", None),
    "s": (f"[{_WHITESPACE}]", _WHITESPACE),
    "S": (f"[^{_WHITESPACE}]", None),
    "w": (f"[{_WORD}]", _WORD),
    "W": (f"[^{_WORD}]", None),
    "Z": (r"\z", None),  # Python's end of text
}


def unicode_classes(pattern: str) -> str:
    """`pattern` with `\\d \\D \\s \\S \\w \\W` spelled as the Unicode classes Python uses.

    Inside a bracket class `\\d \\s \\w` expand in place; `\\D \\S \\W` there have no RE2
    spelling and keep RE2's ASCII meaning (`\\P{Nd}` is the Unicode way to write `\\D`).
    """
    out: list[str] = []
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escaped = pattern[i + 1]
            forms = _SHORTHAND.get(escaped)
            replacement = None if forms is None else forms[1] if in_class else forms[0]
            out.append(replacement if replacement is not None else pattern[i : i + 2])
            i += 2
            continue
        if not in_class and char == "[":
            in_class = True
            out.append(char)
            i += 1
            # a `]` right after `[` or `[^` is a literal, not the end
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        if in_class and char == "]":
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program for a `regex:` written in Python syntax.

    Raises: ValueError with RE2's reason, saying what RE2 does not do, for a pattern it
    cannot run (a syntax error, a backreference, lookahead or lookbehind).
    """
    import re2

    options = re2.Options()
    options.log_errors = False  # the reason is in the exception; no stray stderr lines
    try:
        return re2.compile(unicode_classes(pattern), options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise ValueError(
            f"regex {pattern!r} is not valid: {reason} (patterns run on RE2, which has no "
            "backreferences or lookaround, so that no page can make one run for minutes)"
        ) from None
