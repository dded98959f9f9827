"""Text → number under a CLDR locale: the issue's examples, every convention of each kind,
the errors for text that reads two ways, and a Babel round trip in 40 locales."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from babel import Locale
from babel.numbers import (
    format_compact_decimal,
    format_currency,
    format_decimal,
    format_percent,
    get_currency_precision,
    get_territory_currencies,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_collector.collect.extract import CSS, HtmlDocument, Metric, XPath
from kpi_collector.collect.numbers import (
    Convention,
    canonical_separator,
    groupings,
    number_spans,
    page_locale,
    parse_number,
)
from kpi_collector.config.loader import parse_config
from kpi_collector.errors import ConfigError, ExtractError
from tests.numbers_caches import _fresh_number_caches  # noqa: F401 (autouse)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        # the table
        ("Over 2.4 million downloads", None, 2_400_000),
        (".75", None, 0.75),
        ("-.5%", None, -0.5),
        ("₹12,34,567", None, 1_234_567),
        # the locale decides
        ("12.374", None, 12.374),
        ("12.374", "en", 12.374),
        ("12.374", "de", 12374),
        ("1,5 Mio.", "de", 1_500_000),
        ("2 Tsd.", "de", 2000),
        ("2,5 Milliarden", "de", 2_500_000_000),
        ("1,5 Mio.", None, 1_500_000),  # not en's, but the same in every reading
        ("1’234.50", "de-CH", 1234.5),
        ("CHF-1'234.50", "de-CH", -1234.5),
        ("1\u202f234,5", "fr-FR", 1234.5),
        ("2 Md", "fr", 2e9),
        ("2 billions", "fr", 2e12),  # long scale: the locale's meaning wins over English
        ("5 B", "es", 5e12),
        ("12,3 mil M", "es", 12.3e9),
        ("12,34,567.5", "hi-IN", 1234567.5),
        ("1.2 Cr", "en-IN", 12_000_000),
        ("3 lakh", None, 300_000),
        ("\u200f-١٬٢٣٤٫٥٠ ج.م.\u200f", "ar-EG", -1234.5),
        ("۱۲٬۳۴۵٫۶", "fa", 12345.6),
        ("123.46万", "ja", 1_234_600),
        ("elfu 1.2", "sw", 1200),
        # English abbreviations
        ("1.2k", None, 1200),
        ("1.2K", None, 1200),
        ("3.4M", None, 3_400_000),
        ("3 MM", None, 3_000_000),
        ("2bn", None, 2e9),
        ("2 B", None, 2e9),
        ("7 mn", None, 7e6),
        ("7 Mn", None, 7e6),
        ("1 trillion", None, 1e12),
        ("5 thousand", None, 5000),
        # signs: every dash, after a currency symbol, accounting parentheses
        ("−5", None, -5),
        ("–5", None, -5),
        ("‒5", None, -5),
        ("—5", None, -5),
        ("﹣5", None, -5),
        ("－5", None, -5),
        ("$-5", None, -5),
        ("-$5", None, -5),
        ("€ -1.234,50", None, -1234.5),
        ("(1,200)", None, -1200),
        ("($1,200.00)", None, -1200),
        ("Comments (12)", None, 12),
        ("Downloads – 12,374", None, 12374),
        # grouping conventions, whatever the locale
        ("12,374", None, 12374),
        ("1.234.567", None, 1234567),
        ("€ 1.234,50", None, 1234.5),
        ("1'234'567", None, 1234567),
        ("1’234’567", None, 1234567),
        ("12 374", None, 12374),
        ("12\u00a0374", None, 12374),
        ("12\u202f374", None, 12374),
        ("12\u2009374", None, 12374),
        ("5 000,50", None, 5000.5),
        ("0.123", "de", 0.123),  # a group never starts with 0
        ("59.5%", None, 59.5),
        ("  42 downloads ", None, 42),
        ("42 min", None, 42),
        ("10 GB", None, 10),
        ("１２,３７４", None, 12374),
    ],
)
def test_parse_number(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "locale", "message"),
    [
        ("1.234", "fr", r"'1\.234' is not how fr writes numbers .* 1\.234 \(as en .* 1234 \(as de"),
        ("1,234", "de-CH", r"reads two ways: 1\.234 .* or 1234 .*`locale:`.*`regex:`"),
        ("2 Mrd.", None, r"'Mrd' after the number could be a scale word \(×1000000000 in de\)"),
        ("5 tys.", None, r"'tys' after the number could be a scale word \(×1000 in pl\)"),
        ("3.4m", None, r"'m' after the number could be million"),
        (",75", None, r"reads as 0\.75 .* or 75"),
        ("- 12", None, r"apart from the number"),
        ("Net result ($1,200)", None, r"accounting negative"),
        ("1.2.3", None, r"cannot read a number"),
        ("5কো", "bn", r"CLDR gives 'কো' two sizes in bn"),
        ("3 of 5", None, r"more than one number.*regex"),
        ("n/a", None, r"no number"),
        ("", None, r"empty"),
    ],
)
def test_unsure_is_an_error(text: str, locale: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_number(text, locale)
    assert "\n" not in str(caught.value)


def test_unknown_locale_is_a_config_error_with_line() -> None:
    text = "sources:\n  - {name: s, type: html, url: 'http://x/', locale: xx-YY, metrics: {a: b}}\n"
    with pytest.raises(ConfigError, match=r"kpi.yaml:2: .*unknown locale 'xx-YY'.*BCP 47"):
        parse_config(text)
    with pytest.raises(ConfigError, match=r"kpi.yaml:1: .*locale.*unknown locale"):
        parse_config("locale: klingon\n")


def test_top_level_locale_reaches_sources_and_metrics_override() -> None:
    config = parse_config(
        "locale: de\nsources:\n"
        "  - {name: a, type: html, url: 'http://x/', metrics: {n: '#n'}}\n"
        "  - {name: b, type: html, url: 'http://x/', locale: en-IN, metrics: {n: {css: '#n', locale: fr}}}\n"
    )
    first, second = config.sources
    assert first.locale == "de" and second.locale == "en-IN"
    assert second.metrics["n"].locale == "fr"


@pytest.mark.parametrize(
    ("yaml_metric", "message"),
    [
        ('{css: "ul.posts li["}', r"kpi.yaml:5: .*CSS selector 'ul.posts li\[' is not valid"),
        ("{xpath: \"//span[@id='x'\"}", r"kpi.yaml:5: .*XPath \"//span\[@id='x'\" is not valid"),
        ("#downloads", r"kpi.yaml:5: .*metric is empty.*comment: quote it.*\"#downloads\""),
        # a count with an option that reads a match's text: the option was skipped and
        # the count stored as its value
        ('{css: "li", count: true, regex: "(\\\\d+)"}', r"kpi.yaml:5: .*`count: true`.*`regex:`"),
        ('{css: "a", count: true, attr: href}', r"kpi.yaml:5: .*`count: true`.*`attr:` .*drop"),
        ('{xpath: "//li", count: true, map: {a: 1}}', r"kpi.yaml:5: .*`count: true`.*`map:`"),
    ],
)
def test_selectors_are_checked_at_load(yaml_metric: str, message: str) -> None:
    text = (
        "sources:\n  - name: s\n    type: html\n    metrics:\n"
        f"      downloads: {yaml_metric}\n    url: http://127.0.0.1/\n"
    )
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(text)
    assert "\n" not in str(caught.value)


PAGE = """<html lang="{lang}"><body><p id="a">12.374</p><p id="b" lang="de">12.374</p>
<p id="c" lang="hi-IN">12,34,567</p></body></html>"""


@pytest.mark.parametrize(("lang", "a"), [("en", 12.374), ("de-DE", 12374), ("", 12.374)])
def test_the_page_lang_decides_unless_the_config_says(lang: str, a: float) -> None:
    document = HtmlDocument(PAGE.format(lang=lang).encode())
    assert document.metric("a", CSS("#a")) == a
    assert document.metric("b", CSS("#b")) == 12374  # the element's own lang
    assert document.metric("c", CSS("#c")) == 1234567
    assert document.metric("a", XPath("//p[@id='a']")) == a
    assert document.metric("b", XPath("//p[@id='b']/text()")) == 12374
    assert document.metric("a", CSS("#a", locale="de")) == 12374
    configured = HtmlDocument(PAGE.format(lang=lang).encode(), locale="en")
    assert configured.metric("b", CSS("#b")) == 12.374
    with pytest.raises(ExtractError, match=r"^a: '2 Mrd\.'"):
        HtmlDocument(b"<p id=a>2 Mrd.</p>").metric("a", CSS("#a"))


def test_metric_locale_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown locale"):
        Metric(css="a", locale="zz-QQ")


def test_cldr_file_matches_babel() -> None:
    """The generated list of every CLDR convention and scale word is Babel's data."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cldr_numbers.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_cldr_separator_is_one_the_parser_reads() -> None:
    data = json.loads((ROOT / "src/kpi_collector/collect/cldr_numbers.json").read_text("utf-8"))
    for decimal, group, primary, secondary, example in data["conventions"]:
        if group == " " and primary != 3:
            continue  # blo's 2-digit space groups: "1 22 33" reads as several numbers (an error)
        number = "1" + group + "2" * secondary + group + "3" * primary + decimal + "5"
        expected = float("12" + "2" * (secondary - 1) + "3" * primary + ".5")
        assert parse_number(number, example.replace("_", "-")) == expected, example


