"""Text → number and the extractors (CSS, XPath, JMESPath) with their options."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

import pytest

from kpi_collector.collect.extract import (
    CSS,
    HtmlDocument,
    JMESPath,
    Metric,
    XPath,
    finish,
    finish_plain,
    from_json,
)
from kpi_collector.collect.numbers import parse_number
from kpi_collector.errors import ExtractError
from tests.numbers_caches import _fresh_number_caches  # noqa: F401 (autouse)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12,374", 12374),
        ("1.2k", 1200),
        ("3.4M", 3_400_000),
        ("59.5%", 59.5),
        ("$1,200", 1200),
        ("€ 1.234,50", 1234.5),
        ("1.234.567", 1234567),
        ("(1,200)", -1200),
        ("−5", -5),
        ("-0.25", -0.25),
        ("2bn", 2e9),
        ("  42 downloads ", 42),
        ("12\u00a0374", 12374),
        ("1'234'567", 1234567),
        ("5 000,50", 5000.5),
        ("7", 7),
    ],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"), [("", "empty"), ("n/a", "no number"), ("3 of 5", "regex")]
)
def test_parse_number_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_number(text)


PAGE = b"""<html><body>
<a class="anthrazit" href="/1">one</a><a class="anthrazit" href="/2">two</a><a class="other">x</a>
<div id="total">Total: 12,374 downloads (59.5% organic)</div>
<span class="n" data-count="1.2k">n</span><p class="status">AMBER</p>
</body></html>"""


def test_css_count_text_attr_regex_map() -> None:
    doc = HtmlDocument(PAGE)
    assert doc.metric("posts", CSS("a.anthrazit", count=True)) == 2
    assert doc.metric("n", CSS("span.n", attr="data-count")) == 1200
    assert doc.metric("d", CSS("#total", regex=r"([\d,]+) downloads")) == 12374
    assert doc.metric("p", CSS("#total", regex=r"([\d.]+)%")) == 59.5
    assert doc.metric("s", CSS("p.status", map={"GREEN": 2, "AMBER": 1, "RED": 0})) == 1


def test_xpath_count_and_text() -> None:
    doc = HtmlDocument(PAGE)
    assert doc.metric("posts", XPath("//a[@class='anthrazit']", count=True)) == 2
    assert doc.metric("d", XPath("//div[@id='total']", regex=r"([\d,]+) downloads")) == 12374
    assert doc.metric("c", XPath("count(//a)")) == 3


def test_zero_matches_is_an_error_unless_allowed() -> None:
    doc = HtmlDocument(PAGE)
    with pytest.raises(ExtractError, match=r"matched nothing.*allow_zero"):
        doc.metric("posts", CSS("a.missing", count=True))
    assert doc.metric("posts", CSS("a.missing", count=True, allow_zero=True)) == 0


def test_selector_matching_nothing_and_text_without_number() -> None:
    doc = HtmlDocument(PAGE)
    with pytest.raises(ExtractError, match="matched nothing"):
        doc.metric("x", CSS("#nope"))
    with pytest.raises(ExtractError, match="more than one number"):
        doc.metric("x", CSS("#total"))
    with pytest.raises(ExtractError, match="not one of the mapped values"):
        doc.metric("x", CSS("p.status", map={"GREEN": 2}))


def test_expect_bounds() -> None:
    doc = HtmlDocument(PAGE)
    assert doc.metric("posts", CSS("a.anthrazit", count=True, expect={"min": 1, "max": 5})) == 2
    with pytest.raises(ExtractError, match="outside expect"):
        doc.metric("posts", CSS("a.anthrazit", count=True, expect={"min": 10}))


def test_jmespath() -> None:
    document = {
        "data": {"customers": {"paying": 42}, "items": [1, 2, 3], "label": "1.5k", "none": None}
    }
    assert from_json("a", document, JMESPath("data.customers.paying")) == 42
    assert from_json("b", document, JMESPath("data.items", count=True)) == 3
    assert from_json("c", document, JMESPath("sum(data.items)")) == 6
    assert from_json("d", document, JMESPath("data.label")) == 1500
    with pytest.raises(ExtractError, match="matched nothing"):
        from_json("e", document, JMESPath("data.nope"))
    with pytest.raises(ExtractError, match="matched nothing"):
        from_json("f", document, JMESPath("data.none"))


def test_metric_model_refuses_two_extractors_and_bad_patterns() -> None:
    with pytest.raises(ValueError, match="one extractor"):
        Metric(css="a", xpath="//a")
    with pytest.raises(ValueError, match="regex"):
        Metric(css="a", regex="(")
    with pytest.raises(ValueError, match="JMESPath"):
        Metric(jmespath="data.[")


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,200)", 1200.0), ("(1,200", 1200.0), ("(1,200)", -1200.0), ("Comments (12)", 12.0)],
)
def test_only_a_closed_pair_of_parentheses_is_an_accounting_negative(
    text: str, value: float
) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("1\u2019234", "de-CH", 1234.0),  # right single quotation mark as the group symbol
        ("1\u02bc234", "de-CH", 1234.0),  # modifier letter apostrophe
        ("\u200f1,234", None, 1234.0),  # a right-to-left mark goes
        ("1,\u200b234", None, 1234.0),  # a zero-width space goes
        ("\uff0b5", None, 5.0),  # fullwidth plus
        ("\ufe625", None, 5.0),  # small plus
        ("1\uff0e5", None, 1.5),  # fullwidth full stop
        ("1\uff0c234", None, 1234.0),  # fullwidth comma
        ("\u20125", None, -5.0),  # figure dash
        ("\u27965", None, -5.0),  # heavy minus sign
        ("12\u066a", "ar", 12.0),  # Arabic percent sign
        ("5\u2030", None, 5.0),  # per mille sign
        ("\u0661\u0662\u0663", None, 123.0),  # Arabic-Indic digits
        ("-%5", "tr", -5.0),  # Turkish writes the percent sign first
    ],
)
def test_unicode_signs_digits_and_marks(text: str, locale: str | None, value: float) -> None:
    assert parse_number(text, locale) == value


def test_a_json_string_with_numbers_on_two_lines_is_an_error() -> None:
    """JSON text is not HTML: a line break in a string parts two numbers."""
    document = {"split": "12\n374", "labelled": "Total:\n1,234"}
    assert from_json("labelled", document, JMESPath("labelled")) == 1234
    with pytest.raises(ExtractError, match="more than one number"):
        from_json("split", document, JMESPath("split"))


@pytest.mark.parametrize("text", ["12\t374", "users\t12\t345", "12   374", "1 \t 234"])
def test_a_programs_columns_are_two_numbers(text: str) -> None:
    """A tab or a run of spaces between digits of a program's text parts its columns: was
    read as one number grouped by a space, 12374 (in HTML it is a space as shown)."""
    with pytest.raises(ExtractError, match="more than one number"):
        finish_plain("m", text, Metric(query="q"))


@pytest.mark.parametrize(
    ("text", "value"), [("12 374", 12374), ("Total:\t1,234", 1234), ("1,234\tusers", 1234)]
)
def test_a_programs_text_reads_one_number_with_its_label(text: str, value: float) -> None:
    assert finish_plain("m", text, Metric(query="q")) == value
    assert parse_number("12\t374") == 12374  # a page's tab is a space


def test_json_integers_beyond_what_is_stored_exactly_are_errors() -> None:
    import json

    document = json.loads('{"big": 9007199254740993, "huge": ' + "9" * 400 + ', "ok": 2e20}')
    assert from_json("ok", document, JMESPath("ok")) == 2e20
    for name in ("big", "huge"):
        with pytest.raises(ExtractError, match="stored exactly"):
            from_json(name, document, JMESPath(name))


def test_numeric_text_beyond_what_is_stored_exactly_is_an_error() -> None:
    """A JSON API writes big counts as strings: "12345678901234567890" read as text was
    stored rounded (…7168). Text whose digits a double does not hold past 2**53 is an error;
    a round or scaled big number is kept."""
    document = {
        "big": "12345678901234567890",
        "grouped": "9,007,199,254,740,993",
        "half": "9007199254740992.5",
        "exact": "9007199254740992",
        "round": "100,000,000,000,000,000,000",
        "scaled": "9,200 trillion",
        "e": "1.5e20",
    }
    assert from_json("exact", document, JMESPath("exact")) == 2**53
    assert from_json("round", document, JMESPath("round")) == 1e20
    assert from_json("scaled", document, JMESPath("scaled")) == 9.2e15
    assert from_json("e", document, JMESPath("e")) == 1.5e20
    for name in ("big", "grouped", "half"):
        with pytest.raises(ExtractError, match="stored exactly"):
            from_json(name, document, JMESPath(name))


def test_a_path_giving_a_list_says_how_to_pick_one_number() -> None:
    """A filter or projection (`items[?id=='x'].n`) always gives a list, even of one."""
    document = {"items": [{"id": "x", "n": 5}, {"id": "y", "n": 7}]}
    with pytest.raises(ExtractError, match=r"gave a list .*\| \[0\].*sum\(\.\.\.\).*count: true"):
        from_json("n", document, JMESPath("items[?id=='x'].n"))
    assert from_json("n", document, JMESPath("items[?id=='x'].n | [0]")) == 5


@pytest.mark.parametrize(
    "raw",
    [
        12345678901234567890,
        2**53 + 1,
        -(2**53) - 1,
        "12,345,678,901,234,567,890",
        "9007199254740993",
        "9.007.199.254.740.993",
    ],
)
def test_an_integer_a_stored_number_cannot_hold_exactly_is_an_error(raw: object) -> None:
    """12345678901234567890 was stored (and shown, "12,345,678,901,234,567,168.0") as the
    nearest double, 12345678901234567168: another number than the source's, silently. A
    stored number holds every integer up to 2**53 exactly, and some larger ones (10**21);
    any other is an error that says what it would have become."""
    locale = "de" if isinstance(raw, str) and raw.count(".") > 1 else None
    with pytest.raises(ExtractError) as caught:
        finish("users", raw, Metric(), locale)
    message = str(caught.value)
    assert message.startswith("users: ")
    assert f"{float(int(str(raw).replace(',', '').replace('.', ''))):.0f}" in message
    assert "9,007,199,254,740,992" in message and "\n" not in message


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (2**53, 2.0**53),
        (10**21, 1e21),
        ("9,007,199,254,740,992", 2.0**53),
        ("1,000,000,000,000,000,000,000", 1e21),
        ("1.2345678901234567890 billion", 1234567890.1234567),
        (0.1, 0.1),
    ],
)
def test_integers_a_stored_number_holds_exactly_are_read(raw: object, value: float) -> None:
    assert finish("users", raw, Metric()) == value


@pytest.mark.parametrize("raw", [Decimal("1E-400"), Decimal("-3.5E-330"), Fraction(1, 10**400)])
def test_a_number_too_small_for_a_stored_number_is_an_error(raw: object) -> None:
    """A PostgreSQL NUMERIC of 1e-400 (a Decimal) became the float 0.0 and was stored as 0:
    another number than the source's, silently. Below the smallest double it is an error."""
    with pytest.raises(ExtractError, match=r"^rate: .* is too small to store"):
        finish("rate", raw, Metric())


