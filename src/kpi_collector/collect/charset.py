"""Bytes of an HTML page to text, as a browser decodes them.

The HTML standard's encoding sniffing (section 13.2.3.2): a byte order mark, then the
`Content-Type` header's charset, then the `<meta charset>` / `<meta http-equiv>` the
prescan finds (comments skipped; a label it does not know is passed over, `utf-16*` means
UTF-8, `x-user-defined` windows-1252), else UTF-8 when the bytes are valid UTF-8, else
the charset of a `<meta>` further on (the parser's "change the encoding", section
13.2.3.5), else the default for the page's `<html lang>` (windows-1251 for Russian,
Shift_JIS for Japanese; section 13.2.3.3), windows-1252 for most. Labels are the WHATWG Encoding standard's (through webencodings:
`latin1`, `ascii` and `iso-8859-1` are windows-1252, `x-gbk` GBK, `utf-16` UTF-16LE,
`x-sjis` Shift_JIS), each decoded by the Python codec that matches the standard's decoder
(through w3lib: Shift_JIS as cp932, GBK as GB18030, Big5 as Big5-HKSCS, EUC-KR as cp949).
"""

from __future__ import annotations

import re
from email.message import Message
from functools import lru_cache

from kpi_collector.errors import ExtractError

#: how far the meta prescan looks: the standard says 1024 bytes, w3lib (and this project
#: before) 4096, which finds a late `<meta charset>` after a long `<title>` or scripts
PRESCAN_BYTES = 4096

