"""Finding the numbers on a page and the metric that reads each (what `kpi probe` shows).

For HTML: every number in the visible text, its value, the text a person reads next to it
(the label), a short CSS selector that selects exactly the element holding it (an id, then
stable attributes and classes, then the shortest path from the nearest element that has one;
never a class name a build tool generated) and the `metrics:` entry that reads it. For JSON:
every numeric leaf and its JMESPath. Every suggestion is read back through the real
extractor (`HtmlDocument.metric`, `from_json`) and listed only when it gives the same value.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kpi_collector.collect.extract import HtmlDocument, Metric, from_json, node_locale
from kpi_collector.collect.layout import layout_text
from kpi_collector.collect.numbers import number_spans, parse_number
from kpi_collector.errors import ExtractError
from kpi_collector.secrets import redact

#: elements whose text nobody sees
_INVISIBLE = frozenset(
    {"script", "style", "noscript", "template", "head", "title", "meta", "svg", "math", "select"}
)
#: attributes people put on elements to name them, best first
_NAMING_ATTRIBUTES = (
    "data-testid",
    "data-test",
    "data-test-id",
    "data-qa",
    "data-cy",
    "data-kpi",
    "data-metric",
    "data-stat",
    "data-field",
    "data-name",
    "data-key",
    "itemprop",
    "name",
    "aria-label",
)
_IDENT = re.compile(r"-?[A-Za-z_][A-Za-z0-9_-]*\Z")
#: ids and classes made by frameworks and CSS-in-JS tools: they change with every build
_GENERATED = re.compile(
    r"^(?:css|sc|jsx|svelte|emotion|ember|ext-gen|yui|mui|makeStyles|jss|tw|chakra|radix"
    r"|headlessui|react-select|r|ng|v)-|^:|^_[A-Za-z0-9]{4,}$|__[A-Za-z0-9_-]{5,}$"
)
_HASHY = re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{5,}")
_WORDS = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_SPACE = re.compile(r"\s+")
_SCALE_AFTER = re.compile(
    r" (?:[kKMB]|bn|Mio|Mrd|Tsd|thousands?|millions?|billions?|trillions?|lakhs?|crores?)\.?"
    r"(?=\W|$)"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One number found: its `value`, how the page writes it (`text`), the `label` a person
    reads next to it, the `name` suggested for the metric, and the `metric` (the mapping
    for `metrics:`, e.g. {"css": "#downloads"}), checked through the real extractor.
    `selector` is the CSS selector (HTML) and `jmespath` the expression (JSON)."""

    value: float
    text: str
    label: str
    name: str
    metric: dict[str, Any] = field(default_factory=dict)
    selector: str | None = None
    jmespath: str | None = None

    @property
    def yaml_line(self) -> str:
        """The ready `metrics:` line, e.g. `downloads: {css: '#downloads'}`."""
        import yaml

        return yaml.safe_dump(
            {self.name: self.metric}, default_flow_style=True, width=10_000, sort_keys=False
        ).strip()[1:-1]

    def as_dict(self) -> dict[str, Any]:
        """The finding as `kpi probe --format json` prints it."""
        return {
            "name": self.name,
            "value": self.value,
            "text": self.text,
            "label": self.label,
            "selector": self.selector,
            "jmespath": self.jmespath,
            "metric": self.metric,
            "yaml": self.yaml_line,
        }


# HTML ---------------------------------------------------------------------------------------


