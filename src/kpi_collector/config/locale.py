"""`locale:` values: BCP 47 tags that CLDR (through Babel) knows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel import Locale


def babel_locale(tag: str) -> Locale:
    """The Babel locale of a BCP 47 tag (`de`, `de-CH`, `zh-Hant-TW`; `_` also works).

    Raises ValueError naming the tag and how to write one.
    """
    from babel import Locale, UnknownLocaleError

    parts = tag.strip().replace("_", "-").split("-")
    # BCP 47 extensions and private use start at a one-letter subtag (`ar-EG-u-nu-latn`,
    # `de-x-corp`): CLDR's locale is what comes before it
    singleton = next((n for n, part in enumerate(parts) if n and len(part) == 1), len(parts))
    try:
        return Locale.parse("-".join(parts[:singleton]), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(
            f"unknown locale {tag!r}; use a BCP 47 tag CLDR knows, like en, de, de-CH or hi-IN"
        ) from None


def check_locale(tag: str) -> str:
    """`tag` if CLDR knows it (for config validation); ValueError saying how to fix it."""
    babel_locale(tag)
    return tag
