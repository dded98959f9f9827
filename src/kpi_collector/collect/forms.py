"""Filling an HTML form the way a browser submits it: which form, which submit button, the
entry list the form sends, where and how (the HTML standard, "Form submission": constructing
the entry list, the form owner, disabledness, the default button, formaction/formmethod).

lxml.html parses the page (leniently, like the old browsers login pages were written for: a
form that a table splits keeps its controls) and gives the controls' types and states; the
rules of the standard that lxml's `form_values()` does not follow (the submit button, `form=`
owners, disabled fieldsets, disabled options, empty text inputs, image buttons, radio groups,
`<template>` content, the textarea's first line break) are here, each input type's value
sanitization in `form_values`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from kpi_collector.collect.form_values import sanitized

if TYPE_CHECKING:
    from lxml.html import HtmlElement

_CONTROLS = ("input", "button", "select", "textarea")
#: input types that are submit buttons (HTML standard: "submit button")
_SUBMIT_INPUTS = ("submit", "image")
#: input types that never add an entry of their own
_NEVER_SENT = ("reset", "button")
_SPACE = re.compile(r"[ \t\n\f\r]+")
#: what an `<input type=submit>` without a value says and sends (Chromium's, and the HTML
#: standard's suggested default label)
_SUBMIT_LABEL = "Submit"


class FormProblem(ValueError):
    """The page has no form that can be filled as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class FilledForm:
    """A form ready to send: `method` GET or POST, the absolute `url` (for GET: with the
    entries as its query), `enctype`, the `entries` (name, value) in the order a browser sends
    them, the names of the entries sent empty, and the submit button used (None: no button).
    `charset` is the encoding the entries are sent in (the Encoding standard's name), `codec`
    the same as a Python codec; a character it cannot hold goes as `&#NNNN;`."""

    method: str
    url: str
    enctype: str
    entries: list[tuple[str, str]]
    empty: list[str] = field(default_factory=list)
    submitter: str | None = None
    #: names in `fields` that no input of the form has (added at the end, as given), and the
    #: names the form's inputs do have: a login that the site changed shows here
    missing: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    charset: str = "UTF-8"
    codec: str = "utf-8"

    def encode(self, text: str) -> bytes:
        """`text` in the form's charset, what it cannot hold as `&#NNNN;` (a browser's way)."""
        return text.encode(self.codec, "xmlcharrefreplace")

    @property
    def names(self) -> list[str]:
        """The names sent, each once, in order (safe to show: no values)."""
        return list(dict.fromkeys(name for name, _ in self.entries))


def parse_html(text: str, url: str) -> HtmlElement:
    """The document tree of a page; `url` is the page's final URL (the document's URL)."""
    import lxml.html

    try:
        try:
            return lxml.html.document_fromstring(text, base_url=url)
        except ValueError:  # a str with an XML encoding declaration: lxml reads the bytes
            return lxml.html.document_fromstring(text.encode("utf-8"), base_url=url)
    except Exception as exc:  # lxml.etree.ParserError: an empty document
        raise FormProblem(f"the page is not HTML ({exc})") from None


def find_form(doc: HtmlElement, selector: str | None) -> HtmlElement:
    """The form `selector` (CSS) names, else the first form with a password field, else the
    only form; FormProblem when there is none. A `<template>`'s content is no part of the
    page: its forms count only when the page has none of its own (a script clones the
    login form in, as sent then)."""
    forms = page_forms(doc) or list(doc.iter("form"))
    if selector:
        from lxml.cssselect import CSSSelector

        try:
            matches = CSSSelector(selector)(doc)
        except Exception as exc:  # cssselect's SelectorSyntaxError / ExpressionError
            raise FormProblem(f"`form:` {selector!r} is not a CSS selector ({exc})") from None
        chosen = next((m for m in matches if m.tag == "form" and m in forms), None)
        if chosen is None:
            raise FormProblem(f"no form matches {selector!r}")
        return chosen
    with_password = [f for f in forms if any(_type(c) == "password" for c in controls(doc, f))]
    if with_password:
        return with_password[0]
    if len(forms) == 1:
        return forms[0]
    if not forms:
        raise FormProblem("no form found")
    raise FormProblem(
        f"{len(forms)} forms and none with a password field; name the login form with `form:`"
    )