@pytest.mark.parametrize("raw", [Decimal("sNaN"), Decimal("NaN"), Decimal("-Infinity")])
def test_a_decimal_that_is_no_number_is_that_metrics_error(raw: Decimal) -> None:
    """`Decimal('sNaN')` from a function or a query raised a bare ValueError ("cannot convert
    signaling NaN to float"), reported as a bug in the source; like NaN and infinities, it is
    the metric's error."""
    with pytest.raises(ExtractError, match=r"^rate: "):
        finish("rate", raw, Metric())


@pytest.mark.parametrize(
    ("raw", "value"),
    [(Decimal("0"), 0.0), (Decimal("-0.0"), 0.0), (Decimal("5E-324"), 5e-324), (Fraction(0), 0.0)],
)
def test_zero_and_the_smallest_doubles_are_read(raw: object, value: float) -> None:
    assert finish("rate", raw, Metric()) == value


# --- machine-written values: a locale for pages, booleans ------------------------------------


@pytest.mark.parametrize(
    ("raw", "locale", "value"),
    [
        ("1.234", None, 1.234),
        ("1234.5", "de", 1234.5),  # no German reading: the same number either way
        ("0.5", "de", 0.5),
        ("-12", "de", -12),
        ("1.5e3", "de", 1500),
        ("1.234,5", "de", 1234.5),  # written as German writes it: read so
        ("12,5", "de", 12.5),  # no English reading: German
        ("2 Mrd.", "de", 2e9),
    ],
)
def test_a_json_string_is_read_under_the_sources_locale_when_it_reads_one_way(
    raw: str, locale: str | None, value: float
) -> None:
    assert from_json("a", {"a": raw}, JMESPath("a"), locale) == value


