"""A parsed HTML element's text as a page lays it out, for metrics: no number is read across
the edge of a block (`<li>5</li><li>120</li>` is not 5120). Standard library only, so the
process that matches a costly CSS selector (`css_child`) reads text the same way cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

#: elements a browser lays out on lines of their own (HTML standard, rendering section 15.3):
#: text on either side of their edges is never one number (`<li>5</li><li>120</li>` is not
#: 5120)
_APART = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "legend",
        "li",
        "listing",
        "main",
        "menu",
        "nav",
        "ol",
        "optgroup",
        "option",
        "p",
        "pre",
        "search",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        # boxes of their own a page draws side by side, never one run of text: form
        # controls (`<button>1</button><button>2</button>` is pagination, not 12), ruby
        # annotations, and SVG text, which the drawing places piece by piece
        "button",
        "select",
        "textarea",
        "meter",
        "progress",
        "rt",
        "svg",
        "text",
        # text struck out, no longer the value (`<s>99</s>79` is an old and a new price,
        # not 9979)
        "del",
        "s",
        "strike",
    ]
)
#: the attribute a rendered page's copy gives each element its stylesheet lays out as a box
#: of its own (`browser._COMPOSED`): apart, as the elements of `_APART` are
BOX = "data-kpi-box"
#: `sup` and `sub`, set apart from the baseline: digits on either side of their edges are
#: never one number (`1,234<sup>1</sup>` is not 12341, `10<sup>6</sup>` not 106), while
#: letters touching them are shown touching (`5<sup>th</sup>` is 5th, `x<sup>2</sup>` x2)
_RAISED = frozenset(["sup", "sub"])


#: elements whose content a page does not show (a script's or stylesheet's source, a
#: template, what a browser that runs scripts leaves out, fallback content): `1,234<script>n = 5</script>` is
#: 1234 on the page, not two numbers; an element with the `hidden` attribute neither
_UNSHOWN = frozenset(
    [
        "script",
        "style",
        "template",
        "noscript",
        "rp",
        # fallback content a browser that plays or draws them does not show
        "canvas",
        "video",
        "audio",
        "iframe",
        "noembed",
        "noframes",
        "datalist",
        # an SVG drawing's tooltip and description
        "title",
        "desc",
    ]
)

#: what `layout_text` puts between lines: `parse_number` reads no number across it
PARAGRAPH = "\u2029"


def layout_text(node: Any) -> str:
    """The text of a parsed HTML `node` (selectolax) as a metric reads it: the text nodes a
    page shows (none inside `_UNSHOWN` or `hidden` elements), in document order, joined
    as written within a line (`<span>1</span><span>234</span>` is `1234` and `<b>v</b>2.1`
    `v2.1`, as a browser shows them) and by U+2029 (paragraph separator) across the edge
    of an element in `_APART` (and digits across the edge of one in `_RAISED`), across
    which `parse_number` never reads one number."""
    parts: list[str] = []
    last: _Place | None = None
    boxes: list[Any] = []  # the boxes met since the last text
    for item in node.traverse(include_text=True):
        if item.tag != "-text":
            if item.mem_id != node.mem_id and _box(item.tag, item.attributes or {}):
                boxes.append(item)
            continue
        text = item.text_content or ""
        if not text:
            continue
        place = _place(item, node)
        if place is None:
            continue
        if parts and last is not None:
            # a shown box (`<br>`, `<hr>`, an empty `<div>`) parts the texts on either side
            # of it even where it holds no text itself: `5<hr>12` is two numbers
            if place[0] == last[0] and any(_shown_box(box, node) for box in boxes):
                last = (-1, -1)
            parts.append(_junction(parts[-1], text, last, place))
        parts.append(text)
        last = place
        boxes.clear()
    return _apart_at_edges(parts)


def _shown_box(box: Any, root: Any) -> bool:
    return not _unshown(box.tag, box.attributes or {}) and _place(box, root) is not None


#: where a text is: (its line, its raised run), ids of the elements that hold them
_Place = tuple[int, int]


def _place(item: Any, root: Any) -> _Place | None:
    """The `mem_id`s of the nearest `_APART` and `_RAISED` elements holding `item`, each
    else of `root`; None when an element below `root` holding it is not shown."""
    line: int | None = None
    raised: int | None = None
    parent = item.parent
    while parent is not None and parent.mem_id != root.mem_id:
        if _unshown(parent.tag, parent.attributes):
            return None
        if line is None and _box(parent.tag, parent.attributes):
            line = int(parent.mem_id)
        if raised is None and line is None and parent.tag in _RAISED:
            raised = int(parent.mem_id)
        parent = parent.parent
    top = int(root.mem_id)
    return (top if line is None else line, top if raised is None else raised)


#: an inline style that hides an element (`style="display: none"`, `visibility: collapse`,
#: `content-visibility: hidden`, which hides what is inside)
_HIDING_STYLE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|(?:content-)?visibility\s*:\s*(?:hidden|collapse))\b",
    re.I,
)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|$)", re.S)
#: classes that hide an element from sight by convention, for screen readers only
#: (Bootstrap `sr-only`/`visually-hidden`, WordPress `screen-reader-text`, H5BP)
_SCREEN_READER_ONLY = frozenset(
    [
        "sr-only",
        "visually-hidden",
        "visually-hidden-focusable",
        "visuallyhidden",
        "screen-reader-text",
    ]
)
#: classes the CSS frameworks hide an element with at every width (Bootstrap `d-none`,
#: `invisible`, Bootstrap 3 and Tailwind `hidden`, Bulma `is-hidden`, Foundation `hide`)
_HIDING_CLASSES = frozenset(["d-none", "hidden", "invisible", "is-hidden", "is-invisible", "hide"])
#: a class that shows such an element again at some widths (Bootstrap `d-md-block`,
#: Tailwind `md:inline`): the page shows it on a wide enough screen
_SHOWN_AT_SOME_WIDTH = re.compile(
    r"d-(?:sm|md|lg|xl|xxl)-(?!none$)[a-z-]+"
    r"|(?:[a-z0-9-]+:)+(?:block|inline|inline-[a-z]+|flex|grid|table(?:-[a-z-]+)?|contents"
    r"|flow-root|list-item|visible)"
)


def _unshown(tag: Any, attributes: Any) -> bool:
    """Whether an element's content is not shown: `_UNSHOWN`, `hidden`, hidden by its
    inline style, by a screen-reader-only class or by a framework's hiding class at every
    width (`1,234<span style="display:none">5</span>` and `1,234<span class="d-none">5</span>`
    show 1,234, not 12345)."""
    if tag in _UNSHOWN or "hidden" in attributes:
        return True
    if tag == "dialog" and "open" not in attributes:  # a closed dialog is not shown
        return True
    style = attributes.get("style")
    if style and _HIDING_STYLE.search(_CSS_COMMENT.sub("", style) if "/*" in style else style):
        return True
    classes = attributes.get("class")
    return bool(classes) and _classes_hide(classes)


@lru_cache(maxsize=1024)  # a page's elements share a few class lists (a list's items)
def _classes_hide(classes: str) -> bool:
    """Whether a `class` attribute's value hides its element: a screen-reader-only class,
    or a framework's hiding class that no class shows again at some width."""
    names = classes.split()
    if not _SCREEN_READER_ONLY.isdisjoint(names):
        return True
    return not _HIDING_CLASSES.isdisjoint(names) and not any(
        _SHOWN_AT_SOME_WIDTH.fullmatch(name) for name in names
    )


