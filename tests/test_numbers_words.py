"""Text → number where letters touch the number: a number glued to letters is part of a
name or code (`v2.1`, `abc123`, `COVID-19`), not a quantity; words after a number that
name a power of ten are read where the locale gives their size, an error where not; and a
scaled number is the written number times the scale, exactly (`1.005k` is 1005)."""

from __future__ import annotations

import pytest

from kpi_collector.collect.extract import CSS, HtmlDocument
from kpi_collector.collect.numbers import parse_number
from kpi_collector.errors import ExtractError
from tests.numbers_caches import _fresh_number_caches  # noqa: F401 (autouse)


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("abc123", None),
        ("v2.1", None),
        ("V2", None),
        ("SKU12345", None),
        ("Q3", None),
        ("123abc", None),
        ("12,374Downloads", None),
        ("Downloads12,374", None),
        ("COVID-19", None),
        ("COVID-19 cases", None),
        ("Top-10", None),
        ("ISO-9001 certified", None),
        ("Т-34", "ru"),  # Cyrillic letters are letters too
        ("Version2", "de"),
        ("SR-71", None),  # capitals: a code, though some locale's currency is SR
        ("RM12.90", None),  # en does not know Malaysia's RM (set `locale: ms`)
        ("GMT+1", None),  # joined by a plus, as by a hyphen (was 1)
        ("Top+10", None),
    ],
)
def test_a_number_glued_to_letters_is_part_of_a_name_not_a_quantity(
    text: str, locale: str | None
) -> None:
    with pytest.raises(ValueError, match=r"joined to .*name or code.*`regex:`") as caught:
        parse_number(text, locale)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        # a unit, scale or currency written without a space is still that
        ("10km", None, 10),
        ("5GB", None, 5),
        ("42min", None, 42),
        ("24h", None, 24),
        ("1.2k", None, 1200),
        ("2bn", None, 2e9),
        ("1,5Mio.", "de", 1.5e6),
        ("100USD", None, 100),
        ("USD1,200", None, 1200),
        ("EUR-5", None, -5),
        ("CHF1'234.50", "de-CH", 1234.5),
        ("12zł", "pl", 12),
        ("3x", None, 3),  # three times
        ("10X", None, 10),
        # English ordinals: a rank
        ("1st", None, 1),
        ("2nd", None, 2),
        ("3rd", None, 3),
        ("11th", None, 11),
        ("22nd place", None, 22),
        ("1er", "fr", 1),  # French ordinals
        ("1re", "fr", 1),
        ("3ème", "fr", 3),
        ("2e", "fr", 2),
        ("2º", "es", 2),  # ordinal indicators
        ("1ª", "pt", 1),
        # a label and the number apart, or apart by a sign that is not a letter
        ("Downloads 12,374", None, 12374),
        ("Downloads: 12,374", None, 12374),
        ("Downloads – 12,374", None, 12374),
        ("#3", None, 3),
        ("No. 5", None, 5),
        # scripts written without spaces between words and numbers
        ("10万人", "ja", 100_000),
        ("共123人", "zh", 123),
    ],
)
def test_units_scales_currencies_and_ordinals_may_touch_the_number(
    text: str, locale: str | None, value: float
) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize("text", ["1th", "2th", "3th", "101th"])
def test_an_ordinal_suffix_that_does_not_fit_its_number_is_no_ordinal(text: str) -> None:
    with pytest.raises(ValueError, match="joined to"):
        parse_number(text)