def probe_html(
    text: str,
    *,
    locale: str | None = None,
    language: str | None = None,
    grep: str | None = None,
    pin: bool = True,
) -> list[Finding]:
    """Every number in the visible text of the HTML page `text`, in document order, each
    with a metric checked through `HtmlDocument.metric`. `locale` as the source's
    `locale:`; `language`: the page's `Content-Language` header (as a run reads it); `grep`
    keeps the findings whose label or text contains it (any case); `pin` (without a
    `locale`): a metric whose number reads by the page's `lang` names that locale, so it
    reads the same in a config whose `locale:` says another (`_pinned`)."""
    document = HtmlDocument(text, locale=locale, language=language)
    page = _Page(document.tree, document.default_lang)
    names: Counter[str] = Counter()
    out: list[Finding] = []
    wanted = grep.casefold() if grep else None
    done: set[int] = set()
    for holder in page.holders():
        if _signed_apart(holder):
            continue  # no metric reads the sign a person reads with it: listed, it would lie
        node = _whole(holder)
        if node.mem_id in done:
            continue
        done.add(node.mem_id)
        if node is holder:
            own = _collapse(node.text(deep=True, separator=" "))
        else:  # the number and what is glued to it, laid out as a person (and a metric) reads
            own = _collapse(layout_text(node))
        if not own or len(own) > 400:
            continue
        spans = number_spans(own)
        if not spans:
            continue
        label = page.label(node, own, spans)
        if wanted is not None and wanted not in f"{label} {own}".casefold():
            continue
        selector = page.selector(node)
        if selector is None:
            continue
        node_locale = locale or page.lang(node)
        for index in range(len(spans)):
            found = _reading(document, selector, own, spans, index, node_locale)
            if found is None:
                continue
            metric, value = found
            if pin and locale is None:  # read by the page's `lang`: pinned, for any config
                lo, hi = _extent(own, spans, index)
                pinned = _pinned(
                    lambda m: document.metric("probe", Metric(**m)),
                    metric,
                    value,
                    node_locale or "en",
                    own[lo:hi],
                )
                if pinned is None:
                    continue
                metric = pinned
            said = label if len(spans) == 1 else _near(own, spans, index) or label
            said = redact(said)  # a page may show a secret of the config (a login name)
            lo, hi = _extent(own, spans, index)
            out.append(
                Finding(
                    value=value,
                    text=redact(own[lo:hi]),
                    label=said,
                    name=_unique_name(_slug(said), names),
                    metric=metric,
                    selector=selector,
                )
            )
    return out


def _reading(
    document: HtmlDocument,
    selector: str,
    own: str,
    spans: list[tuple[int, int]],
    index: int,
    locale: str | None,
) -> tuple[dict[str, Any], float] | None:
    """The metric that reads number `index` of the element's text, and the value, when the
    real extractor gives the value the number reads as on its own; else None."""
    expected = _value_of(own, spans, index, locale)
    if expected is None:
        return None
    for metric in _metrics_for(selector, own, spans, index):
        if not _shareable(str(metric.get("regex", ""))):
            continue  # anchored on a word that is a secret of the config
        try:
            got = document.metric("probe", Metric(**metric))
        except (ExtractError, ValueError):
            continue
        if got == expected:
            return metric, got
    return None


#: locales that write numbers in contrasting ways (`.` or `,` for decimals, ` ` or `'` for
#: groups): a metric that reads another value under one of them reads by its locale
_CONTRASTING = ("en", "de", "fr", "de-CH")
#: a separator between digits: where the locale can change what a number reads as
_SEPARATED = re.compile(r"\d[.,'\s\u066b\u066c]\d")


def _pinned(
    read: Callable[[dict[str, Any]], float],
    metric: dict[str, Any],
    value: float,
    locale: str,
    text: str,
) -> dict[str, Any] | None:
    """`metric` (which `read` reads as `value` where it was found, under `locale`), with
    `locale: locale` when its number (`text`, as written) reads another value under another
    locale: the config it goes into may say one (`locale: de` at its top level reads an
    English page's "12,374" as 12.374). None when the metric with its locale does not
    read `value` (never listed)."""
    if not _SEPARATED.search(text) or not _reads_by_locale(text, locale):
        return metric  # digits alone, or separators every locale reads alike
    named = {**metric, "locale": locale}
    try:
        return named if read(named) == value else None
    except (ExtractError, ValueError):
        return None


def _reads_by_locale(text: str, locale: str) -> bool:
    """Whether the number `text` reads another value (or none) under one of the
    `_CONTRASTING` locales than under `locale`."""
    try:
        own = parse_number(text, locale)
        return any(parse_number(text, other) != own for other in _CONTRASTING)
    except ValueError:
        return True


