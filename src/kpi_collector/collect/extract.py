"""Reading metrics out of documents: JMESPath on JSON, CSS and XPath on HTML, then the
shared post-processing every metric gets (attr, regex, text → number, map, expect).
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kpi_collector.collect.layout import (
    PARAGRAPH,
    busy,
    count_unshown,
    counter_target,
    header_language,
    layout_text,
    lxml_busy,
    lxml_counter_target,
    lxml_layout_text,
    lxml_unshown,
    nearest_lang,
    pragma_language,
    unshown,
)
from kpi_collector.collect.numbers import (
    LARGEST_EXACT,
    digit_count,
    exact_float,
    not_exact,
    number_spans,
    page_locale,
    parse_number,
)
from kpi_collector.collect.patterns import compile_pattern
from kpi_collector.config.plain import Plain
from kpi_collector.errors import ExtractError
from kpi_collector.lazy import lazy_exports
from kpi_collector.secrets import redact_cut

if TYPE_CHECKING:
    from kpi_collector.collect.metric import Metric as Metric

log = logging.getLogger("kpi_collector.extract")


class PlainExpect(Plain):
    """Bounds a value must fall in (see `collect.metric.Expect`)."""

    if TYPE_CHECKING:
        min: float | None
        max: float | None


class PlainMetric(Plain):
    """How to read one metric (see `collect.metric.Metric`, its model)."""

    if TYPE_CHECKING:
        jmespath: str | None
        css: str | None
        xpath: str | None
        query: str | None
        count: bool
        attr: str | None
        regex: str | None
        allow_zero: bool
        expect: PlainExpect | None
        map: dict[str, float] | None
        title: str | None
        unit: str | None
        locale: str | None

    @property
    def extractor(self) -> str | None:
        for key in ("jmespath", "css", "xpath", "query"):
            if getattr(self, key):
                return key
        return None


#: the models, served from `collect.metric` on first use (pydantic is imported there)
__getattr__ = lazy_exports(
    "kpi_collector.collect",
    {
        "Expect": "metric",
        "Metric": "metric",
        "CSS": "metric",
        "XPath": "metric",
        "JMESPath": "metric",
    },
)


def coerce_metric(value: Any, default_extractor: str) -> Any:
    """A metric given as a short string means the source's default extractor."""
    if isinstance(value, str):
        return {default_extractor: value}
    return value


@lru_cache(maxsize=4096)
def _compile_jmespath(expression: str) -> Any:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"JMESPath {expression!r} is not valid: {exc}") from None
    _check_functions(expression, compiled.parsed)
    return compiled


def _check_functions(expression: str, tree: Any) -> None:
    """ValueError for a function JMESPath does not have (`total(a)`): jmespath finds it
    only when it calls it, on the first answer, where the config can say so at load."""
    from jmespath.functions import Functions

    known = Functions.FUNCTION_TABLE
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "function_expression" and node.get("value") not in known:
            raise ValueError(
                f"JMESPath {expression!r} is not valid: it calls {node.get('value')}(), which "
                f"JMESPath does not have (its functions: {', '.join(sorted(known))})"
            )
        stack.extend(child for child in node.get("children", ()) if isinstance(child, dict))


def check_css(selector: str) -> None:
    """ValueError (saying why) unless `selector` is a CSS selector Lexbor can run."""
    _check_css(selector)


@lru_cache(maxsize=4096)
def _check_css(selector: str) -> None:
    from selectolax.lexbor import LexborHTMLParser

    try:
        LexborHTMLParser("").css(selector)
    except Exception:  # lexbor's SelectolaxError: the selector does not parse
        raise ValueError(
            f"CSS selector {selector!r} is not valid (check brackets, quotes and combinators)"
        ) from None


@lru_cache(maxsize=4096)
def _compile_xpath(expression: str) -> Any:
    from lxml.etree import XPath, XPathSyntaxError

    try:
        return XPath(expression)
    except XPathSyntaxError as exc:
        raise ValueError(f"XPath {expression!r} is not valid: {exc}") from None