#: an inline style that lays an element out as a box of its own (`display: block`, `flex`,
#: `table-cell`), not in the run of text around it; as for a rendered page (`BOX`), an
#: `inline-block` stays in the run (a counter's digits each in one)
_BOX_STYLE = re.compile(
    r"(?:^|;)\s*display\s*:\s*(?:block|flex|grid|list-item|table|flow-root)\b", re.I
)


def _box(tag: Any, attributes: Any) -> bool:
    """Whether an element is laid out apart from the text around it: an `_APART` element,
    one a rendered page's stylesheet made a box (`BOX`), or one its inline style makes one
    (`<span style="display:block">`)."""
    if tag in _APART or BOX in attributes:
        return True
    style = attributes.get("style")
    if not style:
        return False
    return _BOX_STYLE.search(_CSS_COMMENT.sub("", style) if "/*" in style else style) is not None


def unshown(node: Any) -> bool:
    """Whether a parsed HTML `node` (selectolax) is not shown: it or an ancestor is
    `_unshown` (`hidden`, `display: none`, a `<template>`, a closed `<dialog>`...)."""
    while node is not None and node.tag != "-document":
        if _unshown(node.tag, node.attributes or {}):
            return True
        node = node.parent
    return False


def count_unshown(nodes: Sequence[Any]) -> int:
    """How many of `nodes` (elements of one parsed page, selectolax) are not shown, as
    `unshown` judges each, walking up from each only as far as an ancestor an earlier walk
    judged: a list's 30 matches share their ancestors, and 30 walks to the root cost 10
    times the CSS match itself."""
    judged: dict[int, bool] = {}  # mem_id -> whether it or an ancestor is not shown
    hidden = 0
    for node in nodes:
        chain: list[int] = []
        verdict = False
        while node is not None:
            mem_id = node.mem_id
            known = judged.get(mem_id)
            if known is not None:
                verdict = known
                break
            tag = node.tag
            if tag == "-document":
                break
            chain.append(mem_id)
            if _unshown(tag, node.attributes or {}):
                verdict = True
                break
            node = node.parent
        for mem_id in chain:
            judged[mem_id] = verdict
        hidden += verdict
    return hidden