def _extent(own: str, spans: list[tuple[int, int]], index: int) -> tuple[int, int]:
    """The number at `spans[index]` with what is glued to it (sign, currency, %, a scale
    like "1.2k" or "3,4 Mio.")."""
    start, end = spans[index]
    left = spans[index - 1][1] if index else 0
    right = spans[index + 1][0] if index + 1 < len(spans) else len(own)
    lo = start
    while lo > left and not own[lo - 1].isspace():
        lo -= 1
    hi = end
    while hi < right and not own[hi].isspace():
        hi += 1
    if hi < right and own[hi] == " ":
        after = _SCALE_AFTER.match(own, hi, right)
        if after is not None:
            hi = after.end()
    return lo, hi


def _value_of(
    own: str, spans: list[tuple[int, int]], index: int, locale: str | None
) -> float | None:
    """The value of the number at `spans[index]` with what is glued to it."""
    start, end = spans[index]
    lo, hi = _extent(own, spans, index)
    pieces = [own[lo:hi], own[start:end]]
    if len(spans) == 1:
        pieces.insert(0, own)  # what a person reads: the whole text, sign and scale words
    for piece in pieces:
        try:
            return parse_number(
                piece.strip("()[]{}:;,|/") if piece.count("(") != 1 else piece, locale
            )
        except ValueError:
            continue
    return None


def _metrics_for(
    selector: str, own: str, spans: list[tuple[int, int]], index: int
) -> Iterator[dict[str, Any]]:
    if len(spans) == 1:
        yield {"css": selector}
    start, end = spans[index]
    suffix = ""
    glued = re.match(
        r"(\s?)(%|[kKMB]\b|bn\b|Mio\.?|Mrd\.?|(?:thousand|million|billion|lakh|crore)s?\b)",
        own[end:],
    )
    if glued is not None:
        suffix = ("\\s" if glued.group(1) else "") + _regex_literal(glued.group(2))
    token = own[start:end]
    marks = ".,'" if "'" in token else ".,"
    digits = rf"\d[\d{marks}\s]*\d" if any(c.isspace() for c in token) else rf"\d[\d{marks}]*"
    lo, hi = _extent(own, spans, index)
    # a sign, currency or parenthesis written with it: kept, optional (the sign may change)
    sign = "".join(f"{_regex_literal(c)}?" for c in own[lo:start])
    close = r"\)?" if ")" in own[end:hi] else ""
    number = f"({sign}{digits}{suffix}{close})"
    if index == 0:
        yield {"css": selector, "regex": number}
    before = _WORDS.findall(own[:start])
    if before:
        anchor = _regex_literal(before[-1])
        yield {"css": selector, "regex": f"{anchor}\\D*?{number}"}
        if len(before) > 1:
            yield {
                "css": selector,
                "regex": f"{_regex_literal(before[-2])}\\W+{anchor}\\D*?{number}",
            }
    after = _WORDS.findall(own[end:])
    if after:
        yield {"css": selector, "regex": f"{number}\\D*?{_regex_literal(after[0])}"}


def _regex_literal(text: str) -> str:
    """`text` as a pattern that matches it (RE2 takes no escape before a non-ASCII letter)."""
    return "".join(f"\\{c}" if c in "\\.^$|?*+()[]{}%" else c for c in text)