def control_type(element: HtmlElement) -> str:
    """A control's type as the standard reads it: an input's `type` in lower case (unknown:
    `text`), a button's (`submit`, `reset`, `button`), else its tag (`select`, `textarea`)."""
    return _type(element)


def page_forms(doc: HtmlElement) -> list[HtmlElement]:
    """The page's forms, those a `<template>` holds left out (not on the page until a
    script clones them in)."""
    return [f for f in doc.iter("form") if not _in_template(f)]


def controls(doc: HtmlElement, form: HtmlElement) -> list[HtmlElement]:
    """The form's controls in tree order: its descendants that no `form=` attribute sends
    elsewhere, and controls anywhere whose `form=` names it (the form owner)."""
    form_id = form.get("id")
    out = []
    # a control in a `<template>` is none of the page's, unless the form is its clone too
    holder = _template_of(form)
    for element in doc.iter(*_CONTROLS):
        if _template_of(element) is not holder:
            continue
        owner_id = element.get("form")
        if owner_id is not None:
            if owner_id and owner_id == form_id:
                out.append(element)
            continue
        if _nearest_form(element) is form:
            out.append(element)
    return out


def fill(
    doc: HtmlElement,
    form: HtmlElement,
    *,
    page_url: str,
    fields: Mapping[str, str],
    submit: str | None = None,
    action: str | None = None,
    encoding: str = "utf-8",
) -> FilledForm:
    """The request a browser sends for `form` once `fields` are typed in and the submit
    button is pressed (`submit`: its name, label or a CSS selector; default: the form's
    default button, the first enabled one). `fields` replace the value of the entry of the
    same name (a name the form lacks is added); `action` replaces where it goes. `encoding`
    is the page's (a label, or the codec `charset.decode_html` names): the form is sent in
    it, unless its `accept-charset` names another.

    Raises FormProblem when `submit` names no button of the form, or several, or when the
    form (or its button's `formmethod`) has method `dialog`: such a form is never sent."""
    owned = controls(doc, form)
    submitter = _submitter(owned, submit)
    charset, codec = _form_encoding(form, encoding)
    entries: list[tuple[str, str]] = []
    unchecked = _unchecked_radios(owned)
    picked, typed = _picked(owned, fields)
    for element in owned:
        state = picked.get(element)
        if state or (state is None and element not in unchecked):
            entries += _entries(element, submitter, charset, checked=bool(state))
    inputs = list(
        dict.fromkeys(
            c.get("name")
            for c in owned
            if c.get("name") and not _is_submit_button(c) and _type(c) not in _NEVER_SENT
        )
    )
    missing = [name for name in fields if name not in inputs]
    # every encoding writes a line break as CR LF (HTML standard, "converting an entry list
    # to a list of name-value pairs" and its multipart and text/plain encodings)
    entries = [(_crlf(name), _crlf(value)) for name, value in _typed_in(entries, typed)]
    method = _attribute(submitter, form, "method", ("get", "post", "dialog"), "get").upper()
    if method == "DIALOG":  # HTML standard, "form submission algorithm": no request at all
        raise FormProblem(
            'the form\'s method is "dialog": it closes a dialog and sends nothing to a server '
            "(HTML standard), a script of the page sends the login; set `render: true` to log "
            "in as a browser does"
        )
    enctype = _attribute(
        submitter,
        form,
        "enctype",
        ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain"),
        "application/x-www-form-urlencoded",
    )
    target = _action_url(doc, form, submitter, page_url, action)
    if method == "GET":
        parts = urlsplit(target)
        query = urlencode(entries, encoding=codec, errors="xmlcharrefreplace")
        target = urlunsplit(parts._replace(query=query, fragment=""))
    empty = [name for name, value in entries if value == ""]
    return FilledForm(
        method=method,
        url=target,
        enctype=enctype,
        entries=entries,
        empty=list(dict.fromkeys(empty)),
        submitter=_describe(submitter) if submitter is not None else None,
        missing=missing,
        inputs=inputs,
        charset=charset,
        codec=codec,
    )


