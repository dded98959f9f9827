"""The models of a source's `auth:` and `login:`, checked when the config is read. Their
behaviour is in `collect.http.PlainAuth` and `PlainLoginForm`, which a run from the config
cache uses without pydantic."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from kpi_collector.collect.http import PlainAuth, PlainLoginForm, remember_trimmed
from kpi_collector.secrets import Secret, remember_basic, reveal

__all__ = ["Auth", "LoginForm"]


class Auth(PlainAuth, BaseModel):
    """How a source proves who it is; exactly one of the four ways (else a ValueError, which
    config loading turns into a ConfigError):

    - `bearer`: a token sent as `Authorization: Bearer <token>` (RFC 6750);
    - `basic`: (user, password) sent as `Authorization: Basic ...` (RFC 7617);
    - `header`: headers to send as they are, e.g. {"X-Api-Key": "${KEY}"};
    - `query`: query parameters to add to every URL, e.g. {"api_key": "${KEY}"}.

    Values are Secrets (`${ENV}` references), never shown in errors or output.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)
    bearer: Secret | None = None
    basic: tuple[str | Secret, Secret] | None = None  # (user, password); a secret user too
    header: dict[str, Secret] | None = None
    query: dict[str, Secret] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        given = [k for k in ("bearer", "basic", "header", "query") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of bearer, basic, header, query")
        if self.basic is not None:  # a server may echo the header: base64 of user:password
            user, password = self.basic
            remember_basic(reveal(user) or "", password.get())
        secrets = [self.bearer, *(self.basic or ()), *(self.header or {}).values()]
        remember_trimmed(reveal(value) or "" for value in [*secrets, *(self.query or {}).values()])
        return self


class LoginForm(PlainLoginForm, BaseModel):
    """A login form to fill before reading a page: the page at `url` holds the form, `fields`
    are the inputs to fill by name (secrets allowed, e.g. {"username": "me", "password":
    "${PASS}"}); the form's other inputs (hidden CSRF tokens) are posted as the page gave
    them. The optional CSS checks tell success from failure (see `HttpSession.login`)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    url: str
    fields: dict[str, Secret]
    form: str | None = None  # CSS selector of the form; default: the one with a password input
    submit: str | None = None  # the submit button to press (name, label or CSS); default: the first
    submit_url: str | None = None  # where to send it, when the form's action is not right
    success: str | None = None  # CSS selector that is present only when logged in
    failure: str | None = None  # CSS selector that is present only when the login failed

    @field_validator("fields")
    @classmethod
    def _trimmed(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        remember_trimmed(secret.get() for secret in value.values())
        return value

    @field_validator("form", "success", "failure")
    @classmethod
    def _css(cls, value: str | None) -> str | None:
        if value is not None:
            from lxml.cssselect import CSSSelector

            try:
                CSSSelector(value)
            except Exception as exc:  # SelectorSyntaxError, ExpressionError (unsupported)
                raise ValueError(f"{value!r} is not a CSS selector: {exc}") from None
        return value