class _Page:
    """The parsed page with what selector search needs: counts of ids, classes and naming
    attributes (so most uniqueness checks are lookups, not queries)."""

    def __init__(self, tree: Any, default_lang: str | None) -> None:
        self.tree = tree
        self.ids: Counter[str] = Counter()
        self.classes: Counter[str] = Counter()
        self.tag_classes: Counter[tuple[str, str]] = Counter()
        self.attributes: Counter[tuple[str, str]] = Counter()
        self.tags: Counter[str] = Counter()
        #: (element, selector) -> (matches under it, the first): pages repeat their shapes
        self._queried: dict[tuple[int, str], tuple[int, int]] = {}
        self._steps: dict[int, str] = {}
        #: the page's `<meta content-language>`, else its Content-Language header's
        self.default_lang = default_lang
        root = tree.root
        if root is None:
            return
        for node in root.traverse():
            attrs = node.attributes
            self.tags[node.tag] += 1
            if attrs.get("id"):
                self.ids[attrs["id"]] += 1
            for name in _classes(attrs):
                self.classes[name] += 1
                self.tag_classes[(node.tag, name)] += 1
            for key in _NAMING_ATTRIBUTES:
                value = attrs.get(key)
                if value:
                    self.attributes[(key, value)] += 1

    def holders(self) -> Iterator[Any]:
        """Visible elements with a digit in their own text, each once, in document order."""
        body = self.tree.body
        if body is None:
            return
        hidden: set[int] = set()
        seen: set[int] = set()
        for node in body.traverse(include_text=True):
            parent = node.parent
            if node.tag != "-text":
                if (
                    node.tag in _INVISIBLE
                    or (parent is not None and parent.mem_id in hidden)
                    or _hidden(node.attributes)
                ):
                    hidden.add(node.mem_id)
                continue
            if parent is None or parent.mem_id in hidden or parent.mem_id in seen:
                continue
            if any(c.isdigit() for c in node.text_content or ""):
                seen.add(parent.mem_id)
                yield parent

    def lang(self, node: Any) -> str | None:
        return node_locale(node, self.default_lang)

    # selectors

    def own_parts(self, node: Any) -> Iterator[tuple[str, int]]:
        """Selectors for `node` alone, best first, with how many elements each matches on
        the page (from the counts); none that holds a secret of the config."""
        for part, count in self._own_parts(node):
            if _shareable(part):
                yield part, count

    def _own_parts(self, node: Any) -> Iterator[tuple[str, int]]:
        attrs = node.attributes
        tag = node.tag
        ident = attrs.get("id")
        if ident and _stable(ident):
            yield _id_selector(ident), self.ids[ident.lower()]
        for key in _NAMING_ATTRIBUTES:
            value = attrs.get(key)
            if value and _stable(value) and len(value) <= 60 and '"' not in value:
                yield f'[{key}="{value}"]', self.attributes[(key, value)]
        stable = [c for c in _classes(attrs) if _stable(c) and _IDENT.match(c)]
        for name in stable:
            yield f".{name}", self.classes[name.lower()]
        for name in stable:
            yield f"{tag}.{name}", self.tag_classes[(tag, name.lower())]
        for i, first in enumerate(stable):
            for second in stable[i + 1 :]:
                yield f".{first}.{second}", -1  # unknown: query it

    def unique(self, selector: str, node: Any) -> bool:
        try:
            found = self.tree.css(selector)
        except Exception:  # a selector lexbor does not take
            return False
        return len(found) == 1 and found[0].mem_id == node.mem_id

    def selector(self, node: Any) -> str | None:
        """A short CSS selector that selects exactly `node`, or None."""
        for part, count in self.own_parts(node):
            # counted once on the page, and the element has it: it is the one
            if count == 1 or (count == -1 and self.unique(part, node)):
                return part
        # the nearest ancestor with a selector of its own, then the shortest way down
        path = [node]
        ancestor = node.parent
        depth = 0
        while ancestor is not None and ancestor.tag not in ("html", "-undef") and depth < 8:
            anchors = [p for p, c in self.own_parts(ancestor) if c == 1]
            if ancestor.tag == "body":
                anchors.append("body")
            for anchor in anchors[:2]:
                found = self._down(anchor, ancestor, path)
                if found is not None:
                    return found
            path.insert(0, ancestor)
            ancestor = ancestor.parent
            depth += 1
        chain = " > ".join(self.step(n) for n in self._from_root(node))
        return chain if chain and self.unique(chain, node) else None

    def _down(self, anchor: str, top: Any, path: list[Any]) -> str | None:
        """`anchor` (the selector of `top`, which it alone matches) then the fewest steps of
        `path` (the elements below `top`, ending at the target) that select the target
        alone. Looked up in `top` only: every match of `anchor X` is a match of X in `top`,
        so one match there is one match on the page."""
        target = path[-1]
        last_options = [(p, c) for p, c in self.own_parts(target) if not p.startswith("#")]
        last_options.append((target.tag, self.tags[target.tag]))
        whole_page = top.tag in ("body", "html")
        for option, count in last_options:
            if whole_page and count != -1:
                continue  # counted on the page: more than one, or it would have been chosen
            if self._only(top, option, target):
                return f"{anchor} {option}"
        steps = [self.step(n) for n in path]
        for take in range(2, len(steps) + 1):
            below = " ".join(steps[-take:])
            if self._only(top, below, target):
                return f"{anchor} {below}"
        below = " > ".join(steps)
        return f"{anchor} > {below}" if self._only(top, f":scope > {below}", target) else None

    def _only(self, top: Any, selector: str, target: Any) -> bool:
        key = (top.mem_id, selector)
        found = self._queried.get(key)
        if found is None:
            try:
                nodes = top.css(selector)
            except Exception:  # a selector lexbor does not take
                nodes = []
            found = self._queried[key] = (len(nodes), nodes[0].mem_id if nodes else 0)
        return found == (1, target.mem_id)

    def step(self, node: Any) -> str:
        """`node` among its siblings: its tag, with `:nth-of-type(k)` when siblings share
        it (worked out once per parent)."""
        known = self._steps.get(node.mem_id)
        if known is not None:
            return known
        parent = node.parent
        if parent is None:
            return str(node.tag)
        children = [c for c in parent.iter() if c.tag not in ("-text", "-comment")]
        kinds = Counter(c.tag for c in children)
        seen: Counter[str] = Counter()
        for child in children:
            seen[child.tag] += 1
            many = kinds[child.tag] > 1
            self._steps[child.mem_id] = (
                f"{child.tag}:nth-of-type({seen[child.tag]})" if many else str(child.tag)
            )
        return self._steps.get(node.mem_id, str(node.tag))

    def _from_root(self, node: Any) -> list[Any]:
        chain: list[Any] = []
        while node is not None and node.tag not in ("html", "-undef", "body"):
            chain.insert(0, node)
            node = node.parent
        return chain

    # labels

    def label(self, node: Any, own: str, spans: list[tuple[int, int]]) -> str:
        """The words a person reads with the number: its own words, else a table's column
        and row headers, else the nearest words before it."""
        words = _words_outside(own, [_extent(own, spans, i) for i in range(len(spans))])
        if words:
            return _cut(words)
        cell = _ancestor(node, ("td", "th"), 2)
        if cell is not None:
            found = _table_label(cell)
            if found:
                return _cut(found)
        if node.tag == "dd":
            term = _previous_element(node, "dt")
            if term is not None:
                return _cut(_collapse(term.text(deep=True, separator=" ")))
        current = node
        for _ in range(4):
            sibling = current.prev
            while sibling is not None:
                if sibling.tag != "-comment":
                    text = _collapse(sibling.text(deep=True, separator=" "))
                    text = _words_outside(text, number_spans(text)) if text else ""
                    if text:
                        return _cut(text)
                sibling = sibling.prev
            current = current.parent
            if current is None or current.tag == "body":
                break
            text = _collapse(current.text(deep=True, separator=" "))
            words = _words_outside(text, number_spans(text))
            if words:
                return _cut(words)
        return ""