def _form_encoding(form: HtmlElement, page_encoding: str) -> tuple[str, str]:
    """(name, Python codec) of the encoding the form is sent in (HTML standard, "picking an
    encoding for the form"): the first label of its `accept-charset` that is one (UTF-8 when
    none is), else the page's; UTF-16 pages send UTF-8."""
    from kpi_collector.collect.charset import form_encoding

    utf8 = ("UTF-8", "utf-8")
    accept = form.get("accept-charset")
    if accept is not None:
        labels = _SPACE.split(accept.strip())
        return next((found for label in labels if (found := form_encoding(label))), utf8)
    return form_encoding(page_encoding) or utf8


def page_title(doc: HtmlElement) -> str:
    """The page's `<title>`, whitespace collapsed ("" without one)."""
    title = doc.find(".//title")
    return _collapse(title.text_content()) if title is not None else ""


# the pieces ---------------------------------------------------------------------------------


def _type(element: HtmlElement) -> str:
    """An input's type as the standard reads it (lower case, unknown → text), a button's."""
    if element.tag == "button":
        kind = (element.get("type") or "submit").lower()
        return kind if kind in ("submit", "reset", "button") else "submit"
    if element.tag == "input":
        return (element.get("type") or "text").strip().lower() or "text"
    return str(element.tag)


def _is_submit_button(element: HtmlElement) -> bool:
    return (element.tag == "button" and _type(element) == "submit") or (
        element.tag == "input" and _type(element) in _SUBMIT_INPUTS
    )


def _in_template(element: HtmlElement) -> bool:
    return _template_of(element) is not None


def _template_of(element: HtmlElement) -> HtmlElement | None:
    """The nearest `<template>` around `element`, None for the page's own elements."""
    return next(element.iterancestors("template"), None)


#: what a field given for a checkbox says to leave it unticked (as the rendered login reads it)
_UNTICKED = ("", "0", "false", "off", "no")


def _picked(
    owned: list[HtmlElement], fields: Mapping[str, str]
) -> tuple[dict[HtmlElement, bool], dict[str, str]]:
    """`fields` as a person sets them: a checkbox ticked ("on", "true", "1"...: it sends its
    own value) or not ("", "0", "false", "off", "no": it sends nothing); the radio button
    whose value is given picked, the others of its group not; an option of a `<select>`
    given by its label sends its value. Returns the checkboxes' and radios' states and the
    fields left to type in (a select's value in place of its label)."""
    states: dict[HtmlElement, bool] = {}
    typed = dict(fields)
    for name, value in fields.items():
        named = [c for c in owned if c.get("name") == name]
        kinds = {_type(c) for c in named}
        if kinds == {"checkbox"}:
            boxes = named if len(named) == 1 else [c for c in named if c.get("value") == value]
            for box in boxes:
                states[box] = value.strip().lower() not in _UNTICKED or len(named) > 1
            if boxes:
                del typed[name]
        elif kinds == {"radio"} and any(c.get("value", "on") == value for c in named):
            for radio in named:
                states[radio] = radio.get("value", "on") == value
            del typed[name]
        elif kinds == {"select"}:
            options = list(named[0].iter("option"))
            if not any(_option_value(o) == value for o in options):
                by_label = [o for o in options if _collapse(o.text_content()) == _collapse(value)]
                if by_label:
                    typed[name] = _option_value(by_label[0])
    return states, typed


def _unchecked_radios(owned: list[HtmlElement]) -> set[HtmlElement]:
    """The radio buttons marked `checked` that a later one of their group (same name, same
    form) unchecked as the page was parsed: only one of a group is checked, the last."""
    last: dict[str, HtmlElement] = {}
    out: set[HtmlElement] = set()
    for element in owned:
        name = element.get("name")
        if element.tag != "input" or _type(element) != "radio" or not name:
            continue
        if element.get("checked") is not None:
            if name in last:
                out.add(last[name])
            last[name] = element
    return out


def _nearest_form(element: HtmlElement) -> HtmlElement | None:
    for ancestor in element.iterancestors("form"):
        return ancestor
    return None


