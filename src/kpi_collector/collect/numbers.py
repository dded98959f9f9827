"""Turning the text people put on pages ("12,374", "1,5 Mio.", "₹12,34,567", "-.5%") into
numbers: the right value under the locale in force, or a ValueError that says why.

The locale's decimal and group symbols, group sizes, compact scale words and unit symbols
come from CLDR through Babel. What the parser needs from *all* locales (every way CLDR
writes decimals and groups, every compact scale word) is generated from Babel into
`cldr_numbers.json` by scripts/cldr_numbers.py. A text that the locale in force does not
read, and that other CLDR locales read as different numbers, is an error, never a guess.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Context, Decimal
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kpi_collector.config.locale import babel_locale
from kpi_collector.secrets import redact_cut

if TYPE_CHECKING:
    from babel import Locale

DEFAULT_LOCALE = "en"
_FAMOUS = ("en", "de", "fr", "es", "hi", "ar", "de_CH", "en_IN", "fr_CH", "fa")

#: English scale words and abbreviations, on top of the locale's own CLDR compact forms
#: (the locale wins where both name the same affix, e.g. Spanish `B` is 10^12)
_ENGLISH_WORDS = {
    "dozen": 12.0,
    "dozens": 12.0,
    "hundred": 1e2,
    "hundreds": 1e2,
    "thousand": 1e3,
    "thousands": 1e3,
    "million": 1e6,
    "millions": 1e6,
    "billion": 1e9,
    "billions": 1e9,
    "trillion": 1e12,
    "trillions": 1e12,
    "lakh": 1e5,
    "lakhs": 1e5,
    "lac": 1e5,  # Indian English spells lakh so too ("Rs 1.5 lacs")
    "lacs": 1e5,
    "crore": 1e7,
    "crores": 1e7,
}
_ENGLISH_ABBREVIATIONS = {
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "MM": 1e6,
    "mn": 1e6,
    "Mn": 1e6,
    "B": 1e9,
    "bn": 1e9,
    "Bn": 1e9,
    "T": 1e12,
    "tn": 1e12,
}
#: the words for 12 and 100 that CLDR's compact forms (from 1000 up) leave out, in the
#: languages whose pages write them after a number (`5 Dutzend`, `3 centaines`); French
#: `cent` is left out: after a number it is as often the euro's cents
_LANGUAGE_WORDS: dict[str, dict[str, float]] = {
    "de": {"Dutzend": 12.0, "Hundert": 1e2},
    "fr": {"douzaine": 12.0, "douzaines": 12.0, "centaine": 1e2, "centaines": 1e2},
    "es": {"docena": 12.0, "docenas": 12.0, "centenar": 1e2, "centenares": 1e2},
    "it": {"dozzina": 12.0, "dozzine": 12.0, "centinaio": 1e2, "centinaia": 1e2},
    "pt": {"dúzia": 12.0, "dúzias": 12.0, "centena": 1e2, "centenas": 1e2},
    "nl": {"dozijn": 12.0, "honderd": 1e2},
}
#: lowercase single letters after a number are a scale in the press ("£3.4m") and a unit
#: (metres, minutes, bits) elsewhere: an error unless the locale has its own meaning
_ENGLISH_UNSURE = {"m": "million, or metres/minutes", "b": "billion, or bits/bytes"}

# Every dash typesetters use for a minus (Unicode Pd dashes that read as one, the minus
# sign U+2212, heavy minus, small and fullwidth hyphen-minus) becomes "-"; every space
# (no-break, narrow no-break, thin, figure...) becomes " "; every apostrophe "'"; bidi
# marks (CLDR puts them around Arabic and Hebrew signs) go.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2212\u2796\ufe63\uff0d"
_APOSTROPHES = "\u2019\u02bc\u2018\u2032\uff07"
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: characters a page renders as nothing: zero width space, soft hyphen (shown only where a
#: line breaks), word joiner, zero width no-break space (U+FEFF); `1&shy;234` reads 1234
_INVISIBLE = "\u200b\u00ad\u2060\ufeff"


class _Normal(dict[int, Any]):
    """A str.translate table built on demand: Unicode digits to ASCII, and the above."""

    def __missing__(self, code: int) -> Any:
        char = chr(code)
        digit = unicodedata.decimal(char, None)
        if digit is not None:
            out: str | None = str(digit)
        elif char in _DASHES:
            out = "-"
        elif char in _APOSTROPHES:
            out = "'"
        elif char in _BIDI or char in _INVISIBLE:
            out = None
        elif unicodedata.category(char) in ("Zs", "Zl", "Zp") or char in "\t\n\r\f\v":
            out = " "
        elif char in "\uff0b\ufe62":
            out = "+"
        elif char == "\uff0e":
            out = "."
        elif char == "\uff0c":
            out = ","
        else:
            out = char
        self[code] = out
        return out


_NORMAL = _Normal()


def _normalize(text: str) -> str:
    if not text.isascii():
        text = text.translate(_NORMAL)
    elif "\t" in text or "\n" in text:
        text = re.sub(r"\s", " ", text)
    return text


def canonical_separator(symbol: str) -> str:
    """A CLDR decimal/group symbol as the parser sees it (all spaces " ", apostrophes "'")."""
    return _normalize(symbol) or symbol


# A number: digits with separators between them (a space only before a group of three),
# or a leading decimal separator (".75").
_TOKEN = re.compile(
    r"[0-9]+(?:[.,'\u066b\u066c\u060c\u2e41][0-9]+| [0-9]{3}(?![0-9]))*"
    # a leading decimal point (.75), but not the dot of an abbreviation (Rs.1,234, No.5)
    r"|(?<![^\W\d_])[.,\u066b][0-9]+"
)
_LETTERS = re.compile(r"[^\W\d_]+")


def number_spans(text: str) -> list[tuple[int, int]]:
    """Where `parse_number` sees numbers in `text`: (start, end) offsets into `text`, in
    order (the digits and their separators; signs, currency and scale words are around)."""
    if text.isascii():
        return [m.span() for m in _TOKEN.finditer(_normalize(text))]
    origin: list[int] = []
    pieces: list[str] = []
    for i, char in enumerate(text):
        piece = char.translate(_NORMAL)
        pieces.append(piece)
        origin += [i] * len(piece)
    origin.append(len(text))
    return [(origin[m.start()], origin[m.end() - 1] + 1) for m in _TOKEN.finditer("".join(pieces))]


@dataclass(frozen=True, slots=True)
class Convention:
    """One way of writing numbers: decimal and group symbol, group sizes (CLDR)."""

    decimal: str
    group: str
    primary: int
    secondary: int
    example: str  # a locale that writes numbers this way, for messages
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        group, decimal = re.escape(self.group), re.escape(self.decimal)
        first, middle, last = self.secondary, self.secondary, self.primary
        grouped = rf"[1-9][0-9]{{0,{first - 1}}}(?:{group}[0-9]{{{middle}}})*{group}[0-9]{{{last}}}"
        if self.group == "'":  # an apostrophe only ever groups: Babel writes 489495330'909
            grouped += rf"|[1-9][0-9]*'[0-9]{{{last}}}"
        object.__setattr__(
            self, "pattern", re.compile(rf"(?:{grouped}|[0-9]+)(?:{decimal}[0-9]+)?")
        )

    def read(self, token: str) -> float | None:
        """The value of `token` written this way, or None when it is not written so.

        Raises: ValueError for an integer a stored number cannot hold exactly."""
        exact = self.exact(token)
        return None if exact is None else float(exact)

    def exact(self, token: str) -> Decimal | None:
        """`read`, as the exact value written (`1.005` is 201/200, not the float near it).

        Raises: ValueError for an integer a stored number cannot hold exactly."""
        if self.pattern.fullmatch(token) is None:
            return None
        plain = token.replace(self.group, "")
        if self.decimal not in plain:
            exact_digits(plain)
            return Decimal(plain)
        return Decimal(plain.replace(self.decimal, "."))


@dataclass(frozen=True)
class NumberLocale:
    """What one locale says about numbers, from CLDR through Babel."""

    tag: str
    conventions: tuple[Convention, ...]
    decimals: frozenset[str]
    suffix: re.Pattern[str]  # compact/scale words after the number
    prefix: re.Pattern[str] | None  # compact words before it (Swahili `elfu 2`)
    scales: dict[str, float]  # casefolded affix -> multiplier
    long_words: dict[str, float]  # the locale's long scale words, for `Tsd.` → Tausend
    units: frozenset[str]  # casefolded unit symbols (`min`, `km`): not scales
    currencies: frozenset[str]
    long_scale: bool = False  # a billion is 10^12 (de Billion, fr billion), not 10^9
    own: frozenset[str] = frozenset()  # the locale's own CLDR compact affixes (es `B`)
    durations: frozenset[str] = frozenset()  # casefolded time units (`min`, `h`): `$5 h`


def groupings(locale: Locale) -> set[tuple[int, int]]:
    """The group sizes (primary, secondary) of the locale's decimal, percent and currency
    patterns: (3, 3) for 1,234,567, (3, 2) for the Indian 12,34,567."""
    found = set()
    for pattern in (
        locale.decimal_formats.get(None),
        locale.percent_formats.get(None),
        locale.currency_formats.get("standard"),
    ):
        if pattern is not None:
            primary, secondary = pattern.grouping
            if 0 < primary < 100:  # Babel gives 1000 for "no grouping"
                found.add((primary, secondary if 0 < secondary < 100 else primary))
    return found or {(3, 3)}


def affixes_and_scales(locale: Locale) -> tuple[dict[str, float], dict[str, float]]:
    """The locale's CLDR compact forms (short and long, every plural) as
    ({suffix: multiplier}, {prefix: multiplier}): de `0 Mio.` → {"Mio.": 1e6}; a pattern
    `00 Mio.` for 10^7 has the same multiplier (the key over 10 ** (zeros - 1))."""
    suffixes: dict[str, float] = {}
    prefixes: dict[str, float] = {}
    for forms in locale.compact_decimal_formats.values():
        for patterns in forms.values():
            for key, pattern in patterns.items():
                zeros = str(pattern.pattern).split(";")[0].count("0")
                if not zeros:
                    continue
                scale = float(int(key) // 10 ** (zeros - 1))
                if scale <= 1:
                    continue
                for affix, table in ((pattern.suffix[0], suffixes), (pattern.prefix[0], prefixes)):
                    word = _affix(affix)
                    if word and _LETTERS.search(word):
                        # CLDR bn gives কো two sizes (10^7, 10^11): such a word is unsure
                        known = table.setdefault(word, scale)
                        if known != scale and not math.isnan(known):
                            table[word] = math.nan
    return suffixes, prefixes


def _affix(text: str) -> str:
    """A pattern affix as text: CLDR quotes literals (`Mio'.'`), spaces collapse to one."""
    text = re.sub(r"'([^']*)'", lambda m: m.group(1) or "'", text)
    return " ".join(_normalize(text).split())


@lru_cache(maxsize=1)
def _cldr_data() -> Any:
    from importlib.resources import files  # on the first number read, not before a request

    return json.loads(
        files("kpi_collector.collect").joinpath("cldr_numbers.json").read_text(encoding="utf-8")
    )


@lru_cache(maxsize=1)
def _world_currencies() -> frozenset[str]:
    """Currency symbols of every CLDR locale written with small letters (`Rs`, `Rp`,
    `RM`'s neighbours `kr`, `zł`, `Ksh`): a page says `Rp1.234.567` whatever its lang."""
    return frozenset(_cldr_data()["currencies"])


@lru_cache(maxsize=1)
def _cldr() -> tuple[tuple[Convention, ...], dict[str, dict[float, str]]]:
    data = _cldr_data()
    # conventions named after a well-known locale first: messages name the first that fits
    rank = {tag: n for n, tag in enumerate(_FAMOUS)}
    rows = sorted(data["conventions"], key=lambda row: (rank.get(row[4], len(rank)), row))
    conventions = tuple(Convention(*row) for row in rows)
    scales = {
        word: {float(scale): tag for scale, tag in found.items()}
        for word, found in data["scales"].items()
    }
    return conventions, scales


def page_locale(lang: str | None) -> str | None:
    """The locale an HTML `lang` attribute names, if CLDR knows it, else the longest start
    of it CLDR knows (BCP 47 lookup, RFC 4647 3.4: `de-CH-x-foo` is de-CH, not de), else
    None: a page that mislabels itself falls back to the default, it does not fail."""
    if not lang or not lang.strip():
        return None
    parts = lang.strip().replace("_", "-").split("-")
    for candidate in ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]:
        try:
            babel_locale(candidate)
        except ValueError:
            continue
        return candidate
    return None