def lxml_unshown(element: Any) -> bool:
    """`unshown` for an lxml element."""
    return any(
        isinstance(e.tag, str) and _unshown(e.tag, e.attrib)
        for e in [element, *element.iterancestors()]
    )


def lxml_layout_text(element: Any) -> str:
    """`layout_text` for an lxml element (the XPath extractor); comments are no text."""
    parts: list[tuple[str, _Place]] = []
    line = [0]  # a new line at each edge of an `_APART` element, start and end

    def walk(current: Any, raised: int) -> None:
        if isinstance(current.tag, str):  # an element, not a comment
            _add(parts, current.text, (line[0], raised))
        for child in current:
            tag = child.tag if isinstance(child.tag, str) else None
            if tag is not None and not _unshown(tag, child.attrib):
                if _box(tag, child.attrib):
                    line[0] += 1
                    walk(child, raised)
                    line[0] += 1
                else:
                    walk(child, id(child) if tag in _RAISED else raised)
            _add(parts, child.tail, (line[0], raised))

    walk(element, 0)
    return _apart_at_edges([text for text, _ in parts])


def _add(parts: list[tuple[str, _Place]], text: str | None, place: _Place) -> None:
    if not text:
        return
    if parts:
        parts.append((_junction(parts[-1][0], text, parts[-1][1], place), place))
    parts.append((text, place))


def _apart_at_edges(parts: list[str]) -> str:
    """`parts` (texts, with the junction between each two: `[text, junction, text, ...]`)
    joined, where a space between digits at the edge of an element (`<span>12</span>
    <span>345</span>`, `12 <b>345</b>`) is a line break: two numbers in two elements, never
    one grouped by a space as `12 345` within one text is."""
    texts, junctions = parts[0::2], ["", *parts[1::2]]
    for index in range(1, len(texts)):
        head = texts[index]
        body = head.lstrip()
        if not body[:1].isdecimal() or junctions[index]:
            continue
        before = index - 1
        while before > 0 and texts[before].isspace() and not junctions[before]:
            before -= 1
        tail = texts[before].rstrip()
        if not tail[-1:].isdecimal():
            continue
        if before == index - 1 and tail == texts[before] and body == head:
            continue  # the digits touch: one run of digits as shown (`<b>1</b>234`)
        texts[before] = tail
        for between in range(before + 1, index):
            texts[between] = ""
        texts[index] = PARAGRAPH + body
    joined = [texts[0]] if texts else []
    for junction, text in zip(junctions[1:], texts[1:], strict=True):
        joined += [junction, text]
    return "".join(joined)


def _junction(before: str, after: str, was: _Place, place: _Place) -> str:
    """What goes between two texts: a line break across a line's edge; nothing within a
    line, where a page shows texts as written (a space only where the page has one); at
    the edge of a raised run, nothing where letters touch it (`5<sup>th</sup>`), else a
    line break (`1,234<sup>1</sup>` is two numbers)."""
    if was[0] != place[0]:
        return PARAGRAPH
    if was[1] == place[1] or before[-1:].isalpha() or after[:1].isalpha():
        return ""
    return PARAGRAPH