def finish(
    name: str, raw: Any, metric: PlainMetric, locale: str | None = None, *, machine: bool = False
) -> float:
    """Turn what an extractor found into the metric's number, or raise ExtractError.

    Text is read as numbers are written under `metric.locale`, else `locale` (the
    source's or the config's `locale:`, else the page's `lang`), else en. A number (int,
    float, Decimal, Fraction, any `numbers.Real`) is stored as a float, so one that a float
    does not hold exactly past 2**53 (9007199254740993, 10**400) is an error, never rounded.
    A boolean is no number: an error, unless `map:` names its JSON spelling (`"true": 1`).
    `machine`: the text is a program's (a JSON string, a query's or a command's, an HTML
    attribute's such as `<meta itemprop="price" content="1.234">`), where
    `1.234` is also how JSON writes 1.234; under a `locale` that reads it otherwise (de:
    1234) and no `locale:` of the metric's own, it is an error.
    """
    value: float
    if _is_boolean(raw):
        spelled = "true" if raw else "false"
        if metric.map is None:
            raise ExtractError(
                f"{name}: expected a number, got the boolean {spelled}; to store it, map it "
                'to numbers: `map: {"true": 1, "false": 0}`'
            )
        value = _mapped(name, spelled, metric.map)
    elif isinstance(raw, numbers.Real | Decimal):
        value = _exact(name, raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if metric.regex is not None:
            # `layout_text` parts its lines with U+2029; a pattern sees them as spaces, as
            # the page's text was written before, and what it picks keeps them, so digits
            # it takes from two lines (`Users: ([\d ]+)` on `<p>Users: 12</p><p>345</p>`)
            # are two numbers, never 12345
            match = compile_pattern(metric.regex).search(text.replace(PARAGRAPH, " "))
            if match is None:
                raise ExtractError(
                    f"{name}: regex {metric.regex!r} found nothing in {_short(text)}"
                )
            start, end = match.span(1 if match.groups() else 0)
            if start < 0:  # `(\d+)?x` on "x": the group took no part in the match
                raise ExtractError(
                    f"{name}: regex {metric.regex!r} matched {_short(match.group(0))} but its "
                    "first group (the number) took no part; make that group required"
                )
            _whole_number(name, metric.regex, text, start, end)
            text = text[start:end]
        if metric.map is not None:
            # a mapped value sees lines parted as spaces, as the page's text was written
            value = _mapped(name, text.replace(PARAGRAPH, " "), metric.map)
        else:
            if machine and metric.locale is None and locale is not None:
                _one_reading(name, text, locale)
            try:
                value = parse_number(text, metric.locale or locale)
            except ValueError as exc:
                raise ExtractError(f"{name}: {exc}") from None
            if not -LARGEST_EXACT < value < LARGEST_EXACT:  # 2**53 itself may be rounded
                _exact_text(name, text, value)
    elif raw is None:
        raise ExtractError(f"{name}: the value is missing (null)")
    else:
        raise ExtractError(
            f"{name}: expected a number, got {type(raw).__name__} {_short(repr(raw))}"
        )
    if not math.isfinite(value):
        raise ExtractError(f"{name}: {value} is not a finite number")
    if value == 0:
        value = 0.0  # JSON's -0.0, a `map:` to -0: a zero, never stored or shown as -0
    if metric.expect is not None:
        low, high = metric.expect.min, metric.expect.max
        if (low is not None and value < low) or (high is not None and value > high):
            raise ExtractError(
                f"{name}: {value:g} is outside expect [{_bound(low)}, {_bound(high)}]; not stored"
            )
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "%s: %s gave %s, read as %s",
            name,
            _how(metric),
            _short(raw) if isinstance(raw, str) else repr(raw),
            f"{value:g}",
        )
    return value


def _whole_number(name: str, pattern: str, text: str, start: int, end: int) -> None:
    """ExtractError when what a `regex:` picked (`text[start:end]`) cuts through a number of
    `text`: `(\\d+) downloads` on "12,374 downloads" picks 374, `(\\d+)%` on "59.5%" 5, a
    part of the number the page writes, never its value. A number on two lines (parted by
    U+2029) is two numbers, either of which may be picked."""
    for low, high in number_spans(text.replace(PARAGRAPH, "|")):
        if low < start < high or low < end < high:
            raise ExtractError(
                f"{name}: regex {pattern!r} picked {_short(text[start:end])} out of the "
                f"number {_short(text[low:high])}; make it take the whole number, e.g. "
                "([\\d.,]+)"
            )


def _is_boolean(raw: Any) -> bool:
    """Python's and numpy's booleans (a pandas column's `numpy.bool_` is no `bool`)."""
    if isinstance(raw, bool):
        return True
    kind = getattr(getattr(raw, "dtype", None), "kind", None)
    return kind == "b" and getattr(raw, "ndim", 1) == 0  # a scalar, not an array of them


def _mapped(name: str, text: str, table: Mapping[str, float]) -> float:
    if text not in table:
        known = ", ".join(sorted(table))
        raise ExtractError(f"{name}: {_short(text)} is not one of the mapped values ({known})")
    return table[text]


def _one_reading(name: str, text: str, locale: str) -> None:
    """ExtractError when `text`, a program's text, reads as one number as programs and
    English write numbers (JSON's `1.234`, Python's `f"{n:,}"` `1,234`) and as another
    under `locale` (de: 1234, 1.234), whose `locale:` (maybe the config's, meant for its
    pages) the metric did not set itself. Text only one of them reads is left to it."""
    try:
        written = parse_number(text, "en")
        local = parse_number(text, locale)
    except ValueError:
        return
    if local != written:
        raise ExtractError(
            f"{name}: {_short(text)} reads as {written:.15g} (as programs and en write "
            f"numbers) or {local:.15g} (as {locale} writes them); set `locale:` on the "
            f"metric to say which (en for {written:.15g})"
        )


#: a line break in text that is not HTML: CRLF, LF, CR and the other breaks of str.splitlines
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028]")


