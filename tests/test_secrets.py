"""Redaction of secret values (kpi_collector.secrets), with every expected text worked out by
hand: base64("a b/c") is YSBiL2M= and base64("user:pw12") is dXNlcjpwdzEy (RFC 4648);
percent-encoding per RFC 3986; JSON escapes per RFC 8259. The conftest fixture gives each
test the registry it found, so what one test remembers never masks another's text."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from kpi_collector.secrets import (
    DatabaseUrl,
    FromVariables,
    Secret,
    encodings,
    redact,
    redact_cut,
    remember,
    remember_basic,
    remember_values,
    reveal,
)


def test_a_word_of_up_to_eight_letters_is_masked_only_as_a_value() -> None:
    """A secret that is a plain word or number of at most 8 characters (or any value under
    4) is masked where it stands as a value, not inside a sentence (issue 13 §5); a longer
    word, or a mixed value, wherever it appears."""
    remember("abc")
    assert redact("abc xyz") == "abc xyz"
    assert redact("state=abc") == "state=***"
    remember("wxyz")
    assert redact("a wxyz b") == "a wxyz b"
    assert redact("Bearer wxyz, 'wxyz', /p/wxyz") == "Bearer ***, '***', /p/***"
    remember("eightchr")  # 8 letters: still a word
    assert redact("an eightchr here, key=eightchr") == "an eightchr here, key=***"
    remember("ninechars")  # 9 letters: masked anywhere
    assert redact("the ninechars leaked") == "the *** leaked"
    remember("wx1z")  # mixed: masked anywhere
    assert redact("a wx1z b") == "a *** b"


def test_every_encoding_of_a_value() -> None:
    assert encodings("a b/c") == {
        "a b/c",
        "a%20b%2Fc",
        "a+b%2Fc",
        "a%20b/c",
        "YSBiL2M",
        "a b\\/c",  # JSON with `/` escaped (PHP)
    }
    assert encodings('ab"cd') >= {'ab\\"cd', "ab&quot;cd", "ab%22cd"}
    assert encodings("pässwörd") >= {"p\\u00e4ssw\\u00f6rd", "p%C3%A4ssw%C3%B6rd", "pässwörd"}
    assert encodings("a~b!") >= {"a~b!", "a~b%21"}  # yarl keeps ! in a path; quote() does not
    assert encodings("ab") == {"ab", "YWI"}  # short: only its own forms (masked as a value)


def test_remembered_values_are_masked_in_every_form() -> None:
    remember("a b/c")
    assert redact("GET /x?q=a%20b%2Fc and a+b%2Fc and YSBiL2M= and a b/c") == (
        "GET /x?q=*** and *** and ***= and ***"
    )


def test_the_longest_secret_is_masked_first() -> None:
    remember("ab-d")
    remember("ab-defgh")
    assert redact("ab-defgh ab-d") == "*** ***"


def test_remember_values_skips_numbers_booleans_and_short_literals() -> None:
    remember_values(
        {
            "n": "12",
            "f": "-3.5",
            "b": "TRUE",
            "short": "open",
            "seven": "sevench",
            "eight": "eightchr",
            "s": Secret("shh!"),
        }
    )
    # `eightchr` (a literal of 8 characters) is remembered, `sevench` is not; as a plain word
    # of 8 letters it is masked where it stands as a value, not in a sentence
    assert redact("12 -3.5 TRUE open sevench eightchr shh!") == (
        "12 -3.5 TRUE open sevench eightchr ***"
    )
    assert redact("a=sevench b=eightchr") == "a=sevench b=***"


def test_a_short_value_from_a_variable_is_hidden() -> None:
    remember_values({"state": Secret("opn1")})
    assert redact("state=opn1") == "state=***"


def test_basic_credentials() -> None:
    remember_basic("user", "pw12")
    assert redact("Authorization: Basic dXNlcjpwdzEy") == "Authorization: Basic ***"
    assert redact("user:pw12 and pw12") == "*** and ***"
    assert redact("user alone") == "user alone"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://kpi:hunter2@db/kpi", "postgresql://kpi:***@db/kpi"),
        ("mysql+pymysql://root:p4ss@127.0.0.1:3306/x", "mysql+pymysql://root:***@127.0.0.1:3306/x"),
        ("https://:tok@host/p", "https://:***@host/p"),
        ("https://x.com/a?token=abc&b=1", "https://x.com/a?token=***&b=1"),
        ("https://x.com/a?b=1&API_KEY=zz#frag", "https://x.com/a?b=1&API_KEY=***#frag"),
        (
            "GET /q?sig=s1&signature=s2&apikey=k&key=v&secret=z&password=w&access_token=t",
            "GET /q?sig=***&signature=***&apikey=***&key=***&secret=***&password=***&access_token=***",
        ),
        (
            "no secret here: user@example.com, ratio 3:4",
            "no secret here: user@example.com, ratio 3:4",
        ),
        ("?monkey=1", "?monkey=1"),
        ("", ""),
    ],
)
def test_url_passwords_and_credential_parameters(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a password written as is, not percent-encoded: SQLAlchemy takes a `/` or `:` into
        # the password (up to the first `@`), so it is one; an `@` in it ends at the last `@`
        (
            "postgresql+psycopg://kpi:pw/xyz12345@127.0.0.1:1/kpi",
            "postgresql+psycopg://kpi:***@127.0.0.1:1/kpi",
        ),
        (
            "cannot open store 'postgresql+psycopg://kpi:p@ss12345@127.0.0.1:1/kpi': failed",
            "cannot open store 'postgresql+psycopg://kpi:***@127.0.0.1:1/kpi': failed",
        ),
        ("mysql+pymysql://kpi:p@ss:w/rd%x@db:3306/k", "mysql+pymysql://kpi:***@db:3306/k"),
        ("redis://:a/b@c@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        # a web address: its authority ends at the first `/` (a port, then a path)
        ("https://host:8443/@scope/pkg", "https://host:8443/@scope/pkg"),
        ("https://u:p@w@host/a", "https://u:***@host/a"),
    ],
)
def test_a_url_password_holding_at_colon_slash_or_percent_never_shows(
    text: str, expected: str
) -> None:
    assert redact(text) == expected


def test_redact_cut_redacts_before_it_cuts() -> None:
    assert redact_cut("abcdefghij", 5) == "abcd…"
    assert redact_cut("abcde", 5) == "abcde"
    remember("secretvalue")
    assert redact_cut("x secretvalue", 6) == "x ***"
    assert redact_cut("secretvalue and more", 8) == "*** and…"


def _model() -> type[BaseModel]:
    """A config model built when the test runs (the secret types' schema is made then)."""

    class Model(BaseModel):
        token: Secret
        url: DatabaseUrl | None = None

    return Model


def test_a_secret_never_shows() -> None:
    secret = Secret("topsecret", ("TOKEN",))
    assert (str(secret), repr(secret), secret.get(), secret.variables) == (
        "***",
        "Secret('***')",
        "topsecret",
        ("TOKEN",),
    )
    assert redact("the topsecret leaked") == "the *** leaked"
    Model = _model()
    model = Model(token="abcd1234")  # type: ignore[arg-type]
    assert model.model_dump() == {"token": "***", "url": None}
    assert model.token.get() == "abcd1234"
    assert Model(token=12345).token.get() == "12345"  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="expected a string"):
        Model(token=["x"])  # type: ignore[arg-type]