@pytest.mark.parametrize("raw", ["1.234", "-2.500", "1.250e1", "1,234", "12,345 users", "1.234 €"])
def test_a_json_string_that_english_and_the_locale_read_otherwise_is_an_error(
    raw: str,
) -> None:
    """`"1.234"` in an API's JSON is 1.234 as JSON writes numbers and 1234 as German pages
    do (and `"1,234"`, Python's `f"{n:,}"`, 1234 and 1.234): under a `locale: de` meant for
    the pages (the top level's, inherited by the source) it is an error that says both,
    never one of them."""
    with pytest.raises(
        ExtractError, match=r"^a: .*programs and en.* or .*de.*`locale:` on the metric"
    ):
        from_json("a", {"a": raw}, JMESPath("a"), "de")


def test_a_metrics_own_locale_says_how_its_json_string_is_written() -> None:
    assert from_json("a", {"a": "1.234"}, JMESPath("a", locale="de"), "en") == 1234
    assert from_json("a", {"a": "1.234"}, JMESPath("a", locale="en"), "de") == 1.234


def test_json_numbers_have_one_notation_whatever_the_locale() -> None:
    assert from_json("a", {"a": 1.234}, JMESPath("a"), "de") == 1.234
    assert from_json("a", {"a": 1.234}, JMESPath("a", locale="de")) == 1.234