def _disabled(element: HtmlElement) -> bool:
    """The standard's "actually disabled": its own `disabled`, or inside a disabled
    `<fieldset>` but not inside that fieldset's first `<legend>`."""
    if element.get("disabled") is not None:
        return True
    child = element
    for ancestor in element.iterancestors():
        if ancestor.tag == "fieldset" and ancestor.get("disabled") is not None:
            legend = next(ancestor.iterchildren("legend"), None)
            if child is not legend:
                return True
        child = ancestor
    return False


def _label(element: HtmlElement) -> str:
    """What a button says: an input's `value`, a `<button>`'s text."""
    if element.tag == "button":
        return _collapse(element.text_content())
    value = element.get("value")
    if value is None and _type(element) == "submit":
        return _SUBMIT_LABEL
    return _collapse(value or "")


def _describe(element: HtmlElement) -> str:
    name = element.get("name")
    label = _label(element)
    if name and label:
        return f"{name}={label}"
    return name or label or f"<{element.tag}>"


def _submitter(owned: list[HtmlElement], submit: str | None) -> HtmlElement | None:
    buttons = [c for c in owned if _is_submit_button(c)]
    if submit is None:
        # the default button; a disabled one submits nothing in a browser: post without it
        return next((b for b in buttons if not _disabled(b)), None)
    for matches in (
        [b for b in buttons if b.get("name") == submit],
        [b for b in buttons if _label(b) == _collapse(submit)],
        [b for b in buttons if b.get("id") == submit],
        _css_matches(buttons, submit),
    ):
        if len(matches) == 1:
            return matches[0]  # named on purpose: used even when a script would enable it
        if len(matches) > 1:
            raise FormProblem(
                f"`submit:` {submit!r} matches {len(matches)} buttons "
                f"({', '.join(_describe(b) for b in matches)}); name one by its label"
            )
    known = ", ".join(_describe(b) for b in buttons) or "none"
    raise FormProblem(f"`submit:` {submit!r} names no submit button of the form; it has: {known}")


def _css_matches(buttons: list[HtmlElement], selector: str) -> list[HtmlElement]:
    from lxml.cssselect import CSSSelector

    try:
        compiled = CSSSelector(selector)
    except Exception:  # not a selector: it was meant as a name or a label
        return []
    if not buttons:
        return []
    matching = set(compiled(buttons[0].getroottree().getroot()))
    return [b for b in buttons if b in matching]


def _entries(
    element: HtmlElement,
    submitter: HtmlElement | None,
    charset: str = "UTF-8",
    *,
    checked: bool = False,
) -> list[tuple[str, str]]:
    """The entries one control adds (HTML standard, "constructing the entry list"); a
    hidden `_charset_` without a value sends `charset`, the form's encoding. `checked`: a
    checkbox or radio button is ticked, whatever its `checked` attribute says."""
    if element is not submitter and (
        _disabled(element) or any(True for _ in element.iterancestors("datalist"))
    ):
        return []
    kind = _type(element)
    name = element.get("name") or ""
    if element.tag == "button" or (element.tag == "input" and kind in _SUBMIT_INPUTS):
        pressed = element is submitter
        if not pressed:
            return []
        if kind == "image":  # the click's coordinates; a script-free click is at 0,0
            prefix = f"{name}." if name else ""
            return [(f"{prefix}x", "0"), (f"{prefix}y", "0")]
        value = element.get("value")
        if value is None and kind == "submit" and element.tag == "input":
            value = _SUBMIT_LABEL  # its default label, which it shows and sends
        return [(name, value or "")] if name else []
    if element.tag == "input" and kind in _NEVER_SENT:
        return []
    if not name:
        return []
    if element.tag == "select":
        return [(name, value) for value in _selected(element)]
    if element.tag == "textarea":
        # the parser drops a line break right after `<textarea>` (the HTML standard's
        # tree construction, "in body", start tag "textarea"); lxml keeps it
        text = _crlf(element.text_content())
        text = text.removeprefix("\r\n")
        entries = [(name, text)]
        if element.get("dirname"):
            entries.append((element.get("dirname"), "ltr"))
        return entries
    if kind in ("checkbox", "radio"):
        if element.get("checked") is None and not checked:
            return []
        value = element.get("value")
        return [(name, "on" if value is None else value)]
    if kind == "hidden" and name.lower() == "_charset_" and element.get("value") is None:
        return [(name, charset)]
    value = sanitized(kind, element.get("value"), dict(element.attrib))
    entries = [(name, value)]
    dirname = element.get("dirname")
    if dirname and kind in ("text", "search", "hidden", "email", "url", "tel", "password"):
        entries.append((dirname, "ltr"))
    return entries