def test_values_from_variables_are_hidden_by_a_secret_not_by_a_database_url() -> None:
    built = FromVariables("https://hooks.local/T000/abcd9876")
    built.values = ("abcd9876",)
    built.variables = ("HOOK",)
    Model = _model()
    model = Model(token=built)  # type: ignore[arg-type]
    assert model.token.variables == ("HOOK",)
    assert redact("POST /T000/abcd9876 failed") == "POST /T000/*** failed"
    url = FromVariables("postgresql://kpi:pw1234@db/kpi")
    url.values = ("db",)
    db = Model(token="tttt", url=url).url  # type: ignore[arg-type]
    assert db is not None and str(db) == "postgresql://kpi:***@db/kpi"
    assert redact("host db, password pw1234") == "host db, password ***"


def test_reveal() -> None:
    assert reveal(None) is None
    assert reveal("plain") == "plain"
    assert reveal(Secret("abcd")) == "abcd"


def test_a_short_value_adds_no_form_however_long() -> None:
    remember("abc")  # its base64 "YWJj" is 4 long, but the value is too short to hide
    assert redact("abc YWJj") == "abc YWJj"


def test_long_numbers_are_shown_but_long_words_are_not() -> None:
    remember_values({"n": "123456789", "f": "-1234.5678", "w": "secretword"})
    assert redact("123456789 -1234.5678 secretword") == "123456789 -1234.5678 ***"