def _exact(name: str, raw: numbers.Real | Decimal) -> float:
    """`raw` as the float stored; ExtractError when that float is not `raw` and past
    LARGEST_EXACT, where the rounding reaches its whole part (integers: `exact_float`). NaN
    and infinities pass (the caller refuses them)."""
    if isinstance(raw, float):
        return raw
    if isinstance(raw, numbers.Integral):  # numpy's and other integer types too
        try:
            return exact_float(int(raw))
        except ValueError as exc:
            raise ExtractError(f"{name}: {exc}") from None
    if not isinstance(raw, Decimal | Fraction):
        dtype = getattr(raw, "dtype", None)
        if getattr(dtype, "kind", None) == "f" and getattr(dtype, "itemsize", 8) < 8:
            # numpy's float32 and float16 hold 0.1 as 0.100000001490116...: stored as the
            # shortest decimal that is this value in its own precision, as numpy prints it
            return float(str(raw))
        return float(raw)  # numpy's float64 and other reals: already floats at heart
    if isinstance(raw, Decimal) and not raw.is_finite():
        # NaN and infinities pass as floats (the caller refuses them); a signaling NaN,
        # which `float()` refuses with a ValueError, is a NaN too
        return math.nan if raw.is_nan() else float(raw)
    try:
        value = float(raw)
    except OverflowError:  # a Fraction past 1.8e308
        value = math.inf
    if value == 0 and raw != 0:  # below the smallest double (~5e-324): it would be stored as 0
        raise ExtractError(
            f"{name}: {raw} is too small to store (a stored number is 0 below about 5e-324); "
            "return it in a smaller unit"
        )
    if not -LARGEST_EXACT <= raw <= LARGEST_EXACT and (
        math.isinf(value) or _as_type(value, raw) != raw
    ):
        digits = digit_count(int(raw))  # str() of a Fraction of 4300 digits is a ValueError
        text = str(raw) if digits <= 40 else ""
        shown = text if 0 < len(text) <= 40 else f"a {digits}-digit number"
        raise ExtractError(f"{name}: {not_exact(shown, value)}")
    return value


def _exact_text(name: str, text: str, value: float) -> None:
    """ExtractError when `value`, read from `text` and past LARGEST_EXACT, lost digits that
    `text` wrote: its significant digits (the number's digits without the zeros at either
    end) are not those of the float (`12345678901234567890` is ...7168 as a float). E
    notation is left alone: its digits are what the writer chose to keep."""
    import unicodedata

    spans = number_spans(text)
    if len(spans) != 1 or re.match(r"\s?[eE][-+]?[0-9]", text[spans[0][1] :]):
        return
    written = "".join(
        str(unicodedata.digit(char)) for char in text[slice(*spans[0])] if char.isdigit()
    )
    # the float's own shortest digits (3.14159265358979e18 is "314159265358979"), not
    # those of its integer, whose binary tail (…790208) no text wrote
    kept = repr(abs(value)).split("e")[0].replace(".", "")
    if written.strip("0") != kept.strip("0"):
        raise ExtractError(f"{name}: {not_exact(_short(text), value)}")


def _as_type(value: float, like: Decimal | Fraction) -> Decimal | Fraction:
    """`value` exactly, as the type of `like` (a float converts to each without loss)."""
    return Decimal(value) if isinstance(like, Decimal) else Fraction(value)


def finish_plain(name: str, raw: Any, metric: PlainMetric, locale: str | None = None) -> float:
    """`finish` for a value that is not HTML text: a program's output, a JSON string, a
    database's or a Python function's value. Its lines are lines: numbers on two of them
    (`12\\n374`) are two numbers, an error, never 12374, as two lines of a page are (in
    HTML a newline is a space); so are its columns (`12\\t374`, `12   374`). Raises
    ExtractError, as `finish`."""
    if isinstance(raw, str):
        raw = _COLUMNS.sub(PARAGRAPH, _LINE_BREAK.sub(PARAGRAPH, raw))
    return finish(name, raw, metric, locale, machine=True)


#: what parts columns of a program's text between digits: a tab, or two spaces or more
#: (`12\t374`, `12   374` are two columns, never 12 374 grouped by a space)
_COLUMNS = re.compile(r"(?<=\d)(?:[ ]*\t[ \t]*| {2,})(?=\d)")


def _how(metric: PlainMetric) -> str:
    """ "CSS 'a.count'", "JMESPath 'data.total'": which extractor read a metric."""
    for label, expression in (
        ("CSS", metric.css),
        ("XPath", metric.xpath),
        ("JMESPath", metric.jmespath),
        ("query", metric.query),
    ):
        if expression:
            return f"{label} {expression!r}" + (
                f" (attribute {metric.attr!r})" if metric.attr else ""
            )
    return "the source"


def _bound(value: float | None) -> str:
    return "-inf" if value is None else f"{value:g}"


def _short(text: str) -> str:
    """The page's text for a message: redacted before it is cut (a cut secret would
    survive redaction), at most 60 characters."""
    return repr(redact_cut(" ".join(text.split()), 60))


def from_json(name: str, document: Any, metric: PlainMetric, locale: str | None = None) -> float:
    """Evaluate a JMESPath metric on parsed JSON."""
    assert metric.jmespath is not None
    from jmespath.exceptions import JMESPathError

    try:
        found = _compile_jmespath(metric.jmespath).search(document)
    except JMESPathError as exc:  # a function given the wrong type: `sum()` of texts
        raise ExtractError(
            f"{name}: JMESPath {metric.jmespath!r} failed on the answer: {exc}"
        ) from None
    if metric.count:
        if not isinstance(found, list | dict):
            raise ExtractError(
                f"{name}: `count: true` needs a list, {metric.jmespath!r} gave {_short(repr(found))}"
            )
        return _counted(name, len(found), metric, metric.jmespath)
    if found is None:
        raise ExtractError(f"{name}: {metric.jmespath!r} matched nothing in the JSON")
    if isinstance(found, list):
        # a filter or a projection gives a list, even of one number
        raise ExtractError(
            f"{name}: {metric.jmespath!r} gave a list ({_short(repr(found))}), not a number: "
            f"pick one with `{metric.jmespath} | [0]`, add them with `sum(...)` or count "
            "them with `count: true`"
        )
    return finish_plain(name, found, metric, locale)