def _affix_pattern(words: list[str]) -> str:
    alternatives = []
    for word in sorted(words, key=len, reverse=True):
        bare = word.rstrip(".")
        body = re.escape(bare).replace("\\ ", " ?")
        if len(bare) >= 3 and bare.isalpha():
            body = f"(?i:{body})"
        # a word ends where letters end, except in scripts written without spaces (10万人)
        wide = unicodedata.east_asian_width(bare[-1]) in "WF"
        alternatives.append(body + r"\.?" + ("" if wide else r"(?![^\W\d_])"))
    return "|".join(alternatives)


@lru_cache(maxsize=128)
def number_locale(tag: str) -> NumberLocale:
    """The number conventions of `tag` (cached); ValueError for a tag CLDR does not know."""
    locale = babel_locale(tag)
    conventions = []
    decimals = set()
    sizes = groupings(locale)
    for system in dict.fromkeys(("latn", locale.default_numbering_system)):
        symbols = locale.number_symbols.get(system) or {}
        decimal_set = {symbols.get("decimal"), symbols.get("currencyDecimal")} - {None}
        group_set = {symbols.get("group"), symbols.get("currencyGroup")} - {None}
        for decimal in decimal_set:
            decimals.add(canonical_separator(str(decimal)))
            for group in group_set:
                for primary, secondary in sorted(sizes):
                    conventions.append(
                        Convention(
                            canonical_separator(str(decimal)),
                            canonical_separator(str(group)),
                            primary,
                            secondary,
                            str(locale),
                        )
                    )
    suffixes, prefixes = affixes_and_scales(locale)
    long_words = _long_words(locale)
    long_scale = any(
        scale == 1e12 and _plain_letters(word).startswith("bil")
        for word, scale in long_words.items()
    )
    words = dict(_ENGLISH_WORDS) | _LANGUAGE_WORDS.get(locale.language, {})
    if long_scale:
        # its own trillion is 10^18 (de Trillion, fr trillion): English 10^12 is a guess
        for word in ("trillion", "trillions"):
            del words[word]
    scales: dict[str, float] = {}
    for word, scale in [*words.items(), *_ENGLISH_ABBREVIATIONS.items()]:
        scales[word] = scale
    for word, scale in words.items():  # matched in any case (`5 DUTZEND`)
        scales.setdefault(word.casefold(), scale)
    for word, scale in [*suffixes.items(), *prefixes.items()]:
        scales[word.rstrip(".")] = scale
        if len(word.rstrip(".")) >= 3:
            scales[word.rstrip(".").casefold()] = scale
    for word in words:
        scales.setdefault(word, words[word])
    suffix_words = [*words, *_ENGLISH_ABBREVIATIONS, *suffixes]
    units: set[str] = set()
    durations: set[str] = set()
    for key, unit in locale._data.get("unit_patterns", {}).items():
        for length in unit.values():
            for plural, text in getattr(length, "items", lambda: [])():
                if isinstance(text, str) and plural != "per":
                    found = [w.casefold() for w in _LETTERS.findall(text.replace("{0}", ""))]
                    units.update(found)
                    if str(key).startswith("duration-"):
                        durations.update(found)
    currencies = {str(code) for code in locale.currency_symbols} | {
        " ".join(_normalize(symbol).split()) for symbol in locale.currency_symbols.values()
    }
    return NumberLocale(
        tag=str(locale).replace("_", "-"),
        conventions=tuple(conventions),
        decimals=frozenset(decimals),
        suffix=re.compile(rf" ?(?P<scale>{_affix_pattern(suffix_words)})"),
        prefix=re.compile(rf"(?:^|[\s(])(?P<scale>{_affix_pattern(list(prefixes))}) ?[-+]?$")
        if prefixes
        else None,
        scales=scales,
        long_words=long_words,
        units=frozenset(units),
        currencies=frozenset(currencies),
        long_scale=long_scale,
        own=frozenset(word.rstrip(".") for word in [*suffixes, *prefixes]),
        durations=frozenset(durations),
    )