def nearest_lang(node: Any) -> str | None:
    """The `lang` attribute of a parsed HTML `node` (selectolax) or of its nearest ancestor
    that has one, as written; None when none has."""
    while node is not None:
        attributes = getattr(node, "attributes", None) or {}
        if "lang" in attributes:
            return str(attributes["lang"])
        node = node.parent
    return None


def pragma_language(metas: Any) -> str | None:
    """The page's pragma-set default language (HTML standard, "Content language state"):
    the language of its text where no element up to the root has a `lang` attribute. The
    last of its `<meta http-equiv="content-language" content="de">` elements (the keyword
    ASCII case-insensitive) whose `content` has a first word and no comma names it; None
    when none does. `metas`: the page's meta elements (selectolax nodes or lxml elements),
    in document order."""
    found = None
    for meta in metas:
        attributes = getattr(meta, "attributes", None)
        if attributes is None:
            attributes = meta.attrib
        equiv = attributes.get("http-equiv")
        content = attributes.get("content")
        if equiv is None or not equiv.isascii() or equiv.strip().lower() != "content-language":
            continue
        if not content or "," in content:
            continue
        words = content.strip(" \t\n\f\r").split()
        if words:
            found = words[0]
    return found


def header_language(value: str | None) -> str | None:
    """The language an HTTP `Content-Language` header `value` gives the page (HTML standard,
    "The lang and xml:lang attributes": after `lang` attributes and the pragma-set default
    language, the language from a higher-level protocol is the last fallback, and none when
    it reports several): its one language tag; None when it is empty or lists several."""
    if not value or "," in value:
        return None
    words = value.strip(" \t\n\f\r").split()
    return words[0] if len(words) == 1 else None


#: data attributes holding the number a counter script animates an element's text up to,
#: from 0 or from a start it shows first (Elementor `data-to-value`, PureCounter
#: `data-purecounter-end`, jQuery countTo `data-to`, many themes `data-target`/`data-count`)
_COUNTER_ATTRIBUTE = re.compile(
    r"data-(?:[a-z0-9]+-)*(?:to|to-value|target|end|end-value|endval|count|count-to|countup"
    r"|counter|number-value|stop)"
)
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def counter_target(node: Any) -> tuple[str, str] | None:
    """The first counter attribute (`_COUNTER_ATTRIBUTE`, its value a plain number such as
    `1234`) on a parsed HTML `node` (selectolax) or an element inside it that holds text, in
    document order, as (name, value); None when there is none."""
    for element in node.traverse():
        found = _counter(element.attributes)
        if found is not None and element.text(deep=True).strip():
            return found
    return None


def lxml_counter_target(element: Any) -> tuple[str, str] | None:
    """`counter_target` for an lxml element."""
    for inner in element.iter():
        if isinstance(inner.tag, str):
            found = _counter(inner.attrib)
            if found is not None and "".join(inner.itertext()).strip():
                return found
    return None


def _counter(attributes: Any) -> tuple[str, str] | None:
    """A counter attribute among `attributes`, one that holds text (a carousel's
    `data-slide-to="2"` indicator holds none, and names no count)."""
    for name, value in (attributes or {}).items():
        lowered = name.lower()
        if "slide" in lowered:
            continue
        if _COUNTER_ATTRIBUTE.fullmatch(lowered) and _PLAIN.fullmatch((value or "").strip()):
            return name, value.strip()
    return None


def busy(node: Any) -> bool:
    """Whether a parsed HTML `node` (selectolax) or an ancestor says its content is still
    being filled (`aria-busy="true"`, WAI-ARIA)."""
    while node is not None:
        attributes = getattr(node, "attributes", None) or {}
        if (attributes.get("aria-busy") or "").strip().lower() == "true":
            return True
        node = node.parent
    return False


def lxml_busy(element: Any) -> bool:
    """`busy` for an lxml element."""
    return any(
        (str(e.get("aria-busy") or "")).strip().lower() == "true"
        for e in [element, *element.iterancestors()]
        if isinstance(e.tag, str)
    )