def test_forms_that_only_one_encoding_gives() -> None:
    assert "a%20b:c%21" in encodings("a b:c!")  # "/:@" kept, "!" encoded
    assert "a%20b:c!" in encodings("a b:c!")  # a URL path as yarl sends it
    assert 'pä\\"s' in encodings('pä"s')  # JSON-escaped, non-ASCII kept
    assert 'p\\u00e4\\"s' in encodings('pä"s')  # JSON-escaped, ASCII only
    assert "YWJXYWJX" in encodings("abWabW")  # base64 that ends in X keeps it


def test_a_shorter_secret_inside_a_longer_one_is_masked_after_it() -> None:
    remember("bc-e")  # sorts after "ab-defgh" as text, but is shorter
    remember("ab-defgh")
    assert redact("ab-defgh bc-e") == "*** ***"


def test_a_secret_keeps_its_variables_through_a_model() -> None:
    built = FromVariables("tok-from-env-1")
    built.variables = ("TOKEN",)
    Model = _model()
    model = Model(token=built)  # type: ignore[arg-type]
    assert (model.token.variables, model.token.get()) == (("TOKEN",), "tok-from-env-1")
    again = Model(token=model.token)  # a Secret given again keeps its value and variables
    assert (again.token.get(), again.token.variables) == ("tok-from-env-1", ("TOKEN",))
    with pytest.raises(ValidationError) as caught:
        Model(token=1.5)  # type: ignore[arg-type]
    assert "expected a string" in str(caught.value)


def test_a_secret_urls_token_is_hidden_when_echoed_alone() -> None:
    """A service that refuses a webhook often echoes part of its URL: the path, the token
    segment alone, a query value. Each is as secret as the URL (issue: a Slack webhook's
    `/services/T…/B…/<token>` echoed in an error body reached the output and the store)."""
    Secret("https://hooks.example.com/services/T0ABC1234/B0DEF5678/aBcDeFgHiJkLmNoPqRsTuVwX")
    Secret("https://discord.example/api/webhooks/123456789012345678/tok3n-Part_of-the-URL")
    Secret("https://fn.example.net/api/trigger?code=Zx81abcDEF&name=kpis")
    Secret("https://bot:pa55w0rd-x@relay.example.org/hook")
    echoed = (
        "no hook at /services/T0ABC1234/B0DEF5678/aBcDeFgHiJkLmNoPqRsTuVwX; "
        "token aBcDeFgHiJkLmNoPqRsTuVwX is revoked; "
        "'tok3n-Part_of-the-URL' unknown; code Zx81abcDEF expired; pa55w0rd-x refused"
    )
    assert redact(echoed) == (
        "no hook at /services/***/***/***; token *** is revoked; "
        "'***' unknown; code *** expired; *** refused"
    )
    # the URL's ordinary words and numbers stay readable around them
    text = "the services and api webhooks of relay.example.org, id 123456789012345678, kpis"
    assert redact(text) == text


def test_a_secret_with_a_line_end_around_it_is_masked_as_it_is_sent() -> None:
    # a token read from a file written by `echo` (or a variable set with its newline) goes
    # out trimmed in a header, a form or a URL; a server echoing that form showed it
    remember("tok3n-Zq81xw\n")
    assert (
        redact("invalid token tok3n-Zq81xw for this project")
        == "invalid token *** for this project"
    )
    assert redact("Authorization: Bearer dG9rM24tWnE4MXh3") == "Authorization: Bearer ***"  # base64
    remember("  https://hooks.example.test/services/T0001/B0002/abcdefghijklmnop \n")
    assert redact("no such hook abcdefghijklmnop") == "no such hook ***"


def test_a_secret_echoed_as_urllib_quotes_it_or_with_escaped_slashes_is_masked() -> None:
    # `quote(value)` keeps `/` (urllib's default) and PHP's json_encode writes `\/`: both
    # forms left a password readable on the dashboard
    remember("p@ss/word+Secret1")
    assert redact("GET /login?next=p%40ss/word%2BSecret1") == "GET /login?next=***"
    assert (
        redact('{"error": "bad password p@ss\\/word+Secret1"}') == '{"error": "bad password ***"}'
    )