def test_a_page_reads_a_label_in_its_own_element_and_refuses_a_code() -> None:
    """A label and its number in elements with a space between them are read; minified
    markup (`<span>Users</span><span>12,374</span>`) shows `Users12,374` to a browser
    without a stylesheet, letters touching the number as in a code: an error that says to
    select the number's own element, which reads it. A version or code in the text itself
    is an error."""
    page = (
        b"<div id=k><span>Users</span> <span>12,374</span></div>"
        b"<div id=m><span>Users</span><span id=n>12,374</span></div><p id=v>Release v2.1</p>"
    )
    document = HtmlDocument(page)
    assert document.metric("k", CSS("#k")) == 12374
    with pytest.raises(ExtractError, match=r"^m: 'Users12,374': .*select the number's own"):
        document.metric("m", CSS("#m"))
    assert document.metric("n", CSS("#n")) == 12374
    with pytest.raises(ExtractError, match=r"^v: 'Release v2.1': .*joined to the letters 'v'"):
        document.metric("v", CSS("#v"))


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("9.2 quintillion", None, 9.2e18),
        ("2 quadrillion", None, 2e15),
        ("1.5 sextillion", "en-GB", 1.5e21),
        ("3 septillion", None, 3e24),
        ("4 octillions", None, 4e27),
        ("1 nonillion", None, 1e30),
        ("1 decillion", None, 1e33),
        ("2 Quintillion", None, 2e18),
        ("2 quadrillion", "ja", 2e15),  # no long-scale words of its own: English reads
        ("2 trillion", None, 2e12),
        ("2 Billionen", "de", 2e12),  # CLDR de
        ("2 billions", "fr", 2e12),  # CLDR fr
    ],
)
def test_scale_words_past_trillion(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("9.2 zillion", None),
        ("5 gazillion", None),
        ("3 jillion", None),
        ("2 Trillionen", "de"),  # German Trillion is 10^18, English trillion 10^12
        ("2 Trillion", "de"),
        ("2 trillion", "fr"),  # French trillion is 10^18
        ("2 trillions", "fr"),
        ("1 Billiarde", "de"),  # 10^15, which CLDR de does not give
        ("2 quadrillion", "de"),  # 10^24 in German, 10^15 in English
        ("2 trillones", "es"),
        ("2 biliardi", "it"),
        ("2 kwadrylion", "pl"),
        ("2 квадриллиона", "ru"),
        ("2 miljardia", None),  # Finnish, under en
    ],
)
def test_a_scale_word_the_locale_does_not_size_is_an_error(text: str, locale: str | None) -> None:
    with pytest.raises(ValueError, match=r"scale word|`regex:`") as caught:
        parse_number(text, locale)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("5 billionaires", None, 5),  # a word that starts like a scale word
        ("3 Milano", None, 3),
        ("12 stallions", None, 12),
        ("2 pavilions", None, 2),
        ("7 medallions", None, 7),
    ],
)
def test_words_that_only_look_like_scale_words_are_words(
    text: str, locale: str | None, value: float
) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("1.005k", None, 1005),
        ("1.1M", None, 1_100_000),
        ("4.35 million", None, 4_350_000),
        ("0.29k", None, 290),
        ("1,005 Tsd.", "de", 1005),
        ("2.675 thousand", None, 2675),
        ("1.1e-1", None, 0.11),
        ("1.005e3", None, 1005),
        ("3.3e-3", None, 0.0033),
        ("(1.005k)", None, -1005),
        ("1.23456789 billion", None, 1_234_567_890),
        ("0.07 lakh", "en-IN", 7000),
        ("123.45万", "ja", 1_234_500),
        ("507.779857 decillion", None, 5.07779857e35),  # the float 1e33 is not 10^33
        ("1.5 decillion", None, 1.5e33),
    ],
)
def test_a_scaled_number_is_exact(text: str, locale: str | None, value: float) -> None:
    """The written digits times the scale, then one rounding to the stored float: the
    float product 1.005 × 1000 is 1004.9999999999999."""
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("1.2 lac", "en-IN", 120_000),  # Indian English spells lakh lac too
        ("Rs 1.5 lacs", "en-IN", 150_000),
        ("3 lacs", None, 300_000),
        ("12 TEUR", "de", 12_000),  # German accounts: thousands of euros
        ("12 T€", "de", 12_000),
        ("12 T€", None, 12_000),
        ("1,5 MEUR", "fi", 1_500_000),
        ("2 MSEK", "sv", 2_000_000),
        ("250 TSEK", "sv", 250_000),
        ("3 kUSD", None, 3000),
        ("4 MUSD", None, 4_000_000),
        ("$12T", None, 12e12),  # English trillion: the currency before the number
    ],
)
def test_scale_spellings_of_business_pages(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale", "message"),
    [
        ("12 T", "de", r"'T' .*×1000000000000 in English.*×1000 .*tausend"),
        ("2 B", "de", r"'B' .*×1000000000 in English.*×1000000000000 .*billion"),
        ("2 B", "fr", r"'B' .*×1000000000 in English.*×1000000000000 .*billion"),
        ("2 T", "sv", r"'T' .*×1000000000000 in English.*×1000 .*tusen"),
        ("2 Mds", "fr", r"'Mds' .*could abbreviate .*milliards"),
        ("2 mdr", "sv", r"'mdr' .*could abbreviate .*miljard"),
    ],
)
def test_a_scale_abbreviation_the_locale_could_mean_otherwise_is_an_error(
    text: str, locale: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_number(text, locale)
    assert "`regex:`" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("2 M", "de", 2e6),  # English M is de's Million too
        ("2 k", "de", 2000),
        ("3 Tage", "de", 3),
        ("3 Mal", "de", 3),
        ("3 Mann", "de", 3),
        ("3 Tore", "de", 3),
        ("3 Std", "de", 3),
        ("3 mois", "fr", 3),
        ("12 users", None, 12),
        ("5 mos", None, 5),
        ("4 Tsd", "de", 4000),
        ("2 Md", "fr", 2e9),
    ],
)
def test_short_words_that_abbreviate_no_scale_are_words(
    text: str, locale: str | None, value: float
) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3.14159265358979 quintillion", 3.14159265358979e18),
        ("1.5 sextillion", 1.5e21),
        ("9.2 quintillion", 9.2e18),
        ("123,456,789,012,345 thousand", 1.23456789012345e17),
    ],
)
def test_a_scaled_number_past_2_53_whose_digits_a_float_keeps_is_stored(
    text: str, value: float
) -> None:
    """The check that no written digit is lost compares the written digits with the
    float's shortest digits: its integer (3141592653589790208) has a binary tail no one
    wrote, which made a number written with 15 digits an error."""
    from kpi_collector.collect.extract import Metric, finish

    assert finish("a", text, Metric()) == value