# 42 locales: every grouping convention, native digits, right-to-left marks, long scales
LOCALES = [
    "en", "en-US", "en-GB", "en-IN", "hi-IN", "de", "de-CH", "de-AT", "fr-FR", "fr-CH",
    "fr-CA", "it", "it-CH", "es", "es-MX", "pt-BR", "pt-PT", "nl", "sv", "nb", "da", "fi",
    "pl", "cs", "ru", "uk", "tr", "ar-EG", "ar-SA", "fa", "he", "ja", "zh-CN", "ko", "id",
    "vi", "th", "bn", "mr", "sw", "el", "hu",
]  # fmt: skip


def _currency(tag: str) -> str:
    territory = Locale.parse(tag, sep="-").territory
    found = get_territory_currencies(territory) if territory else []
    return found[0] if found else "EUR"


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    tag=st.sampled_from(LOCALES),
    value=st.decimals(min_value=-(10**12), max_value=10**12, places=4, allow_nan=False),
    kind=st.sampled_from(["decimal", "native", "percent", "currency", "short", "long"]),
    digits=st.integers(min_value=0, max_value=2),
)
def test_babel_round_trip(tag: str, value: Decimal, kind: str, digits: int) -> None:
    """Whatever Babel writes in a locale, parsing it back in that locale gives the number
    (within the format's rounding)."""
    locale = tag.replace("-", "_")
    x = float(value)
    if kind == "decimal":
        text, expected, tolerance = format_decimal(value, locale=locale), x, 0.0005
    elif kind == "native":
        text = format_decimal(value, locale=locale, numbering_system="default")
        expected, tolerance = x, 0.0005
    elif kind == "percent":
        text, expected, tolerance = format_percent(value / 100, locale=locale), x, 0.5
    elif kind == "currency":
        code = _currency(tag)
        text = format_currency(value, code, locale=locale)
        expected, tolerance = x, 0.5 * 10 ** -get_currency_precision(code)
    else:
        if tag in ("sw", "bn"):
            # Babel misplaces compact patterns that carry a negative part (sw `0B;-0B`
            # gives 192398B for 1.9e11); CLDR bn gives কো two sizes, which is an error
            return
        text = format_compact_decimal(
            value, locale=locale, format_type=kind, fraction_digits=digits
        )
        expected, tolerance = x, 0.5 * 10**-digits * max(1.0, abs(x))
    parsed = parse_number(text, tag)
    assert abs(parsed - expected) <= tolerance * (1 + 1e-9) + abs(x) * 1e-12, (text, parsed)