@pytest.mark.parametrize("raw", [True, False])
def test_a_boolean_is_not_a_number(raw: bool) -> None:
    """`"active": true` where a number is expected is a path to the wrong field, or a status
    the user maps to numbers themselves; storing 1 or 0 would be a silent choice."""
    spelled = "true" if raw else "false"
    with pytest.raises(
        ExtractError, match=rf"^a: expected a number, got the boolean {spelled}; .*map:"
    ):
        from_json("a", {"a": raw}, JMESPath("a"))
    with pytest.raises(ExtractError, match=rf"got the boolean {spelled}"):
        finish("a", raw, Metric())


def test_a_boolean_is_mapped_by_its_json_spelling() -> None:
    mapped = JMESPath("up", map={"true": 1, "false": 0})
    assert from_json("up", {"up": True}, mapped) == 1
    assert from_json("up", {"up": False}, mapped) == 0
    with pytest.raises(ExtractError, match=r"'false' is not one of the mapped values \(true\)"):
        from_json("up", {"up": False}, JMESPath("up", map={"true": 1}))


def test_an_xpath_boolean_is_not_a_number_either() -> None:
    document = HtmlDocument(b"<p class=ok>fine</p>")
    with pytest.raises(ExtractError, match=r"got the boolean true; .*map:"):
        document.metric("ok", XPath("boolean(//p[@class='ok'])"))
    assert document.metric("ok", XPath("number(boolean(//p[@class='ok']))")) == 1
    assert document.metric("ok", XPath("boolean(//p[@class='ok'])", map={"true": 1})) == 1


@pytest.mark.parametrize(("pattern", "text"), [(r"(\d+)?x", "x"), (r"(\d+)|(k)", "k")])
def test_a_regex_group_that_took_no_part_is_the_metrics_error(pattern: str, text: str) -> None:
    """The first group is the number; a match where it is empty of any text (an optional
    group, an alternative) was a crash (AttributeError on None), not the metric's error."""
    with pytest.raises(ExtractError, match=r"^m: regex .* matched .* but its first group"):
        finish("m", text, Metric(css="a", regex=pattern))