@pytest.mark.parametrize(
    "text", ["12345678901234567890", "9007199254740993", "1.2345678901234567891 quintillion"]
)
def test_a_number_past_2_53_whose_digits_a_float_loses_is_still_an_error(text: str) -> None:
    from kpi_collector.collect.extract import Metric, finish

    with pytest.raises(ExtractError, match="cannot be stored exactly"):
        finish("a", text, Metric())


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("Rs.1,234", None, 1234),  # was two numbers: .1 and ,234
        ("Rs1,234", None, 1234),
        ("Rp1.234.567", None, 1_234_567),
        ("kr12", None, 12),
        ("Ksh1,000", None, 1000),
        ("Rs-5", None, -5),
        ("(Rs 1,200)", None, -1200),
        ("No.5", None, 5),  # was 0.5: the dot of an abbreviation, no decimal point
        ("RM12.90", "ms", 12.9),
        (".75", None, 0.75),
        ("-.5%", None, -0.5),
    ],
)
def test_currency_symbols_written_with_letters_touch_the_number(
    text: str, locale: str | None, value: float
) -> None:
    """Any CLDR locale's currency symbol in small letters (`Rs`, `Rp`, `kr`) may stand
    right before the number whatever the page's language."""
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("2 hundred", None, 200),  # was 2: hundred was no scale word
        ("5 hundreds", None, 500),
        ("2 dozen", None, 24),
        ("3 dozens", None, 36),
        ("2 thousand million", None, 2e9),  # was 2000: only the first word counted
        ("1.5 hundred thousand", None, 150_000),
        ("2 hundred million", None, 2e8),
        ("3 thousand crore", "en-IN", 3e10),
        ("5 Dutzend", "de", 60),
        ("5 dutzend", "de", 60),  # any case (was an AssertionError)
        ("5 HUNDERT", "de", 500),
        ("2 DOZEN", None, 24),
        ("3 centaines", "fr", 300),
        ("2 docenas", "es", 24),
        ("4 centinaia", "it", 400),
        ("2 dúzias", "pt-BR", 24),
        ("5 cents", "fr", 5),  # the euro's cents as often as French hundreds: a word
        ("2 k users", None, 2000),  # a word that is no scale ends the row
        ("2 thousand Mitarbeiter", "de", 2000),
    ],
)
def test_hundreds_dozens_and_scale_words_in_a_row(
    text: str, locale: str | None, value: float
) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("1.2万", "zh", 12_000),
        ("3亿", "zh", 300_000_000),
        ("12万亿元", "zh", 12e12),  # CLDR zh 万亿: 10^4 × 10^8
        ("5万亿", "zh", 5e12),
        ("3億", "ja", 300_000_000),
        ("12億円", "ja", 1_200_000_000),
        ("2兆", "ja", 2e12),
        ("1京", "ja", 1e16),
        ("3億", "zh-Hant", 300_000_000),
        ("3億", "yue", 300_000_000),
        ("5千", "yue", 5000),  # CLDR yue 千
        # a small scale before a larger one multiplies it, as written
        ("1.5千万", "zh", 15_000_000),
        ("100百万", "ja", 100_000_000),
        ("十万", "ja", None),  # no digits: no number
        ("3천만원", "ko", 30_000_000),
        ("3천원", "ko", 3000),
        ("5 万", "zh", 50_000),
    ],
)
def test_cjk_scale_characters_after_digits(text: str, locale: str, value: float | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match="no number"):
            parse_number(text, locale)
    else:
        assert parse_number(text, locale) == value