def _long_words(locale: Locale) -> dict[str, float]:
    """The locale's long compact scale words, casefolded, with their multipliers (de
    {"tausend": 1e3, ..., "billionen": 1e12})."""
    long_words: dict[str, float] = {}
    for patterns in locale.compact_decimal_formats.get("long", {}).values():
        for key, pattern in patterns.items():
            zeros = str(pattern.pattern).split(";")[0].count("0")
            word = _affix(pattern.suffix[0])
            if zeros and word.isalpha():
                long_words.setdefault(word.casefold(), float(int(key) // 10 ** (zeros - 1)))
    return long_words


def _plain_letters(word: str) -> str:
    """`word` casefolded, without accents (`Billón` → `billon`, `milhões` → `milhoes`)."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


#: a name of a power of ten past a thousand in the languages that build them from Latin
#: numerals, in any inflection: million, Milliarde, billón, milhões, miljoen, bilijun,
#: kwadrylion, quintillion, and the jokes (zillion, gazillion) that are no size at all
_LARGE_NUMBER_WORD = re.compile(
    r"(?:ga|ba|ka)?"
    r"(?:m|b|j|z|tr|quadr|quatr|cuatr|kvadr|kwadr|kuadr|quint|kvint|kwint|kuint|sext|sest"
    r"|seks|sekst|sept|sett|oct|ott|okt|non|dec|dez)"
    r"[iy](?:ll?i?|li?j|lh)(?:on|un|ard|oen|ao|oe|o)"
    r"(?:s|e|en|er|es|i|o|a|y|u|ow|ov|ones|oes)?"
    r"|(?:м|б|тр|квадр|квинт|секст|септ|окт|нон|дец)илл?и(?:он|ард)(?:а|ов|ы)?"
)
#: English short-scale names past trillion: n-illion is 10^(3n + 3)
_ENGLISH_LARGE = re.compile(r"(quadr|quint|sext|sept|oct|non|dec)illions?")
_ENGLISH_LARGE_N = {"quadr": 4, "quint": 5, "sext": 6, "sept": 7, "oct": 8, "non": 9, "dec": 10}


def _large_number_word(word: str, text: str, rules: NumberLocale) -> float | None:
    """The multiplier of `word` when it names a power of ten the locale's CLDR words do
    not: English `quadrillion` … `decillion` where a billion is 10^9; None when `word` is
    no such name. Raises ValueError for one whose size the locale does not give (de
    `Billiarde`, `Trillion`, which long- and short-scale languages size differently) or
    that is no size at all (`zillion`)."""
    plain = _plain_letters(word)
    if _LARGE_NUMBER_WORD.fullmatch(plain) is None:
        return None
    english = _ENGLISH_LARGE.fullmatch(plain)
    if english is not None and not rules.long_scale:
        return float(10 ** (3 * _ENGLISH_LARGE_N[english.group(1)] + 3))
    raise ValueError(
        f"{_quote(text)}: {word!r} after the number names a size that {rules.tag} does not "
        "give (a scale word past CLDR's, or none at all); pick the number with `regex:`"
    )


#: every integer up to this size is a double (what the store keeps) exactly; above it, some
LARGEST_EXACT = 2**53


def exact_float(number: int) -> float:
    """`number` as the float the store keeps, when that is `number` itself.

    Raises: ValueError when it is not (12345678901234567890 would be 12345678901234567168):
    a stored number must be the source's number."""
    try:
        value = float(number)
    except OverflowError:  # past 1.8e308: no double at all
        value = math.inf
    if abs(number) > LARGEST_EXACT and (math.isinf(value) or int(value) != number):
        raise ValueError(not_exact(shown_integer(number), value))
    return value


def shown_integer(number: int) -> str:
    """`number` as a message shows it: its digits, or past 40 of them how many there are
    (`a 5001-digit number`; Python writes no int of more than 4300 digits as text)."""
    digits = digit_count(number)
    return str(number) if digits <= 40 else f"a {digits}-digit number"


def digit_count(number: int) -> int:
    """How many decimal digits `number` has (its sign aside), however many."""
    return Decimal(abs(number)).adjusted() + 1 if number else 1


def exact_digits(digits: str) -> None:
    """`exact_float` for the integer a text writes as `digits` (decimal digits of any
    script), of any length: Python reads no text of more than 4300 digits as an int.

    Raises: ValueError when a stored number cannot hold it exactly."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > 400:  # past 1.8e308: no double at all
        raise ValueError(not_exact(f"a {len(significant)}-digit number", math.inf))
    exact_float(int(significant))


def not_exact(shown: str, value: float) -> str:
    """The message for a number (as `shown`) that a stored number (a double) does not hold:
    it would be stored as `value`."""
    would = f"{value:.0f}" if math.isfinite(value) else "infinity"
    return (
        f"{shown} cannot be stored exactly (a stored number holds every integer up to "
        f"{LARGEST_EXACT:,} = 2**53): it would become {would}; not stored, return it in a "
        "larger unit (thousands, millions)"
    )


def parse_number(text: str, locale: str | None = None) -> float:
    """Read the one number in `text` as `locale` (a BCP 47 tag; default en) writes numbers.

    Understands group and decimal symbols of every CLDR convention (1,234.5 · 1.234,5 ·
    1 234,5 · 1'234.5 · Indian 12,34,567 · Arabic ١٢٬٣٤٥٫٦), a leading decimal point
    (.75), any Unicode minus or dash before the number or after a currency symbol ($-5,
    -.5%), accounting parentheses ((1,200) is -1200), a percent sign (59.5% is 59.5),
    English scale words and abbreviations (2.4 million, 1.2k, 3 MM, 2bn) and the locale's
    own CLDR compact forms (de 1,5 Mio. and 2 Tsd., hi 12 लाख, ja 3万).

    Raises ValueError (one line, quoting the text) when there is no number, more than one,
    or when the text reads as different numbers: under the locale in force, or, when that
    locale does not read it, under the CLDR conventions that do; and when a word right
    after the number could be a scale the locale does not know.
    """
    # runs of spaces are one, as a page shows them (`Over <b>2.4</b> million` is
    # "Over  2.4  million" to an extractor, and was read 2.4)
    normal = re.sub(" {2,}", " ", _normalize(text)).strip()
    if not normal:
        raise ValueError("the text is empty")
    match = _TOKEN.search(normal)
    if match is None:
        raise ValueError(f"no number in {_quote(text)}")
    # E notation (1.5e6, 2E-3): the mantissa, then the exponent as a power of ten
    exponent = _EXPONENT.match(normal, match.end())
    if exponent is not None and re.search(r"[^\W\d_]$", normal[: match.start()]):
        exponent = None  # a code or a name (A1E5), not a number in E notation
    end = exponent.end() if exponent is not None else match.end()
    if _TOKEN.search(normal, end) is not None or _split_by_line(text):
        raise ValueError(f"more than one number in {_quote(text)}; pick one with `regex:`")
    rules = number_locale(locale or DEFAULT_LOCALE)
    # the value as written, exactly, until the one rounding to a float at the end: the
    # float product 1.005 × 1000 is 1004.9999999999999, the number written 1.005k is 1005
    value = _value(match.group(), text, rules)
    if exponent is not None:
        value = value.scaleb(int(exponent.group(1)), _EXACT)
    before, after = normal[: match.start()], normal[end:]
    _glued_before(before, text, rules)
    _arrow(before, after, text, rules)
    if _UPPER_BOUND.search(before):
        raise ValueError(
            f"{_quote(text)}: the number is a bound (the value is less than it), not the "
            "value; pick the number with `regex:` if the bound is what to store"
        )
    if exponent is None and _price_dash(match.group(), after, rules):
        after = after[2:]  # `12,–`: the dash stands for no cents
    value, after = _numeral_after(value, after, text)
    scale, unscaled = _scale(before, after, text, rules)
    if unscaled == after:
        _glued_after(after, value, text, rules)
    if scale != 1.0:  # 10^33 itself: the float 1e33 is 10^33 + 4.2e19
        value = _EXACT.multiply(value, Decimal(repr(scale)))
    number = float(value)
    if math.isinf(number):
        raise ValueError(f"{_quote(text)} is beyond the largest number stored")
    if number == 0 and value != 0:  # below the smallest double (~5e-324): it would be 0
        raise ValueError(
            f"{_quote(text)} is too small to store (a stored number is 0 below about 5e-324); "
            "read it in a smaller unit"
        )
    if _minus_after(after, text, rules) or _negative(before, unscaled, text, rules):
        number = -number
    return number + 0.0  # (0) and -0 are 0, never -0.0


#: the digits a number is computed with before its one rounding to a float: every digit a
#: page writes (a stored number has 17), times any scale, exactly
_EXACT = Context(prec=60)


#: arrows and triangles that say a number went down (`▼ 5%`, `⬇ 1.67%`, as kpi's own
#: messages write a fall): the number written is its size, the value it stands for negative
_DOWN = frozenset("▼▽↓⬇🔻⇓")  # not the carets of a menu (▾, ⏷)
#: what Japanese accounts write for a minus (`▲1,234`, `△5%`), elsewhere an arrow up
_JAPANESE_MINUS = frozenset("▲△")


def _arrow(before: str, after: str, text: str, rules: NumberLocale) -> None:
    """ValueError when an arrow down touches the number, before it or after it (after a
    percent or currency sign), or a triangle up before it on a Japanese page: it may be the
    number's sign or only a mark beside it, so the value may be negative; never the
    positive number as if the arrow were not there."""
    ahead = re.search(r"[^\w\s]{0,3} ?[^\w\s]{0,3} ?$", before)
    behind = re.match(r" ?[^\w\s]{0,3} ?[^\w\s]{0,3}", after)
    marks = (ahead.group() if ahead else "") + (behind.group() if behind else "")
    down = [char for char in marks if char in _DOWN]
    if ahead is not None and rules.tag.split("-")[0] == "ja":
        down += [char for char in ahead.group() if char in _JAPANESE_MINUS]
    if down:
        mark = down[0]
        raise ValueError(
            f"{_quote(text)}: the {mark!r} beside the number may make it negative (a fall, "
            "or a minus as Japanese accounts write it) or only mark it; pick the number "
            "with `regex:`, or `map:` the text"
        )


#: a sign before the number that makes it an upper bound (`<1%`, `≤ 5`): the value is below
_UPPER_BOUND = re.compile("(?:[<\u2264\u2a7d\uff1c\ufe64]=?|(?i:less|fewer) than) ?$")


def _price_dash(token: str, after: str, rules: NumberLocale) -> bool:
    """Whether a whole number is followed by the locale's decimal sign and a dash, as
    German and Swiss prices write no cents (de `12,–`, de-CH `Fr. 12.–`)."""
    return (
        len(after) >= 2
        and after[0] in rules.decimals
        and after[1] == "-"
        and not after[2:3].isdigit()
        and rules.decimals.isdisjoint(token)
    )


def _cased(char: str) -> bool:
    """A letter of a script with capitals (Latin, Greek, Cyrillic, Armenian...): such
    scripts put spaces between words and numbers, where Chinese, Japanese or Thai do not
    (`10万人`, `共123人` are a number and its words)."""
    return char.isupper() or char.islower()


def _glued_error(text: str, word: str) -> ValueError:
    return ValueError(
        f"{_quote(text)}: the number is joined to the letters {word!r}, as in a name or code "
        "(v2.1, A1, COVID-19), not a quantity; select the number's own element, or pick it "
        "with `regex:`"
    )


def _glued_before(before: str, text: str, rules: NumberLocale) -> None:
    """ValueError when letters touch the number from before (`v2.1`, `SKU123`), or a word
    joined to it by a hyphen or a plus (`COVID-19`, `Top-10`, `GMT+1`): part of a name or a
    code. A currency symbol or code may touch it (`USD1,200`, `EUR-5`), and so may the
    locale's own scale words written before numbers."""
    joined = re.search(r"([^\W\d_]+)[-+]?$", before)
    if joined is None or not _cased(joined.group(1)[-1]):
        return
    word = joined.group(1)
    if _is_currency(word, rules):
        return
    if rules.prefix is not None and rules.prefix.search(before) is not None:
        return
    raise _glued_error(text, word)


#: what may follow a number without a space besides the locale's units, currencies and
#: scales: `3x` (three times)
_TIMES = frozenset({"x", "X"})
_ORDINALS = {1: "st", 2: "nd", 3: "rd"}


def _glued_after(after: str, value: Decimal, text: str, rules: NumberLocale) -> None:
    """ValueError when letters touch the number from after (`123abc`, `12,374Downloads`)
    and are none of: a unit symbol of the locale (`10km`, `5GB`), a currency (`100USD`),
    `x` (`3x`), or an ordinal suffix that fits the number (`1st`, `22nd`, `1er`, `2º`)."""
    joined = re.match(r"[^\W\d_]+", after)
    if joined is None or not _cased(joined.group()[0]):
        return
    word = joined.group()
    if word in _TIMES or word.casefold() in rules.units or _is_currency(word, rules):
        return
    if value == value.to_integral_value() and value >= 0 and _ordinal(int(value), word, rules):
        return
    raise _glued_error(text, word)


def _ordinal(whole: int, word: str, rules: NumberLocale) -> bool:
    """Whether `word` right after `whole` makes it an ordinal: English `1st 2nd 3rd 11th`,
    French `1er 1re 2e 3ème`, the ordinal indicators `º ª` (es, it, pt: `2º`, `1ª`)."""
    folded = word.casefold()
    if folded in ("º", "ª"):
        return True
    if rules.tag.split("-")[0] == "fr":
        return folded in (("er", "re") if whole == 1 else ("e", "ème", "eme"))
    suffix = "th" if whole % 100 in (11, 12, 13) else _ORDINALS.get(whole % 10, "th")
    return folded == suffix


#: the exponent of E notation right after a number, ending where the word ends
_EXPONENT = re.compile(r"[eE]([-+]?[0-9]{1,3})(?![\w.,'])")

#: Unicode's explicit line and paragraph separators: digits in two elements a page lays
#: out apart (`<li>5</li><li>120</li>`, which `extract.layout_text` joins with U+2029) are
#: two numbers, never one grouped by a space. A newline in the page's source is HTML
#: whitespace, one space as shown (`12\n374` is 12 374).
_LINE_BREAKS = "\u2028\u2029"


def _split_by_line(text: str) -> bool:
    """Whether a number `_TOKEN` sees in `text` runs across a line separator."""
    if not any(char in text for char in _LINE_BREAKS):
        return False
    return any(
        any(char in _LINE_BREAKS for char in text[start:end]) for start, end in number_spans(text)
    )


#: superscript and subscript signs
_RAISED_SIGNS = frozenset("⁻⁺₋₊")


def _numeral_after(value: Decimal, after: str, text: str) -> tuple[Decimal, str]:
    """A numeral character right after the number (one space allowed), which the decimal
    digits do not include: a vulgar fraction adds to a whole number (`2½` is 2.5, Unicode
    gives `½` the numeric value 0.5); a superscript or other numeral (`10⁶`, `1,234¹`,
    `12①`) may be an exponent, a footnote mark or part of the number, so it is an error.
    Returns the value and the text after the numeral."""
    head = after[1:] if after.startswith(" ") else after
    if head[:1] in _RAISED_SIGNS and unicodedata.category(head[1:2] or " ") == "No":
        raise ValueError(  # `10⁻⁶`: a raised minus and digits, an exponent
            f"{_quote(text)}: the {head[:2]!r} after the number may be an exponent or a "
            "footnote mark; pick the number with `regex:`"
        )
    if not head or unicodedata.category(head[0]) not in ("No", "Nl"):
        return value, after
    char = head[0]
    fraction = unicodedata.numeric(char, None)
    if unicodedata.decomposition(char).startswith("<fraction>") and fraction is not None:
        if value == value.to_integral_value():  # Unicode's ⅓ is 0.333…: the one it names
            named = Fraction(fraction).limit_denominator(1000)
            part = _EXACT.divide(Decimal(named.numerator), Decimal(named.denominator))
            return _EXACT.add(value, part), head[1:]
        raise ValueError(
            f"{_quote(text)}: a fraction {char!r} after a decimal number; "
            "pick the number with `regex:`"
        )
    raise ValueError(
        f"{_quote(text)}: the {char!r} after the number may be an exponent, a footnote mark "
        "or part of the number; pick the number with `regex:`"
    )


def _minus_after(after: str, text: str, rules: NumberLocale) -> bool:
    """A minus written right after the number (`1.234,00-`, `5%-`, `1.234 €-`): negative where the
    locale's CLDR patterns put the minus there (fy), else an error, since accounting exports
    (SAP) write negatives so and elsewhere it may be a dash; never the positive value."""
    # right after the number, or after its percent or currency sign (`1.234,00 €-`)
    if re.match(r"(?: ?[^\s\w\-()]{1,3})?-(?![^\W_])", after) is None:
        return False
    if _minus_suffix(rules.tag):
        return True
    raise ValueError(
        f"{_quote(text)}: the minus after the number may make it negative (as accounting "
        f"exports write it) or be a dash; {rules.tag} does not write negatives so: pick the "
        "number with `regex:`"
    )


@lru_cache(maxsize=128)
def _minus_suffix(tag: str) -> bool:
    """Whether a CLDR number pattern of `tag` writes the minus after the number (fy:
    `¤ #,##0.00-` for negative amounts)."""
    locale = babel_locale(tag)
    for pattern in (
        locale.decimal_formats.get(None),
        locale.percent_formats.get(None),
        locale.currency_formats.get("standard"),
        locale.currency_formats.get("accounting"),
    ):
        if pattern is not None and "-" in _normalize(str(pattern.suffix[1])):
            return True
    return False


def _value(token: str, text: str, rules: NumberLocale) -> Decimal:
    """The exact value of `token` (digits and separators) under `rules`, else the one
    value every CLDR convention that reads it agrees on; ValueError otherwise."""
    if token[0] in ".,\u066b":  # a leading decimal separator
        if token[0] in rules.decimals:
            return Decimal("0." + token[1:])
        raise ValueError(
            f"{_quote(text)} reads as 0.{token[1:]} (where {token[0]!r} is the decimal sign) "
            f"or {token[1:]}; {rules.tag} does not write decimals so: set `locale:` to the "
            "page's language, or pick the number with `regex:`"
        )
    if token.isdigit():
        exact_digits(token)
        return Decimal(token)
    own = {v for c in rules.conventions if (v := c.exact(token)) is not None}
    if len(own) == 1:
        return own.pop()
    if len(own) > 1:
        low, high = sorted(own)
        raise ValueError(
            f"{_quote(text)} reads two ways under {rules.tag}: {_show(low)} or {_show(high)}; "
            "pick the number with `regex:`"
        )
    readings: dict[Decimal, str] = {}
    for convention in _cldr()[0]:
        found = convention.exact(token)
        if found is not None:
            readings.setdefault(found, convention.example.replace("_", "-"))
    if len(readings) == 1:
        return next(iter(readings))
    if not readings:
        raise ValueError(f"cannot read a number from {_quote(text)}")
    ways = " or ".join(f"{_show(v)} (as {tag} writes it)" for v, tag in sorted(readings.items()))
    raise ValueError(
        f"{_quote(text)} is not how {rules.tag} writes numbers and reads two ways: {ways}; "
        "set `locale:` to the page's language, or pick the number with `regex:`"
    )


def _scale(before: str, after: str, text: str, rules: NumberLocale) -> tuple[float, str]:
    """The scale written with the number (`k` of 1.5k, ` Mio.`, a prefix such as ja 万) and
    `after` without a scale written after the number (so `(1.5k)` is accounting
    parentheses around the number alone)."""
    if after:
        han = _han_scale(after, text, rules)
        if han is not None:
            return han
        money = _SCALED_CURRENCY.match(after)
        if money is not None and _is_currency(money["currency"], rules):
            # `12 TEUR`, `12 T€`, `2 MSEK`: thousands (German Tausend) or millions of money;
            # the currency stays for the signs around it
            return _MONEY_SCALES[money["scale"]], after[money.start("currency") :]
        found = rules.suffix.match(after)
        if found is not None:
            scale = 1.0
            # scale words in a row multiply: `2 thousand million`, `1.5 hundred thousand`
            while found is not None:
                word = found["scale"].rstrip(".").replace(" ", "")
                _english_conflict(word, text, rules)
                scale *= _lookup(word, text, rules)
                after = after[found.end() :]
                found = rules.suffix.match(after) if after.startswith(" ") else None
            return scale, after
        word_match = re.match(r" ?([^\W\d_]+)(\.?)", after)
        if word_match is not None:
            word, dot = word_match.group(1), word_match.group(2)
            folded = word.casefold()
            if word in _ENGLISH_UNSURE and word not in rules.scales:
                if _money_before(before, rules):  # `£3.4m`: money is no length nor data
                    return _ENGLISH_MONEY[word], after[word_match.end() :]
                raise ValueError(
                    f"{_quote(text)}: {word!r} after the number could be "
                    f"{_ENGLISH_UNSURE[word]}; pick the number with `regex:`"
                )
            # a currency symbol may end in a dot (da `kr.`, ru `руб.`)
            currency = word in rules.currencies or word + dot in rules.currencies
            if folded in rules.units and not currency:
                _unit_or_scale(word, before, text, rules)
            if folded not in rules.units and not currency:
                known = _cldr()[1].get(folded)
                if dot or known:
                    abbreviated = _abbreviation(folded, rules)
                    if abbreviated is not None and (not known or abbreviated in known):
                        return abbreviated, after[word_match.end() :]
                elif (
                    after.startswith(" ")  # glued (`11th`), `_glued_after` decides
                    and 2 <= len(word) <= 4
                    and _abbreviation(folded, rules) is not None
                ):
                    # without its dot an abbreviation (fr `Mds` milliards) is also a word
                    long = _abbreviated_words(folded, rules)
                    raise ValueError(
                        f"{_quote(text)}: {word!r} after the number could abbreviate "
                        f"{' or '.join(long)} (×{_show(rules.long_words[long[0]])}) or be "
                        "a word; pick the number with `regex:`"
                    )
                large = _large_number_word(word, text, rules) if not known else None
                if large is not None:
                    return large, after[word_match.end() :]
                if known:
                    ways = ", ".join(
                        f"×{_show(scale)} in {tag.replace('_', '-')}"
                        for scale, tag in sorted(known.items())
                    )
                    raise ValueError(
                        f"{_quote(text)}: {word!r} after the number could be a scale word "
                        f"({ways}) that {rules.tag} does not use; set `locale:` to the page's "
                        "language, or pick the number with `regex:`"
                    )
    if rules.prefix is not None and before:
        found = rules.prefix.search(before)
        if found is not None:
            return _lookup(found["scale"].rstrip(".").replace(" ", ""), text, rules), after
    return 1.0, after


_ENGLISH_MONEY = {"m": 1e6, "b": 1e9}

#: unit symbols of English that English pages also write as a scale word
_ENGLISH_UNIT_OR_SCALE = {
    "mil": "million (English, informally), thousand (es, pt) or mils (thousandths of an inch)"
}


def _unit_or_scale(word: str, before: str, text: str, rules: NumberLocale) -> None:
    """ValueError when `word` after the number, a unit symbol of the locale (en `L` litres,
    fr `G` g-force), is also a scale word where the locale's language is written in one of
    its regions (en-IN `L` lakh: `₹5L` is 500,000; fr-CA `G` milliard: `1,5 G$`), or in
    English informally (`mil`): the same page may mean either, so neither is read. After
    money (`before` ends in a currency), a unit other than one of time is no length or
    mass of money (`R$ 5 mi`, `$5mm`, `$5G`): where CLDR has it as a scale word, an error."""
    language = rules.tag.split("-")[0]
    if language == "en" and word.casefold() in _ENGLISH_UNIT_OR_SCALE:
        raise ValueError(
            f"{_quote(text)}: {word!r} after the number could be "
            f"{_ENGLISH_UNIT_OR_SCALE[word.casefold()]}; pick the number with `regex:`"
        )
    regions = _cldr_data()["regional"].get(language, {}).get(word)
    if regions:
        ways = ", ".join(
            f"×{_show(float(scale))} in {tag.replace('_', '-')}"
            for scale, tag in sorted(regions.items(), key=lambda item: float(item[0]))
        )
        raise ValueError(
            f"{_quote(text)}: {word!r} after the number could be a unit or a scale word "
            f"({ways}) that {rules.tag} does not use; set `locale:` to the page's language, "
            "or pick the number with `regex:`"
        )
    folded = word.casefold()
    known = _cldr()[1].get(folded)
    if known and folded not in rules.durations and folded != "a" and _money_before(before, rules):
        ways = ", ".join(
            f"×{_show(scale)} in {tag.replace('_', '-')}" for scale, tag in sorted(known.items())
        )
        raise ValueError(
            f"{_quote(text)}: {word!r} after an amount of money is no unit of it; it could be "
            f"a scale word ({ways}) that {rules.tag} does not use; set `locale:` to the "
            "page's language, or pick the number with `regex:`"
        )


#: the scale characters Chinese, Japanese and Korean write right after digits: the large
#: ones (CLDR's compact words: zh 万 亿, ja 万 億 兆 京, zh-Hant 萬 億 兆, ko 만 억 조) and
#: the small ones that multiply the large one after them (`1.5千万` is 15,000,000,
#: `100百万` 10^8, `3천만` 30,000,000)
_HAN_SMALL = {"十": 10.0, "百": 100.0, "千": 1e3, "십": 10.0, "백": 100.0, "천": 1e3}
_HAN_LARGE = frozenset("万萬亿億兆京만억조")


def _han_scale(after: str, text: str, rules: NumberLocale) -> tuple[float, str] | None:
    """The scale of a run of CJK scale characters right after the number (one space
    allowed) and the text after it; None when none follows. Each large one must be the
    locale's own CLDR word (ja 億 is no zh word: zh pages write 亿); a small one counts only
    before a larger one, or where it is the locale's own word (yue 千, ko 천): `3百貨店`
    is three department stores. Sizes go up (`千万`, `万亿`); Han numerals after the run
    (`12万三千`) go on with the number. Anything else is an error, never a guess."""
    head = after[1:] if after.startswith(" ") else after
    run = 0
    while run < len(head) and (head[run] in _HAN_SMALL or head[run] in _HAN_LARGE):
        run += 1
    if not run:
        _han_numeral(head, text)
        return None
    scale, last = 1.0, 0.0
    for index, char in enumerate(head[:run]):
        size = rules.scales.get(char)
        if size is None and char in _HAN_SMALL and index + 1 < run:
            size = _HAN_SMALL[char]
        if size is None or math.isnan(size):
            known = _cldr()[1].get(char) or {_HAN_SMALL.get(char, math.nan): ""}
            ways = ", ".join(
                f"×{_show(v)}{' in ' if t else ''}{t.replace('_', '-')}"
                for v, t in sorted(known.items())
            )
            raise ValueError(
                f"{_quote(text)}: {char!r} after the number could be a scale word ({ways}) "
                f"that {rules.tag} does not use alone, or begin a word; set `locale:` to the "
                "page's language, or pick the number with `regex:`"
            )
        if size <= last:
            raise ValueError(
                f"{_quote(text)}: the scale words {head[:run]!r} after the number do not "
                "multiply in order; pick the number with `regex:`"
            )
        scale, last = scale * size, size
    _han_numeral(head[run:], text)
    return scale, head[run:]


def _han_numeral(head: str, text: str) -> None:
    """ValueError when `head` (right after the number or its scale) starts with a Han
    numeral (`三`, `〇`, `两`): the number goes on in words (`12万三千` is 123,000)."""
    if head and _is_han_numeral(head[0]):
        raise ValueError(
            f"{_quote(text)}: the number goes on in Chinese numerals ({head[0]!r}), which are "
            "not read; pick the number with `regex:`"
        )


def _is_han_numeral(char: str) -> bool:
    return char in "两〇" or (
        unicodedata.numeric(char, None) is not None
        and unicodedata.name(char, "").startswith("CJK UNIFIED")
    )


def _money_before(before: str, rules: NumberLocale) -> bool:
    """Whether a currency symbol or code stands right before the number (`£`, `US$ `,
    `-$`, `($`, `USD `)."""
    symbol = before.rstrip(" ").split(" ")[-1].lstrip("(" + _SIGNS)
    return _is_currency(symbol, rules) and not _PERCENT.issuperset(symbol)


def _lookup(word: str, text: str, rules: NumberLocale) -> float:
    for key in (word, word.casefold()):
        spaced = next((k for k in rules.scales if k.replace(" ", "") == key), None)
        found = rules.scales.get(key, rules.scales.get(spaced or ""))
        if found is not None:
            if math.isnan(found):
                raise ValueError(
                    f"{_quote(text)}: CLDR gives {word!r} two sizes in {rules.tag}; "
                    "pick the number with `regex:`"
                )
            return found
    raise AssertionError(f"scale word {word!r} matched but has no value")


#: a scale letter glued to a currency after the number: German and Nordic accounts write
#: `TEUR`/`T€` (Tausend), `MSEK`, `kUSD`
_SCALED_CURRENCY = re.compile(r" ?(?P<scale>[kKTM])(?P<currency>[^\w\s]|[A-Z]{3})(?![^\W\d_])")
_MONEY_SCALES = {"k": 1e3, "K": 1e3, "T": 1e3, "M": 1e6}


def _english_conflict(word: str, text: str, rules: NumberLocale) -> None:
    """ValueError when `word` is an English abbreviation (`T` 10^12, `B` 10^9) that the
    locale's own long scale words give another size (de `T` Tausend, `B` Billion 10^12;
    sv `T` tusen): on such a page it is no English."""
    english = _ENGLISH_ABBREVIATIONS.get(word)
    if english is None or word in rules.own:
        return
    others = {
        long: scale
        for long, scale in rules.long_words.items()
        if long[0] == word[0].casefold() and _subsequence(word[1:].casefold(), long[1:])
    }
    if others and english not in others.values():
        long = min(others)
        raise ValueError(
            f"{_quote(text)}: {word!r} after the number is ×{_show(english)} in English but "
            f"could be ×{_show(others[long])} ({long}) in {rules.tag}; pick the number with "
            "`regex:`"
        )


def _abbreviated_words(folded: str, rules: NumberLocale) -> list[str]:
    """The locale's long scale words `folded` abbreviates (its first letter, then some of
    the others in order), shortest first."""
    return sorted(
        (
            word
            for word in rules.long_words
            if word[0] == folded[0] and _subsequence(folded[1:], word[1:])
        ),
        key=lambda word: (len(word), word),
    )


def _abbreviation(folded: str, rules: NumberLocale) -> float | None:
    """A dotted abbreviation of one of the locale's long scale words keeps its first
    letter and some of the others in order (de `Tsd.` Tausend, `Mrd.` Milliarden);
    one that fits scale words of different sizes (`Mi.`) is an error."""
    if len(folded) < 2:
        return None
    found = {
        scale
        for word, scale in rules.long_words.items()
        if word[0] == folded[0] and _subsequence(folded[1:], word[1:])
    }
    if len(found) > 1:
        raise ValueError(
            f"{folded!r} after the number abbreviates scale words of different sizes "
            f"({', '.join(_show(s) for s in sorted(found))}); pick the number with `regex:`"
        )
    return found.pop() if found else None


def _subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(char in letters for char in short)


_SIGNS = "-+"
#: percent and per-mille signs, which Turkish writes before the number (-%5)
_PERCENT = frozenset("%\u066a\u2030\u0609\ufe6a\uff05")


def _negative(before: str, after: str, text: str, rules: NumberLocale) -> bool:
    """Whether a minus (or accounting parentheses) makes the number negative."""
    end = len(before.rstrip(" "))
    gap = end < len(before)
    start = end
    # a currency symbol or code right before the number (`$`, `CHF`, `US$`, `ج.م.`)
    while start > 0 and before[start - 1] not in " ()" + _SIGNS and not before[start - 1].isdigit():
        start -= 1
    currency = before[start:end]
    if currency and not _is_currency(currency, rules):
        start, currency = end, ""
    if currency:
        sign_end = len(before[:start].rstrip(" "))
        gap = sign_end < start
    else:
        sign_end = end
    sign = before[sign_end - 1] if sign_end > 0 and before[sign_end - 1] in _SIGNS else ""
    if sign and before[: sign_end - 1].endswith(("+", "\u00b1") if sign == "-" else "-"):
        # `+-5`, `-+5`: plain text's way to write ± (a tolerance, `±5`), or a minus
        raise ValueError(
            f"{_quote(text)}: {before[sign_end - 2 : sign_end]!r} before the number may be "
            "plus-or-minus (±) or a minus; pick the number with `regex:`"
        )
    if sign:
        ahead = before[: sign_end - 1]
        # after a letter or digit a hyphen joins (`COVID-19`, `5-10`); after a colon, an
        # equals sign, a quote or a bracket it is a minus (`Growth:-12%`), and after a word
        # of a script written without spaces (zh `同比-12%`, down 12% on the year)
        if ahead and not ahead.endswith((" ", "(")) and (_cased(ahead[-1]) or ahead[-1].isdigit()):
            word = re.search(r"[^\s(]+$", ahead)
            if word is None or not _is_currency(word.group(), rules):
                return False  # a hyphen inside a name, not a minus
        if sign == "+":
            # an explicit plus: positive, in accounting parentheses too (`(+5%)`), and
            # apart from the number (`+ 5`) as well
            return False
        if gap:
            label = ahead.rstrip(" (")
            # "Downloads – 12,374": a dash between label and number; after a colon or an
            # equals sign (`Change: - 5%`) the label has its separator, the dash may be a minus
            if label and not label.endswith((":", "=", "\uff1a", "\uff1d")):
                return False
            raise ValueError(
                f"{_quote(text)}: the dash is apart from the number, so it may or may not be "
                "a minus; pick the number with `regex:`"
            )
        return True
    return _accounting(before, after, text, rules)


def _accounting(before: str, after: str, text: str, rules: NumberLocale) -> bool:
    """(1,200) and ($1,200.00) are negative; `Comments (12)` is a count in parentheses."""
    opened = before.rfind("(")
    closed = after.find(")")
    if opened < 0 or closed < 0:
        return False
    inner = before[opened + 1 :] + after[:closed]
    if _LETTERS.search(inner) and not _is_currency(inner.strip(" %"), rules):
        return False
    outside = before[:opened] + after[closed + 1 :]
    label = _LETTERS.search(outside) is not None and not _is_currency(outside.strip(), rules)
    if not label:
        return True
    if inner.strip(" %"):  # `Net result ($1,200)`: a negative amount or an amount in brackets
        raise ValueError(
            f"{_quote(text)}: the amount in parentheses may be an accounting negative or "
            "not; pick the number with `regex:`"
        )
    return False


def _is_currency(text: str, rules: NumberLocale) -> bool:
    """A currency symbol or code (or a percent sign: Turkish writes -%5) before a number."""
    text = text.strip()
    if not text:
        return False
    if text in _PERCENT:
        return True
    if text in rules.currencies or " ".join(text.split()) in rules.currencies:
        return True
    if text in _world_currencies() or text + "." in _world_currencies():
        return True
    return len(text) <= 4 and any(unicodedata.category(c) == "Sc" for c in text)


def _show(value: float | Decimal) -> str:
    if isinstance(value, Decimal):
        value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.15g}"


def _quote(text: str) -> str:
    """The page's text for a message: redacted before it is cut (a cut secret would
    survive redaction), at most 60 characters."""
    return repr(redact_cut(" ".join(text.split()), 60))