@pytest.mark.parametrize(
    ("page", "pattern"),
    [
        (b"<div id=a><p>Users: 12</p><p>345 new</p></div>", r"Users: ([\d ,]+)"),
        (b"<ul id=a><li>Total 5</li><li>120 pending</li></ul>", r"Total ([\d\s]+)"),
        (b"<div id=a>Total 5<br>120 pending</div>", r"Total ([0-9 ]+)"),
        (b"<table id=a><tr><td>Users: 12</td><td>345</td></tr></table>", r": ([\d ]+)"),
    ],
)
def test_a_regex_does_not_join_digits_from_two_lines(page: bytes, pattern: str) -> None:
    """A pattern sees the lines of an element's text parted by spaces; what it picked kept
    them as spaces too, so digits it took from two lines read as one grouped number: 12345
    from `<p>Users: 12</p><p>345 new</p>`."""
    document = HtmlDocument(page)
    with pytest.raises(ExtractError, match="more than one number"):
        document.metric("m", CSS("#a", regex=pattern))
    with pytest.raises(ExtractError, match="more than one number"):
        document.metric("m", XPath("//*[@id='a']", regex=pattern))


def test_a_regex_reads_a_grouped_number_within_one_line() -> None:
    page = b"<div id=a><p>Users: 12 345</p><p>678 new</p></div>"
    assert HtmlDocument(page).metric("m", CSS("#a", regex=r"Users: (\d+ \d+)")) == 12345
    assert HtmlDocument(page).metric("m", CSS("#a", regex=r"(\d+) new")) == 678
    assert finish_plain("m", "Users: 12\n345", Metric(query="q", regex=r"Users: (\d+)")) == 12


def test_a_regex_on_a_programs_lines_does_not_join_them() -> None:
    with pytest.raises(ExtractError, match="more than one number"):
        finish_plain("m", "Users: 12\r\n345 new", Metric(query="q", regex=r"Users: ([\d\s]+)"))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("sum(data.labels)", r"sum\(\), invalid type for value: a"),
        ("abs(data.labels)", r"abs\(\), invalid type"),
        ("length(data.n)", r"length\(\), invalid type"),
    ],
)
def test_a_jmespath_function_that_fails_on_the_answer_is_that_metrics_error(
    path: str, message: str
) -> None:
    """`sum()` of texts is a JMESPathTypeError when the answer comes, not when the config
    loads: it was raised past `extract_all`, so the source's other metrics were lost too."""
    from kpi_collector.collect.extract import extract_all

    document = {"data": {"labels": ["a", "b"], "n": 5}}
    metrics = {"bad": JMESPath(path), "good": JMESPath("data.n")}
    values, errors = extract_all(metrics, lambda name, m: from_json(name, document, m))
    assert values == {"good": 5}
    assert list(errors) == ["bad"]
    assert errors["bad"].startswith(f"bad: JMESPath {path!r} failed on the answer: ")
    assert __import__("re").search(message, errors["bad"])


def test_a_function_jmespath_does_not_have_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"calls total\(\), which JMESPath does not have"):
        JMESPath("data && total(data.items)")


@pytest.mark.parametrize("raw", [-0.0, "-0", "(0)", "-0.00"])
def test_a_zero_is_never_stored_as_negative_zero(raw: object) -> None:
    import math

    value = from_json("z", {"z": raw}, JMESPath("z"))
    assert value == 0 and math.copysign(1.0, value) == 1.0


GERMAN_TABLE = b"""<html lang="de"><body><table>
<tr><td class="n">1.234</td></tr><tr><td class="n">2.345</td></tr></table>
<p class="ok">ja</p></body></html>"""


@pytest.mark.parametrize(
    "expression", ["sum(//td[@class='n'])", "number(//td[@class='n'][1])", "sum (//td)"]
)
def test_xpath_number_functions_on_a_page_whose_locale_groups_with_dots_are_errors(
    expression: str,
) -> None:
    """XPath's sum() and number() read `1.234` as 1.234 whatever the page's language: on a
    German page (1.234 is 1234) the total 3.579 would be stored for 3579."""
    document = HtmlDocument(GERMAN_TABLE)
    with pytest.raises(
        ExtractError, match=r"^t: XPath's sum\(\) and number\(\) read .* page is de, "
    ):
        document.metric("t", XPath(expression))
    with pytest.raises(ExtractError, match="XPath's sum"):
        HtmlDocument(GERMAN_TABLE.replace(b'lang="de"', b"")).metric(
            "t", XPath(expression, locale="de")
        )