#: a scale right after a number, glued to it: in the element after the number's own
#: (`<b>1.2</b><small>M</small>`), it is still the number's
_GLUED_SCALE = re.compile(
    r"\s?(?:[kKMB]|bn|Mio|Mrd|Tsd|thousands?|millions?|billions?|trillions?|lakhs?|crores?)"
    r"\.?(?![^\W\d_])"
)


def _whole(node: Any) -> Any:
    """The element that holds the whole number `node` holds: its parent when the number's
    scale is in the next element, as a person reads them together; else `node`."""
    parent = node.parent
    if parent is None or parent.tag in ("body", "html"):
        return node
    own = _collapse(node.text(deep=True, separator=" "))
    if not own:
        return node
    after = _next_text(node)
    if own[-1].isdigit() and after is not None and _GLUED_SCALE.match(after):
        return parent
    return node


#: inline elements: a person reads their text run together with the text beside them
_INLINE = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "data",
        "em",
        "font",
        "i",
        "mark",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "time",
        "u",
        "var",
    }
)
#: an element that holds only a minus or an opening parenthesis (a currency symbol with it)
_ONLY_SIGN = re.compile(r"\(?[-\u2212\u2012\u2013\u2014\ufe63\uff0d]?\(?\Z")


def _signed_apart(node: Any) -> bool:
    """Whether the number `node` starts with has its minus (or opening accounting
    parenthesis) alone in the inline element right before it (`<i>−</i><b>5</b>`): shown
    as −5, read from `node` as 5."""
    own = _collapse(node.text(deep=True, separator=" "))
    sibling = node.prev
    if not own or not own[0].isdigit() or node.tag not in _INLINE or sibling is None:
        return False
    if sibling.tag not in _INLINE:
        return False
    shown = "".join(
        c for c in _collapse(sibling.text(deep=True)) if unicodedata.category(c) != "Sc"
    ).replace(" ", "")
    return bool(shown) and _ONLY_SIGN.match(shown) is not None