def finish_shown(
    name: str,
    text: str,
    metric: PlainMetric,
    locale: str | None,
    *,
    counter: tuple[str, str] | None,
    busy: bool,
) -> float:
    """`finish` for the text an element shows, which may be a placeholder a script replaces
    later, as the element says itself: a counter script animates its text up to the number
    a `counter` attribute holds (Elementor `<span data-to-value="1234">0</span>`), and
    `aria-busy="true"` (`busy`) marks content still being filled. The text's 0 there, or a
    plain number short of the counter's (a count caught mid-animation), is an error, never
    stored: `render: true` reads such a page again until the script is done. `allow_zero:
    true` takes a 0 as it is."""
    value = finish(name, text, metric, locale)
    if metric.allow_zero or metric.map is not None:
        return value
    if counter is not None:
        attribute, target = counter
        # a nonzero count short of a `data-target`/`data-count` may be its own number (a
        # goal beside the amount raised): only the names counter scripts animate to say so
        animates = _ANIMATES_TO.search(attribute.lower()) is not None
        if value != float(target) and (
            value == 0 or (animates and _unscaled(text, value, metric, locale))
        ):
            raise ExtractError(
                f"{name}: the element shows {_short(text)} while the page's script counts it "
                f"to its `{attribute}` ({target}): read that with `attr: {attribute}`, or "
                "`render: true` to read the text once the script is done (`regex:` reads "
                "the text as it is)"
                + ("; if 0 is the value, set `allow_zero: true`" if value == 0 else "")
            )
    if value == 0 and busy:
        raise ExtractError(
            f'{name}: the element shows 0 but the page marks it busy (aria-busy="true"): '
            "a script has not filled it yet; `render: true` reads it once it has, and if 0 "
            "is the value, set `allow_zero: true`"
        )
    return value


#: counter attributes that only ever name the number a script counts up to (Elementor
#: `data-to-value`, jQuery countTo `data-to`, PureCounter `data-purecounter-end`)
_ANIMATES_TO = re.compile(
    r"-(?:to|to-value|end-value|endval|count-to|countup|purecounter-end|number-value)$"
)


def _unscaled(text: str, value: float, metric: PlainMetric, locale: str | None) -> bool:
    """Whether `value` is the digits `text` shows as they are (`617`), not scaled or
    rounded (`1.2k`), so a counter's different number is not the same one written short."""
    if metric.regex is not None:
        return False
    spans = number_spans(text)
    if len(spans) != 1:
        return False
    try:
        digits = parse_number(text[slice(*spans[0])], metric.locale or locale)
    except ValueError:
        return False
    return digits == abs(value)


def _counted(name: str, n: int, metric: PlainMetric, what: str, *, hidden: int = 0) -> float:
    """The count `n` of `what`'s matches, `hidden` of them not shown (`_refuse_mixed_count`);
    zero is an error unless `allow_zero`."""
    _refuse_mixed_count(name, what, n, hidden)
    if n == 0 and not metric.allow_zero:
        raise ExtractError(
            f"{name}: {what!r} matched nothing; if zero is a real value, set `allow_zero: true`"
        )
    return finish(name, n, metric)


def _refuse_mixed_count(name: str, what: str, n: int, hidden: int) -> None:
    """ExtractError when `hidden` of the `n` matches counted are not shown by the page
    (`layout.unshown`: hidden, display: none, a framework's hiding class, a closed dialog)
    and the others are: a hidden copy of a list (a mobile menu's, a template's) would count
    twice, and hidden items may as well be real ones; which are meant is the config's to
    say, as `_first_shown` has it for a value. All shown, or all hidden (the config picked
    them), is counted."""
    if 0 < hidden < n:
        raise ExtractError(
            f"{name}: {what!r} matches {n} elements, {hidden} of which the page does not show "
            "(hidden, display: none, a hiding class, a closed dialog): counting them with "
            f"the {n - hidden} it shows is a guess; make it match only the ones to count (e.g. "
            "a more specific class, :not([hidden]), or a container's id)"
        )


def _lxml_item_unshown(item: Any) -> bool:
    """`lxml_unshown` for what an XPath gives: an element, or a text's or attribute's
    element (a number, a string: False)."""
    if hasattr(item, "iter"):
        return bool(lxml_unshown(item))
    owner = item.getparent() if hasattr(item, "getparent") else None
    if owner is not None and getattr(item, "is_tail", False):
        owner = owner.getparent()  # a tail text is its parent's, shown or not with it
    return owner is not None and bool(lxml_unshown(owner))


def node_locale(node: Any, default: str | None = None) -> str | None:
    """The number locale (`page_locale`) of the nearest `lang` attribute on a parsed HTML
    `node` (selectolax) or its ancestors, else of `default` (the page's pragma-set default
    language, `HtmlDocument.default_lang`); None when there is none."""
    lang = nearest_lang(node)
    if lang is None:
        lang = default
    return page_locale(lang) if lang is not None else None