def test_xpath_number_functions_where_they_read_as_the_page_writes() -> None:
    english = GERMAN_TABLE.replace(b'lang="de"', b'lang="en"')
    assert HtmlDocument(english).metric("t", XPath("sum(//td[@class='n'])")) == pytest.approx(3.579)
    german = HtmlDocument(GERMAN_TABLE)
    assert german.metric("c", XPath("count(//td)")) == 2
    assert german.metric("b", XPath("number(boolean(//p[@class='ok']))")) == 1
    assert german.metric("n", XPath("//td[@class='n']")) == 1234  # read by kpi, as de


def test_a_boolean_as_a_mapped_value_is_a_config_error() -> None:
    """`map: {GREEN: true}` stored 1 for GREEN: YAML's true where a number goes."""
    from kpi_collector.config.loader import parse_config
    from kpi_collector.errors import ConfigError

    with pytest.raises(ValueError, match="a boolean is not a number"):
        Metric(css="a", map={"GREEN": True})
    text = (
        "sources:\n  - {name: s, type: html, url: 'http://x/', "
        "metrics: {a: {css: b, map: {GREEN: yes, RED: 0}}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert str(caught.value) == (
        "kpi.yaml:2: source 's': metrics.a.map.GREEN: yes (YAML reads it as true) is not a number"
    )


@pytest.mark.parametrize("data", ['\ufeff{"n": 5}', b'\xef\xbb\xbf{"n": 5}', '{"n": 5}'])
def test_json_text_with_a_byte_order_mark_is_read_like_bytes_with_one(data: str | bytes) -> None:
    """`jsontext.loads` read bytes with a BOM but refused the same text decoded as UTF-8
    ("Unexpected UTF-8 BOM")."""
    from kpi_collector.collect import jsontext

    assert from_json("n", jsontext.loads(data), JMESPath("n")) == 5


def test_numpy_booleans_are_booleans_and_their_arrays_no_number() -> None:
    """A pandas column's `numpy.bool_` from a `python` source is a boolean; an array of
    them is no number (and never asked for its truth, which numpy refuses)."""
    numpy = pytest.importorskip("numpy")
    with pytest.raises(ExtractError, match="got the boolean true"):
        finish("a", numpy.bool_(True), Metric())
    assert finish("a", numpy.bool_(False), Metric(map={"false": 0})) == 0
    with pytest.raises(ExtractError, match="expected a number, got ndarray"):
        finish("a", numpy.array([True, False]), Metric())


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        # XPath's string value joins every text inside: was 5120 and 1.2345
        ("string(//ul)", None),
        ("normalize-space( //ul[@id='l'] )", None),
        ("string(//p[@id='h'])", 1234),
        ("normalize-space(//p[@id='h'])", 1234),
        ("string((//p)[1])", 1234),
        ("string(//p[@id='d'])", 1234.5),  # the element's own lang, as for a path
        ("string(//p[@id='h']/text())", 1234),  # a text node, as it is
        ("string(//p[@id='a']/@data-n)", 77),
    ],
)
def test_xpath_string_of_an_element_reads_its_text_as_the_page_shows_it(
    expression: str, value: float | None
) -> None:
    page = b"""<html><body><p id=h>1,234<span style="display:none">5</span></p>
    <ul id=l><li>5</li><li>120</li></ul><p id=d lang=de>1.234,5</p><p id=a data-n=77>x</p>
    </body></html>"""
    document = HtmlDocument(page)
    if value is None:
        with pytest.raises(ExtractError, match="more than one number"):
            document.metric("m", XPath(expression))
    else:
        assert document.metric("m", XPath(expression)) == value


def test_xpath_string_functions_that_are_not_one_elements_text_stay_as_they_are() -> None:
    document = HtmlDocument(b"<p id=a>Total: 12</p><p id=b>7</p>")
    assert document.metric("m", XPath("substring-after(//p[@id='a'], ': ')")) == 12
    assert (
        document.metric("m", XPath("string(//p[@id='a']) = string(//p[@id='b'])", map={"false": 0}))
        == 0
    )
    assert document.metric("m", XPath("concat('', //p[@id='b'])")) == 7