# the prescan's tokens: a comment (skipped whole: it ends at the first `>` after two
# dashes, those of `<!--` included, so `<!-->` and `<!--->` are whole comments), a meta tag
# (its attributes), an XML declaration; anything else is passed over
_SCAN = re.compile(
    rb"""<!--(?:>|->|.*?(?:-->|$))
    | <meta(?=[\s/])(?P<meta>(?:[^<>"']|"[^"]*"|'[^']*')*)
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
#: how far a late `<meta charset>` is looked for (`late_meta_charset`): a <head> is shorter
LATE_BYTES = 256 * 1024
# the tokens of that look: comments and the contents of elements whose text is no markup
# (a <meta> in a script's string is no element), and meta tags, their quoted values at
# most 1 KB (an unclosed quote ends the tag, not a scan of the rest of the page each time)
_LATE = re.compile(
    rb"""<!--(?:>|->|.*?(?:-->|$))
    | <(?P<raw>script|style|title|textarea|xmp|iframe|noembed|noframes|noscript|template)
      (?=[\s/>]).*?(?:</(?P=raw)\s*>|$)
    | <meta(?=[\s/])(?P<meta>(?:[^<>"']|"[^"]{0,1024}"|'[^']{0,1024}')*)
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_ATTRIBUTE = re.compile(
    rb"""(?P<name>[^\s/>"'=]+)(?:\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s>]*)))?"""
)
# "extract a character encoding from a meta element" (HTML standard 2.5.7)
_CONTENT_CHARSET = re.compile(
    rb"""charset\s*=\s*(?:"(?P<dq>[^"]*)"?|'(?P<sq>[^']*)'?|(?P<bare>[^\s;]+))""",
    re.IGNORECASE,
)


def decode_html(content_type: str | None, body: bytes) -> tuple[str, str]:
    """(the codec used, the page as text) for an HTML answer's `Content-Type` and bytes.

    Bytes that do not decode become U+FFFD. ExtractError when the page declares an
    encoding browsers refuse to decode (the standard's `replacement`: ISO-2022-KR,
    HZ-GB-2312, ISO-2022-CN), whose text would be a single U+FFFD.
    """
    from w3lib.encoding import read_bom, to_unicode

    bom_codec, bom = read_bom(body)
    if bom_codec is not None and bom is not None:
        return bom_codec, to_unicode(body[len(bom) :], bom_codec)
    header = header_charset(content_type)
    codec = _codec(header, meta=False) if header is not None else None
    if codec is None:
        codec = meta_charset(body)
    if codec is None and body.startswith(b"<?xml"):
        codec = _xml_charset(body)
    if codec is None and _valid_utf8(body):
        codec = "utf-8"
    if codec is None:
        codec = late_meta_charset(body) or language_default(body)
    if codec == "replacement":
        label = header if _codec(header or "", meta=False) == "replacement" else "its <meta>"
        raise ExtractError(
            f"the page declares the charset {label!r}, which browsers do not decode (the "
            "WHATWG Encoding standard maps it to `replacement`); nothing can be read from it"
        )
    if codec == "x-user-defined":
        return codec, body.decode("latin-1").translate(_USER_DEFINED)
    return codec, to_unicode(body, codec)


@lru_cache(maxsize=256)  # a site's pages share a few values; parsing one takes ≈40 µs
def header_charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a `Content-Type` value (quotes removed), or None."""
    if not content_type:
        return None
    message = Message()
    message["Content-Type"] = content_type
    found = message.get_param("charset", header="Content-Type")
    if isinstance(found, tuple):  # RFC 2231 (charset, language, value)
        found = found[2]
    return found.strip() if isinstance(found, str) and found.strip() else None


def meta_charset(body: bytes) -> str | None:
    """The codec the HTML standard's prescan finds in a `<meta>` of the first
    PRESCAN_BYTES of `body`, or None (labels it does not know are passed over)."""
    return _first_meta_codec(_SCAN, body[:PRESCAN_BYTES])


def late_meta_charset(body: bytes) -> str | None:
    """The codec a `<meta charset>` (or `http-equiv`) past the prescan's reach names, in
    the first LATE_BYTES of `body`, or None: a browser that meets one while parsing a page
    it decoded by guess decodes the page again in it (HTML standard, "change the encoding"),
    as Chromium does for a windows-1251 page whose <meta> follows 5 KB of scripts. Comments
    and the text of scripts, styles and the like are passed over, as the parser does."""
    return _first_meta_codec(_LATE, body[:LATE_BYTES])


#: the HTML standard's suggested default encoding by language (13.2.3.3), for a page that
#: declares none and is not UTF-8; any language not here: windows-1252
_LANGUAGE_DEFAULTS = {
    **dict.fromkeys(("ar", "fa"), "windows-1256"),
    **dict.fromkeys(("az", "ku", "tr"), "windows-1254"),
    **dict.fromkeys(
        ("ba", "be", "bg", "kk", "ky", "mk", "ru", "sah", "sr", "tg", "tt", "uk"), "windows-1251"
    ),
    **dict.fromkeys(("cs", "hr", "sk"), "windows-1250"),
    **dict.fromkeys(("hu", "pl", "sl"), "iso-8859-2"),
    **dict.fromkeys(("et", "lt", "lv"), "windows-1257"),
    "el": "iso-8859-7",
    "he": "windows-1255",
    "ja": "shift_jis",
    "ko": "euc-kr",
    "th": "windows-874",
    "vi": "windows-1258",
    "zh": "gb18030",
}
#: `<html lang="...">` near the start of a page: its primary language and next subtag
_HTML_LANG = re.compile(
    rb"""<html(?=[\s/>])[^>]*?\slang\s*=\s*["']?([a-z]{2,3})(?:[-_]([a-z0-9]+))?""",
    re.IGNORECASE,
)


def language_default(body: bytes) -> str:
    """The codec for a page that declares no charset and is not UTF-8: the HTML standard's
    default for its language (`<html lang>` in the first PRESCAN_BYTES), as a browser in
    that language's locale, or one that guesses from the text, decodes it: windows-1251
    for Russian, Shift_JIS for Japanese, Big5 for Chinese of Taiwan and Hong Kong;
    windows-1252 for other languages or none."""
    found = _HTML_LANG.search(body[:PRESCAN_BYTES])
    if found is None:
        return "cp1252"
    language = found.group(1).decode().lower()
    region = (found.group(2) or b"").decode().lower()
    label = _LANGUAGE_DEFAULTS.get(language, "windows-1252")
    if language == "zh" and region in ("tw", "hk", "mo", "hant"):
        label = "big5"
    return _codec(label, meta=False) or "cp1252"


def _first_meta_codec(scan: re.Pattern[bytes], head: bytes) -> str | None:
    for match in scan.finditer(head):
        attributes = match.group("meta")
        if attributes is None or b"charset" not in attributes.lower():
            continue
        label = _meta_label(attributes)
        codec = _codec(label.decode("ascii", "replace"), meta=True) if label else None
        if codec is not None:
            return codec
    return None


_XML_ENCODING = re.compile(rb"""<\?xml[^>]*?\sencoding\s*=\s*["']([^"'>]*)["']""")


def _xml_charset(body: bytes) -> str | None:
    """The codec an XML declaration at the very start names (the HTML standard's "get an
    XML encoding", after the prescan found nothing); UTF-16 there means UTF-8 too."""
    found = _XML_ENCODING.match(body[:PRESCAN_BYTES])
    return _codec(found.group(1).decode("ascii", "replace"), meta=True) if found else None


def _meta_label(attributes: bytes) -> bytes | None:
    """The label a meta tag's attributes declare: `charset`, or `content`'s charset= when
    the tag has `http-equiv="content-type"` (HTML standard 13.2.3.2, prescan)."""
    charset = content = None
    pragma = False
    for attribute in _ATTRIBUTE.finditer(attributes):
        name = attribute.group("name").lower()
        value = next((v for v in attribute.group("dq", "sq", "bare") if v is not None), b"")
        if name == b"charset" and charset is None:
            charset = value
        elif name == b"content" and content is None:
            content = value
        elif name == b"http-equiv" and value.strip().lower() == b"content-type":
            pragma = True
    if charset is not None:
        return charset
    if pragma and content is not None:
        found = _CONTENT_CHARSET.search(content)
        if found is not None:
            return next(v for v in found.group("dq", "sq", "bare") if v is not None)
    return None


@lru_cache(maxsize=256)  # once per label: a lookup takes ≈17 µs, and a site repeats its label
def _codec(label: str, *, meta: bool) -> str | None:
    """The Python codec for a WHATWG Encoding label, `replacement` or `x-user-defined`
    for those, or None for a label the standard does not know. From a `<meta>`, UTF-16
    means UTF-8 and x-user-defined windows-1252 (the page is ASCII-compatible if the
    prescan read it)."""
    import webencodings
    from w3lib.encoding import resolve_encoding

    encoding = webencodings.lookup(label)
    if encoding is None:
        return None
    name = encoding.name
    if meta and name in ("utf-16le", "utf-16be"):
        return "utf-8"
    if name == "x-user-defined":
        return "cp1252" if meta else name
    if name == "replacement":
        return name
    return resolve_encoding(webencodings.PYTHON_NAMES.get(name, name))


def label_codec(label: str) -> str | None:
    """The Python codec a WHATWG Encoding label (a `Content-Type` charset) names, or None
    for a label the standard does not know or one no codec here decodes (`replacement`,
    `x-user-defined`)."""
    codec = _codec(label.strip(), meta=False) if label.strip() else None
    return None if codec in ("replacement", "x-user-defined") else codec


def form_encoding(label: str | None) -> tuple[str, str] | None:
    """(the Encoding standard's name, the Python codec) a form is sent in, for `label`: a
    WHATWG Encoding label (`accept-charset`'s) or the codec `decode_html` named; None for
    one neither knows. UTF-16, `replacement` and `x-user-defined` pages send UTF-8 (the
    standard's "get an output encoding"; no decoder here writes x-user-defined)."""
    import webencodings

    if not label:
        return None
    found = webencodings.lookup(label)
    name = found.name if found is not None else _whatwg_names().get(_python_name(label))
    if name is None:
        return None
    if name in ("utf-16le", "utf-16be", "replacement", "x-user-defined"):
        name = "utf-8"
    codec = _codec(name, meta=False) or "utf-8"
    return _NAME_CASE.get(name) or _upper_name(name), codec


#: the Encoding standard's spelling of names that are not all lower case or upper case
_NAME_CASE = {"shift_jis": "Shift_JIS", "big5": "Big5"}


def _upper_name(name: str) -> str:
    """`windows-1252`, `macintosh`, `x-mac-cyrillic`, `gb18030` as they are; `UTF-8`,
    `ISO-8859-2`, `EUC-JP`, `KOI8-R`, `GBK`, `IBM866` upper case, as the standard spells them."""
    if name.startswith(("utf-", "iso-", "euc-", "koi8-", "ibm")) or name == "gbk":
        return name.upper()
    return name


@lru_cache(maxsize=1)
def _whatwg_names() -> dict[str, str]:
    """{Python codec `_codec` gives: the WHATWG name it decodes}, the first name by
    sorting where two share a codec (gb18030 before gbk, iso-8859-8 before iso-8859-8-i)."""
    import webencodings

    names: dict[str, str] = {}
    for name in sorted(set(webencodings.LABELS.values())):
        python = _python_name(_codec(name, meta=False) or "")
        if python:  # replacement and x-user-defined have no Python codec
            names.setdefault(python, name)
    return names


def _python_name(codec: str) -> str:
    """The name Python's codec registry gives `codec` (`utf_8`, `UTF8` → `utf-8`), "" for
    a codec it does not know."""
    import codecs

    try:
        return codecs.lookup(codec.strip()).name
    except LookupError:
        return ""


def _valid_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


#: the x-user-defined decoder: bytes 0x80-0xFF are U+F780-U+F7FF (WHATWG Encoding 14.5)
_USER_DEFINED = {byte: 0xF780 + byte - 0x80 for byte in range(0x80, 0x100)}
