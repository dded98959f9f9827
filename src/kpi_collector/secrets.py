"""Secret values: a type that never prints itself, and a redactor for every text we emit.

Every `Secret` created in this process is remembered, so `redact()` can scrub it from an
error message, a log line or a stored error, however the text was built (an exception
from a library may echo a URL with a token in its query string).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import core_schema

_KNOWN: set[str] = set()
_MASK = "***"
# user:password@ in URLs (database URLs, webhook URLs with basic auth). A password written
# as is, not percent-encoded, may hold `@`: it runs to the last `@` of the authority. In a web
# address the authority ends at the first `/` (`https://host:8443/@scope` has no password);
# in any other (a database URL) SQLAlchemy takes `/` and `:` into the password, so there it
# runs to the last `@` before a space (an address that holds no password loses a little more)
_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.\-])(?P<scheme>(?i:https?|wss?)://)(?P<user>[^:/@\s]*):(?P<pw>[^/\s]+)@"
)
_DB_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.\-])(?P<scheme>(?!(?i:https?|wss?)://)[a-zA-Z][a-zA-Z0-9+.\-]*://)"
    r"(?P<user>[^:/@\s]*):(?P<pw>\S+)@"
)
# obvious credentials in query strings and headers
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>[?&](?:access_token|token|api_key|apikey|key|password|secret|sig|signature"
    # presigned S3 and GCS URLs (an `active_users` source's `events:`)
    r"|x-amz-signature|x-amz-security-token|x-goog-signature)=)"
    r"(?P<value>[^&#\s]+)"
)
_MIN_LEN = 4  # shorter values are masked only where they stand as a value (see redact)
#: while `recording.values` is a list in a thread, every value `remember` is given there (also
#: one already known) is appended: the config cache learns what validation marked secret
recording = threading.local()
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def remember(value: str) -> None:
    """Mark a value as secret so `redact` removes it from any text, in each form a server or
    a program is likely to echo it in: as is, URL-encoded (RFC 3986 percent-encoding, and
    `+` for spaces as HTML forms send it), JSON-escaped (RFC 8259 section 7), HTML-escaped
    and base64 (RFC 4648); of a URL, also the parts a service may echo alone
    (`url_secret_parts`: a webhook's token echoed in an error body). A value with spaces or
    line ends around it (`echo token > file`, a variable set with its newline) is also
    marked without them: that is the form a header, a form field or a URL sends."""
    global _version
    if not value:
        return
    marked: list[str] | None = getattr(recording, "values", None)
    if marked is not None:
        marked.append(value)
    forms = encodings(value)
    trimmed = value.strip()
    if trimmed and trimmed != value:
        forms |= encodings(trimmed)
    for part in url_secret_parts(trimmed or value):
        forms |= encodings(part)
    if not forms <= _KNOWN:
        _KNOWN.update(forms)
        _version += 1


_LITERAL_MIN_LEN = 8  # a key written into the file itself is longer than an option word
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/?#]+\S*")
_TOKEN_MIN_LEN = 16  # a path segment this long is a token, whatever its characters


def url_secret_parts(value: str) -> list[str]:
    """The parts of a secret URL that a service may echo alone, each as secret as the URL: its
    password, its query values and the path segments that look like tokens (at least 16
    characters, or 8 with both letters and digits: a Slack webhook's `T…`, `B…` and token, a
    Discord webhook's token), never its words (`services`, `webhooks`) nor a numeric id.
    Empty for a value that is not a URL."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    if not _URL.fullmatch(value.strip()):
        return []
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return []
    found = [parts.password] if parts.password else []
    for segment in parts.path.split("/"):
        plain = unquote(segment)
        mixed = any(c.isalpha() for c in plain) and any(c.isdigit() for c in plain)
        if not plain.isdigit() and (
            len(plain) >= _TOKEN_MIN_LEN or (len(plain) >= _LITERAL_MIN_LEN and mixed)
        ):
            found.append(plain)
    for _, query_value in parse_qsl(parts.query):
        if len(query_value) >= _LITERAL_MIN_LEN and not _PLAIN_NUMBER.fullmatch(query_value):
            found.append(query_value)
    return found


def remember_url_credentials(url: str) -> None:
    """Mark the credentials a source's URL carries as secret: its userinfo (the password, or
    the user alone when there is none: a token written as `https://TOKEN@host`), also as
    the `Authorization: Basic` header it is sent as, which a server may echo; and the values
    of query parameters named as credentials (`key`, `token`, `api_key`, `access_token`,
    `password`, `secret`, `sig`, `signature`, and a presigned URL's `X-Amz-Signature`,
    `X-Amz-Security-Token`, `X-Goog-Signature`), which `redact` hides as `key=...` anyway but
    a server may echo alone (`invalid key abcd1234`). Other parts of the URL stay shown."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(url.strip())
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        remember(password)
    elif user:
        remember(user)
    if user or password:  # sent decoded, as `user:password` in base64 (RFC 7617)
        remember_basic(unquote(user or ""), unquote(password or ""))
    for key, value in parse_qsl(parts.query):
        if _QUERY_SECRET.fullmatch(f"?{key}={value}") and len(value) >= _MIN_LEN:
            remember(value)


def remember_values(values: Mapping[str, Any]) -> None:
    """Mark every value of a `params`, `headers` or `env` mapping as secret (issue 12: what a
    config puts there is often a key); plain numbers and booleans are left shown, and so are
    short words written into the file itself (`state: open`): masking those would rewrite
    every message around them (`github.***_issues`). A value from `${VAR}` is always hidden
    (the loader remembers it), however short."""
    for value in values.values():
        text = value.get() if isinstance(value, Secret) else str(value)
        if _PLAIN_NUMBER.fullmatch(text) or text.lower() in ("true", "false"):
            continue
        if not isinstance(value, Secret) and len(text) < _LITERAL_MIN_LEN:
            continue
        remember(text)


def remember_basic(user: str, password: str) -> None:
    """Mark HTTP basic credentials as secret: the password, and `user:password` with its
    base64 form, which is what `Authorization: Basic ...` carries (RFC 7617 section 2)."""
    remember(password)
    remember(f"{user}:{password}")


def encodings(value: str) -> set[str]:
    """`value` and the forms of it `remember` also hides."""
    import base64
    import html
    import json
    from urllib.parse import quote, quote_plus

    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        quote(value, safe="/"),  # urllib's own default (`quote(value)`)
        quote(value, safe="/:@"),  # what an echoed URL path or userinfo keeps
        quote(value, safe="/:@!$&'()*+,;=~"),  # a URL path as aiohttp/yarl sends it (pchar)
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(value)[1:-1].replace("/", "\\/"),  # `\/`, as PHP's json_encode writes it
        html.escape(value),
    }
    raw = value.encode()
    forms.add(base64.b64encode(raw).decode().rstrip("="))
    forms.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    return {form for form in forms if form}


# A secret that is an ordinary word or number of at most 8 characters (a token literally
# `wrong`, a user `admin`) is masked only where it stands as a value that was sent or echoed,
# never inside the prose around it ("missing or wrong" stays as written; issue 13 §5).
# Longer or mixed values are masked wherever they appear, as part of any text: a 9-letter
# secret is unlikely to be a word of a message, and output must never show a secret.
_WORDLIKE = re.compile(r"[A-Za-z]{1,8}|\d{1,8}")
# where an echoed value stands: after `=` (query, form, key=value) or `/` (URL path or
# userinfo), after an auth scheme, between matching quotes (JSON, repr), or as a header's
# whole value after `: `; and always as a whole token
_VALUE_AT = (
    r"(?:(?<=[=/])|(?<=[Bb]earer )|(?<=[Bb]asic )|(?<=[Tt]oken ))(?:{w})(?![\w\-])"
    r"|(?<=\")(?:{w})(?=\")|(?<=')(?:{w})(?=')"
    r"|(?<=: )(?:{w})(?=[ \t]*(?:$|[,;}}\]\"']))"
)
_version = 0  # bumped by each `remember` that adds a form
_cache: tuple[tuple[int, int], list[str], re.Pattern[str] | None] = ((-1, -1), [], None)


def _split_known() -> tuple[list[str], re.Pattern[str] | None]:
    """The known secrets masked everywhere (longest first), and one pattern for the word-like
    ones, masked only where they stand as a value; cached until the registry changes."""
    global _cache
    # the registry only grows, or is put back to an earlier state (tests): its size and the
    # count of additions tell whether it changed, without hashing every value on each call
    key = (_version, len(_KNOWN))
    if key != _cache[0]:
        known = set(_KNOWN)
        words = sorted((v for v in known if _in_context(v)), key=len, reverse=True)
        anywhere = sorted((v for v in known if not _in_context(v)), key=len, reverse=True)
        pattern = None
        if words:
            either = "|".join(re.escape(w) for w in words)
            pattern = re.compile(_VALUE_AT.format(w=either), re.MULTILINE)
        _cache = (key, anywhere, pattern)
    return _cache[1], _cache[2]


def _in_context(value: str) -> bool:
    """Whether a secret is masked only where it stands as a value: a plain word or number of at most 8 characters,
    or anything shorter than 4 characters (`abc`, `1`), which would rewrite ordinary text."""
    return len(value) < _MIN_LEN or _WORDLIKE.fullmatch(value) is not None


def redact(text: str) -> str:
    """Return `text` with every known secret, URL password and credential parameter masked.

    A secret that is a plain word or number of at most 8 characters is masked where it was sent or echoed as a
    value (`?token=wrong`, `Bearer wrong`, `"wrong"`, `/wrong/`, a header's value), not where
    the same word is part of a sentence; every other secret wherever it appears."""
    if not text:
        return text
    anywhere, words = _split_known()
    for value in anywhere:
        if value in text:
            text = text.replace(value, _MASK)
    if words is not None:
        text = words.sub(_MASK, text)
    for pattern in (_URL_PASSWORD, _DB_URL_PASSWORD):
        text = pattern.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{_MASK}", text)


def redact_cut(text: str, limit: int) -> str:
    """`text` redacted, then cut to at most `limit` characters with `…`: redaction comes
    first, so a cut never leaves the first characters of a secret behind."""
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FromVariables(str):
    """A config string that `${VAR}` expansion built: it knows the variables it came from,
    so a message about a refused credential can name the one to check, and the values they
    gave, so a `Secret` built from it hides them wherever they show (a webhook URL's token
    echoed as a path)."""

    variables: tuple[str, ...] = ()
    values: tuple[str, ...] = ()


class Secret:
    """A string that shows as `***` everywhere; `.get()` returns the real value.
    `variables` names the `${VAR}`s it was read from (empty when written in the config).

    A config field of this type takes a string (or pydantic's `SecretStr`); the class
    itself needs no pydantic, so a config read from the cache holds it without importing
    pydantic. Equal to a secret of the same class and value, as pydantic's `SecretStr`."""

    variables: tuple[str, ...] = ()
    hides_variables: ClassVar[bool] = True  # the values `${VAR}`s gave it are secret too

    def __init__(self, secret_value: str, variables: tuple[str, ...] = ()) -> None:
        self._secret_value = secret_value
        self.variables = variables
        remember(secret_value)

    def get(self) -> str:
        return self._secret_value

    def get_secret_value(self) -> str:
        """The value (the name pydantic's `SecretStr` gives it)."""
        return self._secret_value

    def _display(self) -> str:
        return _MASK

    def __str__(self) -> str:
        return self._display()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._display()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.get() == self.get()

    def __hash__(self) -> int:
        return hash(self.get())

    def __len__(self) -> int:
        return len(self.get())

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        from pydantic import SecretStr
        from pydantic_core import core_schema

        def build(value: Any) -> Secret:
            variables: tuple[str, ...] = getattr(value, "variables", ())
            if isinstance(value, SecretStr | Secret):
                value = value.get_secret_value()
            if isinstance(value, bool):  # `token: yes`: YAML 1.1's true, not the text
                from pydantic_core import PydanticCustomError

                raise PydanticCustomError("string_type", "a boolean is not a text")
            if not isinstance(value, str | int):
                raise ValueError("expected a string")
            if cls.hides_variables:
                for part in getattr(value, "values", ()):
                    remember(part)
            return cls(str(value), variables)

        return core_schema.no_info_plain_validator_function(
            build,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: _MASK),
            json_schema_input_schema=core_schema.str_schema(),
        )


#: a database URL's password as SQLAlchemy reads it: from the user's `:` to the first `@`,
#: `/`, `?`, `#` and spaces included
_DATABASE_PASSWORD = re.compile(r"^\s*[\w+.\-]+://[^:/@]*:(?P<pw>[^@]*)@(?P<rest>.*)$", re.DOTALL)


def database_passwords(url: str) -> list[str]:
    """What in a database URL is its password, written and decoded (`%40` is `@`): as
    SQLAlchemy reads it (to the first `@`) and, when more `@` follow in the host, as its
    writer meant it (to the last `@` before the host)."""
    from urllib.parse import unquote

    match = _DATABASE_PASSWORD.match(url)
    if not match:
        return []
    found = [match["pw"]]
    # to the last `@` before the query: a password may hold `/` and `:` too (`p@ss:w/ord`)
    rest = match["rest"].split("?", 1)[0]
    if "@" in rest:
        found.append(f"{match['pw']}@{rest.rpartition('@')[0]}")
    return [form for pw in found for form in dict.fromkeys((pw, unquote(pw))) if form]


def without_password(url: str) -> str:
    """`url` with its password (`database_passwords`, the longest) shown as `***`."""
    match = _DATABASE_PASSWORD.match(url)
    if match:  # masked where the password stands: `p` of `p@ss@host` is also in `postgresql`
        start = match.start("pw")
        written = [pw for pw in database_passwords(url) if url.startswith(pw, start)]
        if written:
            return f"{url[:start]}{_MASK}{url[start + max(map(len, written)) :]}"
    return redact(url)


class DatabaseUrl(Secret):
    """A database URL: only its password is secret, so messages can still name the host
    and database (`postgresql://kpi:***@db/kpi`) while the password never shows, whatever
    it holds (`/`, `#`, a raw `@`)."""

    hides_variables: ClassVar[bool] = False  # `${DATABASE_URL}` whole: only its password

    def __init__(self, secret_value: str, variables: tuple[str, ...] = ()) -> None:
        self._secret_value = secret_value
        self.variables = variables
        for password in database_passwords(secret_value):
            remember(password)

    def _display(self) -> str:
        return redact(self.get())


def reveal(value: Secret | str | None) -> str | None:
    """The plain value of a secret or plain string."""
    if value is None:
        return None
    return value.get() if isinstance(value, Secret) else value