@pytest.mark.parametrize("expression", ["number(//p)", "sum(//td)", "//p * 2", "number(//q)"])
def test_an_xpath_that_gives_nan_says_why(expression: str) -> None:
    """XPath reads `1,234` (and a missing element) as NaN; the error was only "nan is not a
    finite number", saying neither why nor what to write instead."""
    document = HtmlDocument(b"<p id=a>1,234</p><table><tr><td>1,5</td><td>2</td></tr></table>")
    with pytest.raises(ExtractError, match=r"gave NaN \(not a number\): XPath reads only"):
        document.metric("m", XPath(expression))
    assert document.metric("m", XPath("//p")) == 1234


@pytest.mark.parametrize(
    ("expression", "what"),
    [
        ("//p/text()", "a text"),
        ("//p/@data-n", "an attribute's value"),
        ("count(//p)", "a number"),
        ("string(//p/@title)", "a text"),
    ],
)
def test_attr_on_an_xpath_that_gives_no_element_is_an_error(expression: str, what: str) -> None:
    """`attr:` was skipped where the XPath gave no element, and what it gave read instead
    (the text 5 for `attr: data-n`, which holds 7)."""
    document = HtmlDocument(b"<p data-n=7 title=3>5</p>")
    with pytest.raises(ExtractError, match=f"`attr: data-n` reads an element's .* gives {what};"):
        document.metric("m", XPath(expression, attr="data-n"))
    assert document.metric("m", XPath("//p", attr="data-n")) == 7
    assert document.metric("m", XPath("//p/@data-n")) == 7


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        # XPath's string value of <td>: hidden text and separate lines joined (was 12)
        ("number(//td[@id='a'])", None),
        ("number(//td[@id='b'])", None),
        ("sum(//td)", None),
        ("number(//td[@id='c'])", 7),
        ("sum(//td[@id='c' or @id='d'])", 15),
        ("number(//td[@id='c']) * 2", 14),
        ("count(//td)", 4),
    ],
)
def test_xpath_number_and_sum_read_an_element_as_the_page_shows_it(
    expression: str, value: float | None
) -> None:
    document = HtmlDocument(
        b"<table><tr><td id=a>1<span hidden>2</span></td><td id=b><p>1</p><p>2</p></td>"
        b"<td id=c>7</td><td id=d> 8 <!-- 9 --></td></tr></table>"
    )
    if value is None:
        with pytest.raises(ExtractError, match=r"reads the text of <td> as '12', which the page"):
            document.metric("m", XPath(expression))
    else:
        assert document.metric("m", XPath(expression)) == value


@pytest.mark.parametrize(
    ("text", "pattern", "picked"),
    [
        # a regex written for plain digits took a part of the number the page writes
        ("12,374 downloads", r"(\d+) downloads", "'374' out of the number '12,374'"),
        ("59.5% organic", r"(\d+)%", "'5' out of the number '59.5'"),
        ("Rate .75", r"(\d+)", "'75' out of the number '.75'"),
        ("Total 1,234.56 EUR", r"([\d,]+)", "'1,234' out of the number '1,234.56'"),
        ("12 345 users", r"(\d+) users", "'345' out of the number '12 345'"),
    ],
)
def test_a_regex_that_takes_part_of_a_number_is_an_error(
    text: str, pattern: str, picked: str
) -> None:
    with pytest.raises(ExtractError, match=re.escape(f"regex {pattern!r} picked {picked}")):
        finish("m", text, Metric(css="a", regex=pattern))


@pytest.mark.parametrize(
    ("text", "pattern", "value"),
    [
        ("12,374 downloads", r"([\d,]+) downloads", 12374),
        ("Total: 1,234 (59.5% organic)", r"([\d.]+)%", 59.5),
        ("Order #12345-67", r"#(\d+)-", 12345),
        ("v2.1: 1,234 users", r": ([\d,]+) users", 1234),
        ("Users: 12\u2029345 new", r"(\d+) new", 345),  # two lines: two numbers
        ("12 345 users", r"(\d+ \d+) users", 12345),
    ],
)
def test_a_regex_that_takes_whole_numbers_reads_them(text: str, pattern: str, value: float) -> None:
    assert finish("m", text, Metric(css="a", regex=pattern)) == value