def _next_text(node: Any) -> str | None:
    """The text of the sibling right after `node`, comments passed over and white space
    between as one space."""
    sibling = node.next
    gap = ""
    while sibling is not None:
        if sibling.tag == "-text" and not (sibling.text_content or "").strip():
            gap = " "
        elif sibling.tag != "-comment":
            break
        sibling = sibling.next
    if sibling is None:
        return None
    text = sibling.text_content if sibling.tag == "-text" else sibling.text(deep=True)
    return gap + text if text else None


def _shareable(text: str) -> bool:
    """Whether `text` (a selector, a regex) holds no known secret: it is printed as is."""
    return redact(text) == text


def _table_label(cell: Any) -> str:
    row = cell.parent
    if row is None or row.tag != "tr":
        return ""
    cells = [c for c in row.iter() if c.tag in ("td", "th")]
    index = next((i for i, c in enumerate(cells) if c.mem_id == cell.mem_id), 0)
    parts = []
    first = cells[0] if cells else None
    if first is not None and first.mem_id != cell.mem_id:
        text = _collapse(first.text(deep=True, separator=" "))
        if _WORDS.search(text):
            parts.append(text)
    table = _ancestor(row, ("table",), 4)
    if table is not None:
        for header_row in table.css("tr"):
            headers = [c for c in header_row.iter() if c.tag in ("td", "th")]
            if headers and all(h.tag == "th" for h in headers):
                if index < len(headers):
                    text = _collapse(headers[index].text(deep=True, separator=" "))
                    if text:
                        parts.append(text)
                break
    return " · ".join(parts)


def _ancestor(node: Any, tags: tuple[str, ...], up: int) -> Any:
    current = node
    for _ in range(up + 1):
        if current is None:
            return None
        if current.tag in tags:
            return current
        current = current.parent
    return None


def _previous_element(node: Any, tag: str) -> Any:
    sibling = node.prev
    while sibling is not None:
        if sibling.tag == tag:
            return sibling
        sibling = sibling.prev
    return None


def _classes(attrs: Any) -> list[str]:
    value = attrs.get("class")
    return value.split() if value else []