#: matching steps a CSS selector may cost on Lexbor, which backtracks and holds the GIL while
#: it does (about a second of one core); past it, the selector runs in a process of its own
CSS_STEPS = 100_000_000
#: seconds that process may take (the source gives up at its own `timeout` before)
CSS_SECONDS = 60.0


@lru_cache(maxsize=4096)
def backtracking_combinators(selector: str) -> int:
    """How many combinators of `selector` make a matcher backtrack: descendant (` `) and
    later-sibling (`~`) ones, counted at the top level (not inside `:not(...)` or `[...]`);
    for a list (`a, b`), its costliest selector's count."""
    most = count = 0
    nesting = 0
    quote = ""
    pending_space = False
    previous = ""  # the last significant character at the top level
    for char in selector:
        if quote:
            quote = "" if char == quote else quote
            continue
        if char in "\"'":
            quote = char
        elif char in "([":
            nesting += 1
        elif char in ")]":
            nesting -= 1
        if nesting or char in "([\"'":
            if pending_space and previous not in ("", ",", ">", "+", "~"):
                count += 1
            pending_space = False
            previous = char
            continue
        if char.isspace():
            pending_space = True
            continue
        descendant = pending_space and char not in ">+" and previous not in ("", ",", ">", "+", "~")
        if char == ",":
            most, count = max(most, count), 0
        elif char == "~" or descendant:
            count += 1
        pending_space = False
        previous = char
    return max(most, count)


def _choose(n: int, k: int) -> int:
    return math.comb(n, k) if n >= k else 0