@pytest.mark.parametrize(
    ("text", "locale", "error"),
    [
        # a scale character the locale does not write: before, the whole glued word was
        # passed over (`12億円` under zh read 12, `12万人` under en 12)
        ("12億円", "zh", "'億' after the number could be a scale word"),
        ("12万人", "en", "'万' after the number could be a scale word"),
        ("1.2万次", "en", "'万' after the number could be a scale word"),
        ("12万人", "zh-Hant", "'万' after the number could be a scale word"),
        ("3亿", "ja", "'亿' after the number could be a scale word"),
        ("2兆", "zh", "'兆' after the number could be a scale word"),  # 10^6 or 10^12
        ("1京", "zh", "'京' after the number could be a scale word"),
        # a small scale not before a larger one: 5千克 is 5 kilograms, 3百貨店 three
        # department stores; before, 1.5千万 read 1.5 and 100百万 100
        ("5千", "zh", "'千' after the number could be a scale word"),
        ("5千克", "zh", "'千' after the number"),
        ("3百貨店", "ja", r"'百' after the number could be a scale word \(×100\)"),
        ("100百万", "en", "after the number could be a scale word"),
        ("3亿万", "zh", "do not multiply in order"),
        # the number goes on in Han numerals: 12万三千 is 123,000, not 120,000
        ("12万三千", "zh", "goes on in Chinese numerals"),
        ("12万〇五百", "zh", "goes on in Chinese numerals"),
        ("3万两千", "zh", "goes on in Chinese numerals"),
        # several numbers, or none in digits
        ("3万5千", "zh", "more than one number"),
        ("1万2000", "ja", "more than one number"),
        ("一万二千", "zh", "no number"),
        ("二〇二三", "zh", "no number"),
    ],
)
def test_cjk_text_read_wrongly_is_an_error(text: str, locale: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_number(text, locale)


def test_a_cjk_page_reads_its_scale_in_its_language() -> None:
    """Through a page: its `lang` decides which scale characters it writes."""
    page = (
        "<div lang=ja><p id=a>売上高 <b>12</b>億円</p><p id=b>1.5千万人</p></div>"
        "<div lang=zh-CN><p id=c>12億円</p><p id=d>共<span>12</span>万<span>三千</span>人</p></div>"
    )
    document = HtmlDocument(page)
    assert document.metric("a", CSS("#a")) == 1_200_000_000
    assert document.metric("b", CSS("#b")) == 15_000_000
    with pytest.raises(ExtractError, match=r"^c: '12億円': '億' after the number"):
        document.metric("c", CSS("#c"))
    with pytest.raises(ExtractError, match=r"^d: .*goes on in Chinese numerals"):
        document.metric("d", CSS("#d"))


@pytest.mark.parametrize(
    ("text", "locale", "scale"),
    [
        ("₹5L", None, "en-IN"),  # en `L` is litres; en-IN's `L` is lakh: 500,000
        ("Rs 12 L", None, "en-IN"),
        ("₹5 L", "en-US", "en-IN"),
        ("10L+ downloads", "en-GB", "en-IN"),
        ("1,5 G$", "fr", "fr-CA"),  # fr `G` is g-force; fr-CA's `G` is milliard
        ("3 G", "fr-FR", "fr-CA"),
        ("5 mM", "pt", "pt-AO"),  # pt `mM` is millimolar; pt-PT's `mM` is mil milhões
    ],
)
def test_a_unit_that_a_region_of_the_language_writes_for_a_scale_is_an_error(
    text: str, locale: str | None, scale: str
) -> None:
    """A unit symbol of the locale that a region of its language writes as a scale word
    was read as the unit: `₹5L` on an English page stored 5, not 500,000."""
    with pytest.raises(ValueError, match=f"could be a unit or a scale word .* in {scale}"):
        parse_number(text, locale)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("₹5L", "en-IN", 500_000),
        ("1,5 G$", "fr-CA", 1.5e9),
        ("5 mM", "pt-PT", 5e9),
        ("5 l", None, 5),  # a lowercase `l` is no lakh
        ("5 kg", None, 5),
        ("$5 a month", None, 5),
        ("5 mil", "sv", 5),  # Swedish miles
        ("12 mil", "es", 12_000),
        ("5 mils", None, 5),
    ],
)
def test_a_regional_scale_word_reads_in_its_region_and_units_stay_units(
    text: str, locale: str | None, value: float
) -> None:
    assert parse_number(text, locale) == value