def _hidden(attrs: Any) -> bool:
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    style = (attrs.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


def _stable(name: str) -> bool:
    """False for names a build tool or framework generated (`css-1x2y3z`, `sc-bdVaJa`,
    `Card_value__3xYz1`, `ember123`, `:r1:`): they change with the next deploy."""
    if _GENERATED.search(name):
        return False
    if re.search(r"\d{4,}", name):
        return False
    return not any(_HASHY.fullmatch(part) for part in re.split(r"[-_]", name) if part)


def _id_selector(ident: str) -> str:
    if _IDENT.match(ident) and not ident[0].isdigit():
        return f"#{ident}"
    return f'[id="{ident}"]'


def _collapse(text: str | None) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _words_outside(text: str, spans: list[tuple[int, int]]) -> str:
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    return " ".join(w for w in _WORDS.findall(" ".join(pieces)))


def _near(text: str, spans: list[tuple[int, int]], index: int) -> str:
    """The words right before the number `index` (else right after), up to the next one."""
    start, end = _extent(text, spans, index)
    left = _extent(text, spans, index - 1)[1] if index else 0
    right = _extent(text, spans, index + 1)[0] if index + 1 < len(spans) else len(text)
    before = _WORDS.findall(text[left:start])
    after = _WORDS.findall(text[end:right])
    return " ".join(before[-3:]) or " ".join(after[:3])


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slug(label: str) -> str:
    words = [w.lower() for w in _WORDS.findall(label)][:4]
    slug = re.sub(r"[^a-z0-9_]+", "_", "_".join(words)).strip("_")[:32].strip("_")
    return slug or "value"


def _unique_name(name: str, seen: Counter[str]) -> str:
    seen[name] += 1
    return name if seen[name] == 1 else f"{name}_{seen[name]}"


# JSON ---------------------------------------------------------------------------------------

_JMES_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMERIC_STRING = re.compile(r"\s*[-+]?[\d.,' ]*\d[\d.,' ]*%?\s*\Z")


def probe_json(
    document: Any, *, locale: str | None = None, grep: str | None = None, pin: bool = True
) -> list[Finding]:
    """Every numeric leaf of a parsed JSON `document` (numbers, and strings that are one
    number, such as "12,374" or "$1.2k": `_amount`), in document order, with the JMESPath
    that reads it, checked through `from_json` under `locale` (the source's `locale:`, as
    its run reads the answer: a string that reads two ways there is left out). `grep`
    keeps the leaves whose path contains it (any case); `pin` (without a `locale`): a
    string whose number reads by the locale names it (`locale: en`, `_pinned`)."""
    wanted = grep.casefold() if grep else None
    names: Counter[str] = Counter()
    out: list[Finding] = []
    for path, keys, leaf in _leaves(document, "", []):
        if isinstance(leaf, bool):
            continue
        if not isinstance(leaf, int | float) and not (isinstance(leaf, str) and _amount(leaf)):
            continue
        if wanted is not None and wanted not in path.casefold():
            continue
        try:
            value = from_json("probe", document, Metric(jmespath=path), locale)
        except (ExtractError, ValueError):
            continue
        expected = float(leaf) if isinstance(leaf, int | float) else _parsed(leaf, locale)
        if expected is None or value != expected:
            continue
        metric: dict[str, Any] = {"jmespath": path}
        if pin and locale is None and isinstance(leaf, str):  # a config's `locale:` may
            pinned = _pinned(
                lambda m: from_json("probe", document, Metric(**m)), metric, value, "en", leaf
            )
            if pinned is None:
                continue
            metric = pinned
        label = " ".join(k for k in keys if not k.isdigit())
        name = _unique_name(_slug(" ".join(keys[-2:]).replace("_", " ")), names)
        out.append(
            Finding(
                value=value,
                text=leaf if isinstance(leaf, str) else repr(leaf),
                label=label,
                name=name,
                metric=metric,
                jmespath=path,
            )
        )
    return out


#: what may stand around the one number of an amount: signs, parentheses, percent signs
_AROUND = re.compile(r"[\s()%+\-\u2212\u2012\u2013\u2014]+")
#: a scale after the number, or a currency code (`EUR 12.50`, `12.50 USD`)
_AMOUNT_WORD = re.compile(r"(?:[kKMB]|bn|mn|thousands?|millions?|billions?|trillions?|[A-Z]{3})\.?")


def _amount(text: str) -> bool:
    """Whether a JSON string is one number written as an amount: "12,374", "$1,234.56",
    "(1,234)", "1.2k", "EUR 12.50", "12.5%"; not "Q1", "abc123", "2.0.1" or "2024-01-05"."""
    if _NUMERIC_STRING.match(text):
        return True
    spans = number_spans(text)
    if len(spans) != 1 or len(text) > 40:
        return False
    start, end = spans[0]
    before, after = text[:start], text[end:]
    if before and (before[-1].isalpha() or before[-1].isdigit()):
        return False  # glued to a word: a name or a code (Q1, abc123)
    # what is left once signs, parentheses, percent and currency symbols are gone: at most
    # one scale or currency code
    rest = "".join(c for c in f"{before} {after}" if unicodedata.category(c) != "Sc")
    words = _AROUND.sub(" ", rest).split()
    return len(words) <= 1 and all(_AMOUNT_WORD.fullmatch(word) for word in words)


def _parsed(text: str, locale: str | None = None) -> float | None:
    try:
        return parse_number(text, locale)
    except ValueError:
        return None


def _leaves(value: Any, path: str, keys: list[str]) -> Iterator[tuple[str, list[str], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            part = name if _JMES_IDENT.match(name) else _json_quoted(name)
            yield from _leaves(item, f"{path}.{part}" if path else part, [*keys, name])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]" if path else f"[{i}]", [*keys, str(i)])
    elif path:
        yield path, keys, value
    else:
        yield "@", keys, value


def _json_quoted(name: str) -> str:
    import json

    return json.dumps(name, ensure_ascii=False)