class HtmlDocument:
    """One parsed page; CSS through Lexbor (fast), XPath through lxml (only when asked).

    `body` is the page as text, decoded as a browser does (`Response.html()`); bytes are
    taken as UTF-8. `utf8`: the same page as UTF-8 bytes, when the caller has them
    (`Response.html_page()`); Lexbor parses them as they are, where text would be encoded
    into a copy first.

    `locale` is the config's `locale:` for the page; without it, a text's numbers are read
    in the language of its element (the nearest `lang` attribute, as the HTML standard
    defines an element's language, then the page's `<meta http-equiv=content-language>`,
    then `language`: the HTTP `Content-Language` header the page came with), else en.
    """

    def __init__(
        self,
        body: bytes | str,
        *,
        locale: str | None = None,
        utf8: bytes | None = None,
        seconds: float = CSS_SECONDS,
        language: str | None = None,
    ) -> None:
        from selectolax.lexbor import LexborHTMLParser

        self._body = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        self.locale = locale
        self.language = language  # the Content-Language header, as it came
        self.seconds = seconds  # the longest a selector may take in a process of its own
        self._tree = LexborHTMLParser(self._body if utf8 is None else utf8)
        self._lxml: Any = None
        self._deeper: dict[int, bool] = {}  # depth -> whether the page nests that deep
        self._elements: int | None = None  # its `<`s: an upper bound of its elements
        self._default_lang: tuple[str | None] | None = None  # found on first use

    @property
    def tree(self) -> Any:
        """The Lexbor tree (selectolax `LexborHTMLParser`) the CSS metrics run on."""
        return self._tree

    @property
    def text(self) -> str:
        """The page as text (what it was built from)."""
        return self._body

    @property
    def default_lang(self) -> str | None:
        """The language of the page's text outside any `lang` attribute, as a browser takes
        it: its `<meta http-equiv="content-language">` (`layout.pragma_language`), else the
        HTTP `Content-Language` header's one language (`layout.header_language`); None
        when it has none."""
        if self._default_lang is None:
            pragma = pragma_language(self._tree.tags("meta"))
            self._default_lang = (pragma or header_language(self.language),)
        return self._default_lang[0]

    def refresh_url(self, base_url: str) -> str | None:
        """The absolute http(s) URL the page sends on to with its first `<meta
        http-equiv="refresh">` (the keyword ASCII case-insensitive) whose `content` is a
        refresh (`http.refresh_content`: an empty one, or `soon; url=/a`, is passed over
        for the next, as a browser passes it over), resolved against `base_url` (see
        `http.refresh_url`); None when there is none, or it only reloads the page. A
        browser processes such an element wherever it is in the page (HTML standard, "the
        http-equiv attribute"): found in the parsed tree, which the page's metrics read
        anyway, no scan of its bytes."""
        from kpi_collector.collect.http import refresh_content, refresh_url

        for node in self._tree.tags("meta"):
            attrs = node.attrs
            equiv = attrs.get("http-equiv")
            content = attrs.get("content")
            refresh = equiv is not None and equiv.isascii() and equiv.lower() == "refresh"
            if refresh and content and refresh_content(content) is not None:
                return refresh_url(content, base_url)
        return None

    def _lexbor_is_bounded(self, selector: str) -> bool:
        """Whether Lexbor's backtracking on `selector` stays within `CSS_STEPS` on this page.

        A selector with k backtracking combinators (`span div div div p`) tries every way to
        pick k ancestors (or earlier siblings) of each element: about elements × C(depth, k)
        steps, which a page of nested `<div>`s makes hours long for a selector that matches
        nothing. The page's depth is probed with a chain of child combinators (`:root > * >
        ...`), which never backtracks: linear in the page."""
        k = backtracking_combinators(selector)
        if k < 2:  # one: each element's ancestors once, linear in the page times its depth
            return True
        if self._elements is None:  # counted once a page: each probe would count again
            self._elements = max(self._body.count("<"), 1)
        elements = self._elements
        deepest_allowed = k
        while elements * _choose(deepest_allowed + 1, k) <= CSS_STEPS:
            deepest_allowed += 1
        key = deepest_allowed + 1
        deeper = self._deeper.get(key)
        if deeper is None:
            deeper = self._deeper[key] = (
                self._tree.css_first(":root" + " > *" * deepest_allowed) is not None
            )
        return not deeper

    def _css_in_a_process(self, name: str, selector: str, metric: PlainMetric) -> float:
        """`selector` matched by Lexbor as always, but in a process of its own (`python -m
        kpi_collector.collect.css_child`), killed after `seconds`: its backtracking holds
        the GIL, so in this process it would stall every other source past any timeout."""
        import json
        import subprocess
        import sys

        request = {"selector": selector, "count": metric.count, "attr": metric.attr}
        page = self._body.encode("utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "kpi_collector.collect.css_child"],
                input=json.dumps(request).encode() + b"\n" + page,
                capture_output=True,
                timeout=self.seconds,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ExtractError(
                f"{name}: CSS selector {selector!r} did not finish within {self.seconds:g}s on "
                "this page, whose elements nest deep enough to make its descendant steps try "
                "every combination: write it with child combinators (`>`) or fewer steps"
            ) from None
        if done.returncode != 0:
            raise ExtractError(f"{name}: CSS selector {selector!r} could not be matched")
        answer = json.loads(done.stdout)
        if metric.count:
            hidden = int(answer.get("hidden", 0))
            return _counted(name, int(answer["count"]), metric, selector, hidden=hidden)
        if not answer["found"]:
            raise ExtractError(f"{name}: CSS selector {selector!r} matched nothing")

        def locale_of(found: dict[str, Any]) -> str | None:
            if metric.locale or self.locale:
                return self.locale
            lang = found["lang"] if found["lang"] is not None else self.default_lang
            return page_locale(lang) if lang is not None else None

        if metric.attr is not None:
            if answer["attr"] is None:
                raise ExtractError(f"{name}: {selector!r} has no attribute {metric.attr!r}")
            return finish(name, answer["attr"], metric, locale_of(answer), machine=True)

        def read(found: dict[str, Any]) -> float:
            counter = found["counter"]
            return finish_shown(
                name,
                found["text"],
                metric,
                locale_of(found),
                counter=counter and (counter[0], counter[1]),
                busy=found["busy"],
            )

        if answer.get("shown") is not None:
            return _first_shown(
                name,
                f"CSS selector {selector!r}",
                lambda: read(answer),
                lambda: read(answer["shown"]),
            )
        return read(answer)

    def css(self, name: str, metric: PlainMetric) -> float:
        selector = metric.css
        assert selector is not None
        if not self._lexbor_is_bounded(selector):
            return self._css_in_a_process(name, selector, metric)
        return self._css_on_lexbor(name, selector, metric)

    def _css_on_lexbor(self, name: str, selector: str, metric: PlainMetric) -> float:
        try:
            if metric.count:
                nodes = self._tree.css(selector)
                hidden = count_unshown(nodes)
                return _counted(name, len(nodes), metric, selector, hidden=hidden)
            # the first match in document order; Lexbor stops looking there
            node = self._tree.css_first(selector)
        except ExtractError:
            raise
        except Exception as exc:  # lexbor raises on a malformed selector
            raise ExtractError(f"{name}: CSS selector {selector!r} is not valid: {exc}") from None
        if node is None:
            raise ExtractError(f"{name}: CSS selector {selector!r} matched nothing")
        if metric.attr is not None:
            raw = node.attributes.get(metric.attr)
            if raw is None:
                raise ExtractError(f"{name}: {selector!r} has no attribute {metric.attr!r}")
            return finish(name, raw, metric, self._locale(metric, node), machine=True)

        def read(match: Any) -> float:
            return finish_shown(
                name,
                layout_text(match),
                metric,
                self._locale(metric, match),
                counter=counter_target(match),
                busy=busy(match),
            )

        if unshown(node):
            later = next((other for other in self._tree.css(selector) if not unshown(other)), None)
            if later is not None:
                return _first_shown(
                    name, f"CSS selector {selector!r}", lambda: read(node), lambda: read(later)
                )
        return read(node)

    def _locale(self, metric: PlainMetric, node: Any) -> str | None:
        if metric.locale or self.locale:
            return self.locale
        return node_locale(node, self.default_lang)

    def _lxml_locale(self, metric: PlainMetric, element: Any) -> str | None:
        if metric.locale or self.locale:
            return self.locale
        found = (
            element.xpath("ancestor-or-self::*[@lang][1]/@lang")
            if hasattr(element, "xpath")
            else []
        )
        lang = str(found[0]) if found else self.default_lang
        return page_locale(lang) if lang is not None else None

    def xpath(self, name: str, metric: PlainMetric) -> float:
        expression = metric.xpath
        assert expression is not None
        if self._lxml is None:
            import lxml.html

            # UTF-8 bytes with the parser told so: the text is decoded already, and a
            # `<meta charset>` or `<?xml encoding?>` in it must not decode it a second time
            parser = lxml.html.HTMLParser(encoding="utf-8")
            self._lxml = lxml.html.document_fromstring(self._body.encode(), parser=parser)
        from lxml.etree import XPathError

        try:
            found = self._lxml.xpath(expression)
        except XPathError as exc:
            raise ExtractError(f"{name}: XPath {expression!r} is not valid: {exc}") from None
        if isinstance(found, str) and not metric.count and metric.attr is None:
            found = self._string_of_element(expression, found)
        if isinstance(found, list):
            if metric.count:
                hidden = sum(1 for item in found if _lxml_item_unshown(item))
                return _counted(name, len(found), metric, expression, hidden=hidden)
            if not found:
                raise ExtractError(f"{name}: XPath {expression!r} matched nothing")
            first = found[0]
            if metric.attr is not None and not hasattr(first, "get"):
                raise ExtractError(_attr_of_no_element(name, expression, metric.attr, first))
            if metric.attr is not None:
                raw = first.get(metric.attr)
                if raw is None:
                    raise ExtractError(f"{name}: {expression!r} has no attribute {metric.attr!r}")
                return finish(name, raw, metric, self._lxml_locale(metric, first), machine=True)
            owner = first.getparent() if hasattr(first, "getparent") else None
            if owner is not None and getattr(first, "is_tail", False):
                # a tail text (`<span lang=en>Users:</span> 1.234`) is its parent's, in the
                # parent's language, not that of the element it follows
                owner = owner.getparent()
            element = first if hasattr(first, "xpath") else owner
            if hasattr(first, "iter") and metric.attr is None and lxml_unshown(first):
                later = next(
                    (e for e in found[1:] if hasattr(e, "iter") and not lxml_unshown(e)), None
                )
                if later is not None:
                    return _first_shown(
                        name,
                        f"XPath {expression!r}",
                        lambda: self._lxml_read(name, first, metric),
                        lambda: self._lxml_read(name, later, metric),
                    )
            if not hasattr(first, "iter"):  # a text or an attribute's value
                return finish(
                    name,
                    str(first),
                    metric,
                    self._lxml_locale(metric, element),
                    machine=bool(getattr(first, "is_attribute", False)),
                )
            return self._lxml_read(name, first, metric)
        if metric.attr is not None:
            raise ExtractError(_attr_of_no_element(name, expression, metric.attr, found))
        value = found if isinstance(found, int | float) else str(found)
        if isinstance(value, float) and math.isnan(value):
            raise ExtractError(
                f"{name}: XPath {expression!r} gave NaN (not a number): XPath reads only texts "
                "written as 1234.5 as numbers, not the page's '1,234' or '1.2k', and a missing "
                "element as NaN; select the element itself (kpi reads its text as the page "
                "writes numbers), or `count()` it"
            )
        locale = self._lxml_locale(metric, self._lxml)
        if isinstance(value, float) and not metric.count:
            self._xpath_counts_as_shown(name, expression, value)
        if isinstance(value, float) and _XPATH_READS_TEXT.search(expression):
            _xpath_reads_as_the_page(name, metric.locale or locale)
            self._xpath_reads_as_shown(name, expression)
        return finish(name, value, metric, locale)

    def _xpath_counts_as_shown(self, name: str, expression: str, value: float) -> None:
        """ExtractError when `count(PATH)` counts nodes the page shows with nodes it does
        not show (`_counted`'s rule for `count: true`)."""
        from lxml.etree import XPathError

        match = _FUNCTION_OF.fullmatch(expression)
        inner = _whole_argument(match.group("inner")) if match else None
        if match is None or inner is None or match.group("name") != "count":
            return
        try:
            nodes = self._lxml.xpath(inner)
        except XPathError:
            return
        if isinstance(nodes, list) and len(nodes) == value:
            hidden = sum(1 for item in nodes if _lxml_item_unshown(item))
            _refuse_mixed_count(name, expression, len(nodes), hidden)

    def _xpath_reads_as_shown(self, name: str, expression: str) -> None:
        """ExtractError when `number(PATH)` or `sum(PATH)` read an element's text otherwise
        than the page shows it: XPath's string value joins every text inside, hidden text
        and separate lines too (`number(//td)` on `<td>1<span hidden>2</span></td>` is 12,
        on `<td><p>1</p><p>2</p></td>` 12)."""
        from lxml.etree import XPathError

        match = _FUNCTION_OF.fullmatch(expression)
        inner = _whole_argument(match.group("inner")) if match else None
        if match is None or inner is None or match.group("name") not in ("number", "sum"):
            return
        try:
            nodes = self._lxml.xpath(inner)
        except XPathError:
            return
        if not isinstance(nodes, list):
            return
        elements = [node for node in nodes if hasattr(node, "iter")]
        for element in elements[:1] if match.group("name") == "number" else elements:
            written = str(element.xpath("string()"))
            shown = lxml_layout_text(element)
            if _same_number(_xpath_number(written), _xpath_number(shown)):
                continue
            raise ExtractError(
                f"{name}: XPath {expression!r} reads the text of <{element.tag}> as "
                f"{_short(written)}, which the page shows as {_short(shown)} (text it does "
                "not show, or on separate lines); select the element itself, which kpi "
                "reads as the page shows it"
            )

    def _lxml_read(self, name: str, element: Any, metric: PlainMetric) -> float:
        """The number an lxml element's text shows (`finish_shown`)."""
        return finish_shown(
            name,
            lxml_layout_text(element),
            metric,
            self._lxml_locale(metric, element),
            counter=lxml_counter_target(element),
            busy=lxml_busy(element),
        )

    def _string_of_element(self, expression: str, found: str) -> Any:
        """For `string(PATH)` or `normalize-space(PATH)` whose PATH selects an element
        first, that element (as a one-item list), whose text is then laid out as a page
        shows it: XPath's string value joins every text inside, so `string(//ul)` on
        `<li>5</li><li>120</li>` is "5120", with hidden text too. Else `found` itself."""
        from lxml.etree import XPathError

        inner = _string_argument(expression)
        if inner is None:
            return found
        try:
            nodes = self._lxml.xpath(inner)
        except XPathError:
            return found
        if isinstance(nodes, list) and nodes and hasattr(nodes[0], "iter"):
            return nodes[:1]
        return found

    def metric(self, name: str, metric: PlainMetric) -> float:
        if metric.xpath:
            return self.xpath(name, metric)
        if metric.css:
            return self.css(name, metric)
        raise ExtractError(f"{name}: an html metric needs `css:` or `xpath:`")


def _first_shown(name: str, what: str, hidden: Any, shown: Any) -> float:
    """The value of a selector (`what`) whose first match, the one read, the page does not
    show, while it shows a later one (a hidden variant's copy, a template's, before the
    shown number): `hidden()`'s value where `shown()` reads the same; else ExtractError,
    since which of them is meant is the config's to say."""
    try:
        first, later = hidden(), shown()
    except ExtractError:
        first = later = None
    if first is not None and first == later:
        return float(first)
    read = "" if first is None or later is None else f" (it reads {first:g}, that one {later:g})"
    raise ExtractError(
        f"{name}: {what} matches an element the page does not show (hidden, display: none, "
        f"a template) before one it shows{read}; make it match the one to read (e.g. a more "
        "specific class, or :not([hidden]))"
    )


def _attr_of_no_element(name: str, expression: str, attr: str, found: Any) -> str:
    """The message for `attr:` on an XPath that gave no element (a text, an attribute's
    value, a number): the attribute was skipped and what it gave read instead."""
    if getattr(found, "is_attribute", False):
        what = "an attribute's value"
    elif isinstance(found, str):
        what = "a text"
    elif isinstance(found, bool):
        what = "a boolean"
    else:
        what = "a number"
    return (
        f"{name}: `attr: {attr}` reads an element's attribute, but XPath {expression!r} gives "
        f"{what}; select the element, or drop `attr:` and end the XPath with `/@{attr}`"
    )


_FUNCTION_OF = re.compile(r"\s*(?P<name>[a-z-]+)\s*\((?P<inner>.*)\)\s*", re.S)


def _string_argument(expression: str) -> str | None:
    """PATH when the whole of `expression` is `string(PATH)` or `normalize-space(PATH)`
    (not `string(a) = string(b)`); None otherwise."""
    match = _FUNCTION_OF.fullmatch(expression)
    if match is None or match.group("name") not in ("string", "normalize-space"):
        return None
    return _whole_argument(match.group("inner"))


#: how XPath 1.0's number() reads a string: optional whitespace, a minus, digits with a dot
_XPATH_NUMBER = re.compile(r"[ \t\r\n]*(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))[ \t\r\n]*")


def _xpath_number(text: str) -> float:
    """`text` as XPath's number() reads it (NaN unless it is a plain number)."""
    match = _XPATH_NUMBER.fullmatch(text)
    return float(match.group(1)) if match else math.nan


def _same_number(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _whole_argument(inner: str) -> str | None:
    """`inner` when it is one function's whole argument list (its brackets and quotes
    balance: not `a) = string(b`); None otherwise."""
    depth, quote = 0, ""
    for char in inner:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
            if depth < 0:
                return None
    return inner if depth == 0 and not quote and inner.strip() else None


#: an XPath function that reads texts as numbers in its own notation (`1.234` is 1.234):
#: sum(), and number() of anything but a boolean or a count
_XPATH_READS_TEXT = re.compile(
    r"\bsum\s*\(|\bnumber\s*\((?!\s*(?:boolean|true|false|not|count)\s*\()"
)


def _xpath_reads_as_the_page(name: str, locale: str | None) -> None:
    """ExtractError when the page's locale writes numbers otherwise than XPath reads them
    (de `1.234` is 1234; XPath's sum() and number() take it as 1.234)."""
    from kpi_collector.collect.numbers import DEFAULT_LOCALE, number_locale

    rules = number_locale(locale or DEFAULT_LOCALE)
    if "." in rules.decimals and all(c.group != "." for c in rules.conventions):
        return
    raise ExtractError(
        f"{name}: XPath's sum() and number() read texts as 1234.5, but this page is "
        f"{rules.tag}, which writes numbers otherwise ({rules.conventions[0].example}: "
        f"1{rules.conventions[0].group}234{rules.conventions[0].decimal}5); select the "
        "elements one by one, which kpi reads as the page writes them"
    )


def extract_all(
    metrics: Mapping[str, PlainMetric], evaluate: Any
) -> tuple[dict[str, float], dict[str, str]]:
    """Evaluate every metric; one bad metric does not hide the others."""
    values: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name, metric in metrics.items():
        try:
            values[name] = evaluate(name, metric)
        except ExtractError as exc:
            errors[name] = str(exc)
    return values, errors