def _selected(select: HtmlElement) -> list[str]:
    """A `<select>`'s selected, enabled options' values: the ones marked `selected`; with
    none in a single select, the first enabled option (the standard's selectedness setting)."""
    options = list(select.iter("option"))
    multiple = select.get("multiple") is not None
    marked = [o for o in options if o.get("selected") is not None]
    if not multiple:
        # several marked: the last one wins; none: the first enabled option, in a drop-down
        # only (a list box, `size` 2 or more, starts with none selected)
        first = [o for o in options if not _option_disabled(o)][:1]
        marked = marked[-1:] if marked else first if _display_size(select) <= 1 else []
    return [_option_value(o) for o in marked if not _option_disabled(o)]


def _display_size(select: HtmlElement) -> int:
    """A single `<select>`'s `size` read as the standard's "rules for parsing non-negative
    integers" (leading spaces, a `+`, then digits); 1 when it is absent or no number."""
    found = re.match(r"[ \t\n\f\r]*\+?([0-9]+)", select.get("size") or "")
    return int(found.group(1)) if found else 1


def _option_disabled(option: HtmlElement) -> bool:
    if option.get("disabled") is not None:
        return True
    parent = option.getparent()
    return parent is not None and parent.tag == "optgroup" and parent.get("disabled") is not None


def _option_value(option: HtmlElement) -> str:
    value = option.get("value")
    return value if value is not None else _collapse(option.text_content())


def _typed_in(entries: list[tuple[str, str]], fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """`fields` typed into the form: each replaces the first entry of its name (and drops
    the others of that name); a name the form lacks is added at the end. A value's line
    ends at its start or end are left out (a secret pasted with its newline): no one types
    them into a one-line input."""
    out: list[tuple[str, str]] = []
    done: set[str] = set()
    for name, value in entries:
        if name in fields:
            if name in done:
                continue
            done.add(name)
            value = fields[name].strip("\r\n")
        out.append((name, value))
    out += [(name, value.strip("\r\n")) for name, value in fields.items() if name not in done]
    return out


def _attribute(
    submitter: HtmlElement | None,
    form: HtmlElement,
    name: str,
    allowed: Iterable[str],
    default: str,
) -> str:
    """`formmethod`/`formenctype` of the button, else the form's `method`/`enctype`; an
    invalid value reads as the default (the attributes' "invalid value default")."""
    raw = submitter.get(f"form{name}") if submitter is not None else None
    if raw is None:
        raw = form.get(name)
    value = (raw or "").strip().lower()
    return value if value in allowed else default


def _action_url(
    doc: HtmlElement,
    form: HtmlElement,
    submitter: HtmlElement | None,
    page_url: str,
    override: str | None,
) -> str:
    """Where the form goes: `override`, else the button's `formaction`, else the form's
    `action`, resolved against the document's base URL (`<base href>`); empty: the page."""
    action = override
    if action is None and submitter is not None:
        action = submitter.get("formaction")
    if action is None:
        action = form.get("action")
    action = (action or "").strip()
    if not action:
        return page_url
    target = urljoin(_base_url(doc, page_url), action)
    if urlsplit(target).scheme not in ("http", "https"):
        raise FormProblem(f"the form's action {action!r} is not an http(s) URL; give `submit_url:`")
    return target


def _base_url(doc: HtmlElement, page_url: str) -> str:
    base = next((b.get("href") for b in doc.iter("base") if b.get("href") is not None), None)
    return urljoin(page_url, base.strip()) if base else page_url


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()
