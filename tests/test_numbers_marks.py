"""Marks around a number that were read silently wrong: numerals that are not decimal
digits (fractions, superscripts), a minus after the number, invisible format characters,
a currency symbol ending in a dot. Each is now its value, or an error that says why."""

from __future__ import annotations

import pytest

from kpi_collector.collect.extract import HtmlDocument, Metric
from kpi_collector.collect.numbers import parse_number
from tests.numbers_caches import _fresh_number_caches  # noqa: F401 (autouse)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        # Unicode gives the vulgar fractions numeric values (UnicodeData.txt: ½ 1/2, ¼ 1/4,
        # ⅜ 3/8); a whole number followed by one is a mixed number. Was 2 and 3.
        ("2½", None, 2.5),
        ("3 ¼", None, 3.25),
        ("-1⅜", None, -1.375),
        ("2½ million", None, 2_500_000),
        # invisible in a browser (soft hyphen U+00AD, word joiner U+2060, U+FEFF): the page
        # shows 1234; was "more than one number"
        ("1\u00ad234", None, 1234),
        ("12\u2060374", None, 12374),
        ("\ufeff1,234", None, 1234),
        # CLDR: Danish krone is `kr.`, Russian rouble `руб.`; was an error calling `kr` a
        # scale word of another locale
        ("1.500 kr.", "da", 1500),
        ("1.234,50 kr.", "da", 1234.5),
        ("1 234 руб.", "ru", 1234),
        # CLDR fy: `¤ #,##0.00;¤ #,##0.00-`: the minus after the amount
        ("€ 1.234,00-", "fy", -1234),
        # a hyphen joining a word is no minus
        ("5-star", None, 5),
        ("Total 1,234 - see notes", None, 1234),
    ],
)
def test_read(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("⬆ 1.67%", None, 1.67),  # up is the number's own sign
        ("▲5%", None, 5),  # an arrow up outside Japanese
        ("▲ 1,234", "zh", 1234),
        ("2024 ▾", None, 2024),  # a menu's caret
        ("120 m²", None, 120),  # a raised 2 on a unit, not after the digits
        # a minus right after a colon, an equals sign, a bracket or a quote, or after a
        # word of a script written without spaces; each read the positive number
        ("Growth:-12%", None, -12),
        ("Change=-5", None, -5),
        ("[-5]", None, -5),
        ('"-5"', None, -5),
        ("同比-12%", "zh", -12),
        ("净利润-1.2亿", "zh", -120_000_000),
        ("前年比-3.2%", "ja", -3.2),
        ("CHF-5", None, -5),  # after a currency, as before
    ],
)
def test_marks_that_leave_the_number_as_it_is(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "locale", "message"),
    [
        # superscripts: 10⁶ is a million, 1,234¹ a footnote; were 10 and 1234
        ("10⁶", None, "'⁶' after the number may be an exponent, a footnote mark"),
        ("1,234¹", None, "'¹' after the number may be an exponent, a footnote mark"),
        ("1,234 ²", None, "exponent, a footnote mark"),
        ("12①", None, "exponent, a footnote mark"),
        ("1,5½", "de", "a fraction '½' after a decimal number"),
        # a minus after the number (SAP exports, `1.234,00-`); was the positive value
        ("1,234-", None, "the minus after the number may make it negative"),
        ("1.234,00-", "de", "de does not write negatives so"),
        ("5.2%-", None, "the minus after the number"),
        # a raised sign and digits: an exponent (10⁻⁶ is a millionth); was 10
        ("10⁻⁶", None, "'⁻⁶' after the number may be an exponent"),
        ("10⁺³", None, "'⁺³' after the number may be an exponent"),
        # an arrow down beside the number: a fall, its value negative; was the positive
        # number (`⬇ 1.67%`, as kpi's own messages write a fall, read 1.67)
        ("▼5%", None, "the '▼' beside the number may make it negative"),
        ("▼ 5%", None, "the '▼' beside the number"),
        ("⬇ 1.67%", None, "the '⬇' beside the number"),
        ("5% ▼", None, "the '▼' beside the number"),
        ("5%▼", None, "the '▼' beside the number"),
        ("1,234 ↓", None, "the '↓' beside the number"),
        ("▼ $5", None, "the '▼' beside the number"),
        ("🔻 12", None, "the '🔻' beside the number"),
        # Japanese accounts write a minus as ▲ or △ (前年比▲3.2%: down 3.2%); was 3.2
        ("▲5%", "ja", "the '▲' beside the number"),
        ("前年比▲3.2%", "ja", "the '▲' beside the number"),
        ("△1,234", "ja", "the '△' beside the number"),
        ("¥▲5", "ja", "the '▲' beside the number"),
    ],
)
def test_refuse(text: str, locale: str | None, message: str) -> None:
    with pytest.raises(ValueError, match="regex") as caught:
        parse_number(text, locale)
    assert message in str(caught.value)


def test_superscript_footnote_in_markup_is_an_error_not_the_base() -> None:
    """`<sup>` text is another number beside the value ("1,234 1"), `10<sup>6</sup>` too."""
    page = '<p id="a">1,234<sup>1</sup></p><p id="b">10<sup>6</sup></p><p id="c">10⁶</p>'
    document = HtmlDocument(page)
    for selector in ("#a", "#b", "#c"):
        with pytest.raises(Exception, match="regex"):
            document.metric("m", Metric(css=selector))


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        # E notation, as Python, JavaScript and spreadsheets print large and small numbers
        # (was "more than one number")
        ("1.5e6", None, 1_500_000),
        ("1.5E+06", None, 1_500_000),
        ("2e-3", None, 0.002),
        ("1,5E6", "de", 1_500_000),  # the mantissa as the locale writes it
        ("Total: 12e3 users", None, 12_000),
    ],
)
def test_e_notation(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A1E5", "more than one number"),  # a code, not E notation
        ("2e3f", "more than one number"),
        ("1e999", "beyond the largest number"),
        # below the smallest double: was stored as 0
        ("1e-400", "too small to store"),
        ("-2.5E-330", "too small to store"),
        ("0." + "0" * 400 + "1", "too small to store"),
        # a minus after the currency or percent sign after the number (was 1234)
        ("1,234 €-", "the minus after the number"),
    ],
)
def test_e_notation_and_trailing_minus_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_number(text)


@pytest.mark.parametrize(
    ("lang", "value"),
    [
        # BCP 47 lookup (RFC 4647 3.4) drops subtags from the end: de-CH-x-foo is de-CH,
        # whose CLDR decimal sign is "." (was read as de: 1234)
        ("de-CH-x-foo", 1.234),
        ("gsw-CH-x-zh", 1.234),
        ("de-x-foo", 1234),
        ("x-klingon", 1.234),  # nothing CLDR knows: the default, en
    ],
)
def test_page_lang_with_subtags_cldr_does_not_know(lang: str, value: float) -> None:
    document = HtmlDocument(f'<p id="v" lang="{lang}">1.234</p>')
    assert document.metric("m", Metric(css="#v")) == pytest.approx(value)