# --- rules the mutation run (scripts/mutate.py numbers) found untested ---------------------


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("12\n374", None, 12374),  # a number broken across lines in the page's source
        ("12\t374", None, 12374),  # or by a tab: HTML whitespace is one space
        ("1\uff0c5", "de", 1.5),  # a fullwidth comma is de's decimal comma
        ("10万人", "ja", 100_000),  # 10 × 万 (10^4) people: no space before the counter 人
        ("5 MIL", "es", 5000),  # a scale word of three letters or more, in capitals
        ("2 Mia.", "de", 2e9),  # a dotted abbreviation of Milliarde (the only M…i…a… word)
        ("2 Md.", "de", 2e9),  # two letters are enough for an abbreviation (Milliarde)
        ("3 Bill.", "de", 3e12),  # German Billion is 10^12, not the English 10^9
        ("2 Tausd.", "de", 2000),  # a dotted abbreviation that no CLDR locale lists
        ("5 লা.কো.", "bn", 5e12),  # CLDR bn লা'.'কো'.': lakh crore, 10^5 × 10^7
        ("(-5)", None, -5),  # a minus inside parentheses
        ("-XOF 5000", None, -5000),  # a minus before a currency code (CFA franc)
        ("-Mex$5", None, -5),  # before a short symbol with a currency sign ($), known or not
        ("-\u066a5", "ar", -5),  # the percent sign first, as tr -%5: Arabic percent
        ("-\u20305", None, -5),  # per mille
        ("-\u06095", "ar", -5),  # Arabic per mille
        ("-\ufe6a5", None, -5),  # small percent
        ("-\uff055", None, -5),  # fullwidth percent
        ("(EUR 1,200)", None, -1200),  # a currency code inside accounting parentheses
        ("(1,200 EUR)", None, -1200),
        ("(1,200) EUR", None, -1200),  # the currency after the parentheses is no label
        ("(12 users)", None, 12),  # a count with its word in parentheses
        ("Growth (5%)", None, 5),  # a labelled percentage in parentheses
    ],
)
def test_more_rules_people_rely_on(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("(1.5k)", None, -1500),  # the scale inside the parentheses is no label
        ("(1.5K)", None, -1500),
        ("(1.5 k)", None, -1500),
        ("(3.4B)", None, -3.4e9),
        ("(2bn)", None, -2e9),
        ("(1.2 million)", None, -1.2e6),
        ("($1.2M)", None, -1.2e6),
        ("(1.2M USD)", None, -1.2e6),
        ("(2,5 Mio.)", "de", -2.5e6),
        ("(3 Tsd.)", "de", -3000),
        ("(12 users)", None, 12),  # still a count with its word
        # an explicit plus inside is positive (was -5: `(+5%)` is a rise in brackets)
        ("(+5%)", None, 5),
        ("(+5)", None, 5),
        ("(+$1.2M)", None, 1.2e6),
        ("($+1.2M)", None, 1.2e6),
        ("( + 5 )", None, 5),
        ("+ 5", None, 5),  # a plus apart from the number is positive either way
    ],
)
def test_accounting_parentheses_around_a_scaled_number_make_it_negative(
    text: str, locale: str | None, value: float
) -> None:
    assert parse_number(text, locale) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "locale", "message"),
    [
        ("", None, "the text is empty"),
        (
            ",75",
            None,
            "',75' reads as 0.75 (where ',' is the decimal sign) or 75; en does not write "
            "decimals so: set `locale:` to the page's language, or pick the number with `regex:`",
        ),
        (
            "- 12",
            None,
            "'- 12': the dash is apart from the number, so it may or may not be a minus; "
            "pick the number with `regex:`",
        ),
        (
            "- $5",
            None,
            "'- $5': the dash is apart from the number, so it may or may not be a minus; "
            "pick the number with `regex:`",
        ),
        (
            "(- 12)",
            None,
            "'(- 12)': the dash is apart from the number, so it may or may not be a minus; "
            "pick the number with `regex:`",
        ),
        (  # plain text's ± (was -5)
            "+-5%",
            None,
            "'+-5%': '+-' before the number may be plus-or-minus (±) or a minus; pick the "
            "number with `regex:`",
        ),
        (  # a label with its colon, then a dash apart: was read as 5, the dash a separator
            "Change: - 5%",
            None,
            "'Change: - 5%': the dash is apart from the number, so it may or may not be a "
            "minus; pick the number with `regex:`",
        ),
        (
            "Growth = – 12",
            None,
            "'Growth = – 12': the dash is apart from the number, so it may or may not be a "
            "minus; pick the number with `regex:`",
        ),
        (
            "Net result ($1,200)",
            None,
            "'Net result ($1,200)': the amount in parentheses may be an accounting negative "
            "or not; pick the number with `regex:`",
        ),
        (
            "5 billón",
            None,
            "'5 billón': 'billón' after the number could be a scale word (×1000000000 in "
            "yrl-CO, ×1000000000000 in es) that en does not use; set `locale:` to the page's "
            "language, or pick the number with `regex:`",
        ),
        ("5কো", "bn", "'5কো': CLDR gives 'কো' two sizes in bn; pick the number with `regex:`"),
        (
            "5 Mill.",
            "de",
            "'mill' after the number abbreviates scale words of different sizes "
            "(1000000, 1000000000); pick the number with `regex:`",
        ),
        ("a" * 61, None, "no number in '" + "a" * 59 + "…'"),  # quotes cut at 60 characters
    ],
)
def test_error_messages_in_full(text: str, locale: str | None, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_number(text, locale)
    assert str(caught.value) == message


def test_number_spans_point_into_the_original_text() -> None:
    text = "Total: 12,374 downloads (59.5%)"
    assert number_spans(text) == [(7, 13), (25, 29)]
    # Arabic-Indic digits and separator, a right-to-left mark that normalizing removes,
    # fullwidth digits: the offsets are still the original text's
    text = "Users: \u200f١٢٬٣٤٥, rate ４２%"
    assert number_spans(text) == [(8, 14), (21, 23)]
    assert [text[a:b] for a, b in number_spans(text)] == ["١٢٬٣٤٥", "４２"]


def test_group_sizes_come_from_the_locales_cldr_patterns() -> None:
    # CLDR en-IN #,##,##0.###; ta decimal #,##,##0.### but currency ¤#,##0.00;
    # en-US-POSIX 0.###### does not group, so it reads groups as en does
    assert groupings(Locale.parse("en_IN")) == {(3, 2)}
    assert groupings(Locale.parse("ta")) == {(3, 2), (3, 3)}
    assert groupings(Locale.parse("de")) == {(3, 3)}
    assert groupings(Locale.parse("en_US_POSIX")) == {(3, 3)}


def test_the_first_group_is_at_most_as_long_as_the_others() -> None:
    western = Convention(".", ",", 3, 3, "en")
    assert western.read("1,234,567") == 1234567
    assert western.read("1234,567") is None
    indian = Convention(".", ",", 3, 2, "en_IN")
    assert indian.read("1,23,45,678") == 12345678
    assert indian.read("123,45,678") is None


def test_separators_are_seen_as_plain_space_and_apostrophe() -> None:
    assert canonical_separator("\u202f") == " "  # fr's narrow no-break space
    assert canonical_separator("\u2019") == "'"  # de-CH's right single quotation mark
    assert canonical_separator(",") == ","


def test_a_page_lang_falls_back_to_its_language() -> None:
    assert page_locale(None) is None
    assert page_locale("de-CH") == "de-CH"
    assert page_locale("fr-QQ") == "fr"  # no such region: French
    assert page_locale("fr_QQ") == "fr"


@pytest.mark.parametrize(
    ("tag", "text", "value"),
    [
        ("ar-EG-u-nu-latn", "1٬234٫5", 1234.5),  # Arabic, Latin digits (a Unicode extension)
        ("de-DE-u-co-phonebk", "1.234,5", 1234.5),
        ("de-CH-x-company", "1'234.5", 1234.5),  # a private-use part
        ("fr-t-en", "1 234,5", 1234.5),  # a transformed-content extension
    ],
)
def test_a_bcp47_tag_with_extensions_is_its_language_and_region(
    tag: str, text: str, value: float
) -> None:
    """BCP 47 extensions (`-u-nu-latn`, `-x-...`) are valid in `locale:`; they were refused
    as an unknown locale, where a page's `lang` with them fell back to the language."""
    assert Metric(css="a", locale=tag).locale == tag
    assert parse_number(text, tag) == value


PRAGMA = """<html><head><meta http-equiv="{equiv}" content="{content}"></head><body>
<p id="a">1.234</p><p id="b" lang="en">1.234</p></body></html>"""


@pytest.mark.parametrize(
    ("equiv", "content", "a"),
    [
        # the page's pragma-set default language (HTML standard): was read as en, 1.234
        ("Content-Language", "de", 1234),
        ("content-language", " de-DE ", 1234),
        ("CONTENT-LANGUAGE", "de-CH", 1.234),
        ("content-language", "de, en", 1.234),  # a list names no one language
        ("content-language", "", 1.234),
        ("content-type", "de", 1.234),
    ],
)
def test_a_page_without_lang_reads_in_its_meta_content_language(
    equiv: str, content: str, a: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a `lang` attribute up to the root, the language of a page's text is the one
    its `<meta http-equiv="content-language">` names; an element's own `lang` wins, and
    so does the config's `locale:`."""
    from kpi_collector.collect import extract

    page = PRAGMA.format(equiv=equiv, content=content).encode()
    document = HtmlDocument(page)
    assert document.metric("a", CSS("#a")) == a
    assert document.metric("a", XPath("//p[@id='a']")) == a
    assert document.metric("a", XPath("//p[@id='a']/text()")) == a
    assert document.metric("b", CSS("#b")) == 1.234
    assert document.metric("b", XPath("//p[@id='b']")) == 1.234
    assert HtmlDocument(page, locale="en").metric("a", CSS("#a")) == 1.234
    monkeypatch.setattr(extract, "CSS_STEPS", 0)  # the selector in a process of its own
    costly = HtmlDocument(page)
    assert not costly._lexbor_is_bounded("html body p#a")
    assert costly.metric("a", CSS("html body p#a")) == a


@pytest.mark.parametrize(
    ("header", "page", "value"),
    [
        ("de", "<p id=a>1.234</p>", 1234),  # was read as en: 1.234
        (" de-DE ", "<p id=a>1.234</p>", 1234),
        ("de, en", "<p id=a>1.234</p>", 1.234),  # several languages: none is the page's
        ("", "<p id=a>1.234</p>", 1.234),
        ("de", "<html lang=en><p id=a>1.234</p>", 1.234),  # the page's own lang wins
        ("de", "<meta http-equiv=content-language content=en><p id=a>1.234</p>", 1.234),
        ("en", "<meta http-equiv=content-language content=de><p id=a>1.234</p>", 1234),
    ],
)
def test_a_page_without_lang_or_meta_reads_in_its_content_language_header(
    header: str, page: str, value: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTML standard's last fallback for an element's language, after `lang` attributes
    and the pragma-set default language: the language the higher-level protocol gives (the
    HTTP `Content-Language` header), unless it gives several. It was ignored: a German
    page saying so only in its header was read as en."""
    from kpi_collector.collect import extract

    document = HtmlDocument(page.encode(), language=header)
    assert document.metric("a", CSS("#a")) == value
    assert document.metric("a", XPath("//p[@id='a']")) == value
    assert HtmlDocument(page.encode(), language=header, locale="en").metric("a", CSS("#a")) == 1.234
    monkeypatch.setattr(extract, "CSS_STEPS", 0)  # the selector in a process of its own
    costly = HtmlDocument(f"<html><body><div>{page}</div></body></html>", language=header)
    assert not costly._lexbor_is_bounded("html body p#a")
    assert costly.metric("a", CSS("html body p#a")) == value


def test_the_last_meta_content_language_names_the_pages_language() -> None:
    page = b"""<meta http-equiv=content-language content=fr><meta http-equiv=content-language
    content=de><p id=a>1.234,5</p><p id=b>1 234,5</p>"""
    assert HtmlDocument(page).metric("a", CSS("#a")) == 1234.5
    assert HtmlDocument(page).metric("b", CSS("#b")) == 1234.5


def test_an_xpath_tail_text_is_read_in_its_parents_language() -> None:
    """A text after an element (`<span lang=en>Nutzer:</span> 1.234`) was read in the
    language of the element it follows (en: 1.234), not of the element holding it (de)."""
    document = HtmlDocument(b"<div lang=de><span lang=en>Nutzer:</span> 1.234</div>")
    assert document.metric("m", XPath("//div/text()")) == 1234
    assert document.metric("m", XPath("//div")) == 1234
    inner = HtmlDocument(b"<div lang=de><span lang=en>1.234</span> Nutzer</div>")
    assert inner.metric("m", XPath("//span/text()")) == 1.234
    meta = b"<meta http-equiv=content-language content=de><p><b lang=en>x</b> 1.234</p>"
    assert HtmlDocument(meta).metric("m", XPath("//p/text()")) == 1234
