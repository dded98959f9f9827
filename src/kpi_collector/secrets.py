"""Secret values: a type that never prints itself, and a redactor for every text we emit.

Every `Secret` created in this process is remembered, so `redact()` can scrub it from an
error message, a log line or a stored error, however the text was built (an exception
from a library may echo a URL with a token in its query string).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetCoreSchemaHandler, SecretStr
from pydantic_core import core_schema

_KNOWN: set[str] = set()
_MASK = "***"
# user:password@ in URLs (database URLs, webhook URLs with basic auth)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@"
)
# obvious credentials in query strings and headers
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>[?&](?:access_token|token|api_key|apikey|key|password|secret|sig|signature)=)"
    r"(?P<value>[^&#\s]+)"
)
_MIN_LEN = 4  # shorter values would mask ordinary words


def remember(value: str) -> None:
    """Mark a value as secret so `redact` removes it from any text."""
    if value and len(value) >= _MIN_LEN:
        _KNOWN.add(value)


def redact(text: str) -> str:
    """Return `text` with every known secret, URL password and credential parameter masked."""
    if not text:
        return text
    for value in sorted(_KNOWN, key=len, reverse=True):
        if value in text:
            text = text.replace(value, _MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{_MASK}", text)


class FromVariables(str):
    """A config string that `${VAR}` expansion built: it knows the variables it came from,
    so a message about a refused credential can name the one to check."""

    variables: tuple[str, ...] = ()


class Secret(SecretStr):
    """A string that shows as `***` everywhere; `.get()` returns the real value.
    `variables` names the `${VAR}`s it was read from (empty when written in the config)."""

    variables: tuple[str, ...] = ()

    def __init__(self, secret_value: str, variables: tuple[str, ...] = ()) -> None:
        super().__init__(secret_value)
        self.variables = variables
        remember(secret_value)

    def get(self) -> str:
        return self.get_secret_value()

    def _display(self) -> str:  # pydantic's hook for str() and repr()
        return _MASK

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def build(value: Any) -> Secret:
            variables: tuple[str, ...] = getattr(value, "variables", ())
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not isinstance(value, str | int):
                raise ValueError("expected a string")
            return cls(str(value), variables)

        return core_schema.no_info_plain_validator_function(
            build,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda s: _MASK),
            json_schema_input_schema=core_schema.str_schema(),
        )


class DatabaseUrl(Secret):
    """A database URL: only its password is secret, so messages can still name the host
    and database (`postgresql://kpi:***@db/kpi`) while the password never shows."""

    def __init__(self, secret_value: str, variables: tuple[str, ...] = ()) -> None:
        SecretStr.__init__(self, secret_value)
        self.variables = variables
        match = _URL_PASSWORD.search(secret_value)
        if match:
            remember(match["pw"])

    def _display(self) -> str:
        return redact(self.get())


def reveal(value: Secret | str | None) -> str | None:
    """The plain value of a secret or plain string."""
    if value is None:
        return None
    return value.get() if isinstance(value, Secret) else value