@pytest.mark.parametrize("text", ["12 mil", "$5 mil", "1.2 mil followers", "R$ 12 MIL"])
def test_mil_on_an_english_page_is_an_error(text: str) -> None:
    """`mil` is a unit of English (a thousandth of an inch), informal English for a million
    and es/pt for a thousand: it was read as the unit, `12 mil` stored 12."""
    with pytest.raises(ValueError, match=r"'(?i:mil)' after the number could be million"):
        parse_number(text)


@pytest.mark.parametrize(
    ("text", "scale"),
    [
        ("R$ 5 mi", "×1000000 in pt"),  # a Brazilian page without lang: 5 million, not miles
        ("USD 5 mi", "×1000000 in pt"),
        ("$5mm", "×1000000 in kek"),  # finance's million, not millimetres
        ("$5G", "×1000 in kab"),
    ],
)
def test_a_unit_after_an_amount_of_money_that_cldr_scales_with_is_an_error(
    text: str, scale: str
) -> None:
    """A length or mass unit after money (miles, millimetres, g-force of dollars) was read
    as that unit and the amount stored as it is: `R$ 5 mi` stored 5."""
    with pytest.raises(ValueError, match=f"after an amount of money is no unit of it.*{scale}"):
        parse_number(text)


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("R$ 5 mi", "pt-BR", 5e6),
        ("$5 a month", None, 5),  # `a` (ampere) is the article
        ("$5 min", None, 5),  # time: a price per minute, or a minimum
        ("$25 h", None, 25),
        ("€ 3 j", "fr", 3),
        ("$5 kg", None, 5),  # no scale anywhere
        ("5 mi", None, 5),  # miles, no money
        ("5 mm", None, 5),
    ],
)
def test_units_of_time_and_units_without_money_stay_units(
    text: str, locale: str | None, value: float
) -> None:
    assert parse_number(text, locale) == value
