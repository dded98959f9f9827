"""Write src/kpi_collector/collect/cldr_numbers.json from Babel's CLDR data.

Reading every locale takes Babel about ten seconds, too slow for each `kpi run`, so what
the number parser needs from *all* locales is kept here: the ways CLDR writes decimals and
groups (decimal symbol, group symbol, group sizes), every compact scale word (`Mio.`,
`Tsd`, `lakh`, `万`) with its multiplier, and the scale words a regional variant of a
language has that the language itself does not (en-IN `L` lakh, fr-CA `G` milliard). The
locale in force is always read from Babel itself. tests/test_numbers_locale.py checks the file against the installed Babel.

Usage: ``python scripts/cldr_numbers.py [--check]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src/kpi_collector/collect/cldr_numbers.json"
#: which locale names a convention in messages, when several write numbers the same way
FAMOUS = (
    "en",
    "de",
    "fr",
    "es",
    "hi",
    "ar",
    "de_CH",
    "en_IN",
    "fr_CH",
    "fa",
    "ja",
    "zh",
    "ru",
    "pt",
    "it",
)


def build() -> dict[str, object]:
    from babel import Locale, localedata

    from kpi_collector.collect.numbers import affixes_and_scales, canonical_separator, groupings

    conventions: dict[tuple[str, str, int, int], list[str]] = {}
    scales: dict[str, dict[str, list[str]]] = {}
    currencies: set[str] = set()
    own: dict[str, dict[str, float]] = {}  # tag -> its compact words (as written) and sizes
    for tag in localedata.locale_identifiers():
        locale = Locale.parse(tag)
        for symbol in locale.currency_symbols.values():
            # symbols written with letters, in mixed or lower case (Rs, Rp, kr, zł, Ksh):
            # all-capital ones (SR, FB, UP) read as codes and names too
            written = " ".join(canonical_separator(str(symbol)).split())
            if len(written) >= 2 and any(char.islower() for char in written):
                currencies.add(written)
        sizes = groupings(locale)
        for system in {"latn", locale.default_numbering_system}:
            symbols = locale.number_symbols.get(system) or {}
            decimals = {symbols.get("decimal"), symbols.get("currencyDecimal")} - {None}
            groups = {symbols.get("group"), symbols.get("currencyGroup")} - {None}
            for decimal in decimals:
                for group in groups:
                    for primary, secondary in sizes:
                        key = (
                            canonical_separator(str(decimal)),
                            canonical_separator(str(group)),
                            primary,
                            secondary,
                        )
                        conventions.setdefault(key, []).append(tag)
        suffixes, prefixes = affixes_and_scales(locale)
        own[tag] = {}
        for word, scale in [*suffixes.items(), *prefixes.items()]:
            if scale != scale:  # NaN: the locale gives the word two sizes
                continue
            own[tag][word.rstrip(".")] = scale
            scales.setdefault(word.rstrip(".").casefold(), {}).setdefault(str(scale), []).append(
                tag
            )

    def example(tags: list[str]) -> str:
        famous = [t for t in FAMOUS if t in tags]
        return famous[0] if famous else min(tags, key=lambda t: (len(t), t))

    # a language's regions (en_IN, fr_CA: a language and a territory, no script) and the
    # words they scale with that the language itself does not
    regional: dict[str, dict[str, dict[str, list[str]]]] = {}
    for tag, words in own.items():
        parts = tag.split("_")
        if len(parts) != 2 or not (parts[1].isupper() or parts[1].isdigit()):
            continue
        base = own.get(parts[0], {})
        for word, scale in words.items():
            if base.get(word) != scale:
                found = regional.setdefault(parts[0], {}).setdefault(word, {})
                found.setdefault(str(scale), []).append(tag)
    return {
        "conventions": sorted([*key, example(tags)] for key, tags in conventions.items()),
        "currencies": sorted(currencies),
        "regional": {
            language: {
                word: {scale: example(tags) for scale, tags in sorted(found.items())}
                for word, found in sorted(words.items())
            }
            for language, words in sorted(regional.items())
        },
        "scales": {
            word: {scale: example(tags) for scale, tags in sorted(found.items())}
            for word, found in sorted(scales.items())
        },
    }


def main(argv: list[str]) -> int:
    text = (
        json.dumps(build(), ensure_ascii=False, indent=0, sort_keys=True, separators=(",", ":"))
        + "\n"
    )
    if "--check" in argv:
        same = OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUT} is stale: run python scripts/cldr_numbers.py")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
