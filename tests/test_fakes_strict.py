"""The fakes are as strict as the services' documentation on what our code sends; each rule
is tested here against the fake itself, over real HTTP.

- Notion (developers.notion.com, "Request limits", property values, query filters): a number
  property takes a number or null (not `true`); a text content is at most 2,000 characters;
  a date is ISO 8601; a filter's type is the property's; an unknown `start_cursor` is a 400
  validation_error (not a 500 that looks transient).
- GitHub ("Rate limits for the REST API"): 60 requests an hour for anonymous callers, 5,000
  per token; a spent limit is answered with 403 or 429 and x-ratelimit-* headers; the
  secondary limit (900 points a minute, a GET is one) with 403 or 429 and `retry-after`.
- Stripe ("Authentication"): the secret key as the Basic auth username (the default) or as a
  Bearer token.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kpi_collector.destinations.notion.fake import VERSION, FakeNotion
from kpi_collector.sources.github.fake import FakeGitHub, Repo
from kpi_collector.sources.stripe.fake import FakeStripe

NOTION_TOKEN = "secret_notion_fake_token"
GH_TOKEN = "ghp_fake_token_for_strict_tests"
SK = "sk_test_51StrictFakeKey000000000000abcd"


# --- Notion ------------------------------------------------------------------------------------


@pytest.fixture
def notion() -> Iterator[tuple[FakeNotion, str]]:
    with FakeNotion.serve(NOTION_TOKEN) as fake:
        database = fake.add_database()
        source = fake.source_of(database)
        fake.sources[source]["properties"].update(
            {
                "Value": {"id": "v", "name": "Value", "type": "number", "number": {}},
                "Day": {"id": "d", "name": "Day", "type": "date", "date": {}},
                "Note": {"id": "n", "name": "Note", "type": "rich_text", "rich_text": {}},
            }
        )
        yield fake, source


def _call(fake: FakeNotion, method: str, path: str, body: dict[str, Any]) -> requests.Response:
    headers = {"Authorization": f"Bearer {NOTION_TOKEN}", "Notion-Version": VERSION}
    return requests.request(method, fake.url + path, json=body, headers=headers, timeout=10)


def _page(fake: FakeNotion, source: str, **properties: Any) -> requests.Response:
    body = {"parent": {"data_source_id": source}, "properties": properties}
    return _call(fake, "POST", "/v1/pages", body)


def _text(content: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": content}}]


def _refused(response: requests.Response, message: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["object"], body["code"]) == ("error", "validation_error")
    assert message in body["message"]


def test_notion_takes_numbers_and_null_for_a_number(notion: tuple[FakeNotion, str]) -> None:
    fake, source = notion
    assert _page(fake, source, Value={"number": 12.5}).status_code == 200
    assert _page(fake, source, Value={"number": 0}).status_code == 200
    assert _page(fake, source, Value={"number": None}).status_code == 200


@pytest.mark.parametrize("value", [True, False, "12", [1]])
def test_notion_refuses_anything_else_for_a_number(
    notion: tuple[FakeNotion, str], value: Any
) -> None:
    fake, source = notion
    _refused(
        _page(fake, source, Value={"number": value}),
        "body.properties.Value.number should be a number or `null`",
    )


def test_notion_text_is_at_most_2000_characters(notion: tuple[FakeNotion, str]) -> None:
    fake, source = notion
    assert _page(fake, source, Note={"rich_text": _text("x" * 2000)}).status_code == 200
    _refused(
        _page(fake, source, Note={"rich_text": _text("ok") + _text("y" * 2001)}),
        "body.properties.Note.rich_text[1].text.content.length should be ≤ `2000`, "
        "instead was `2001`.",
    )
    _refused(
        _page(fake, source, Name={"title": _text("z" * 2001)}),
        "body.properties.Name.title[0].text.content.length should be ≤ `2000`",
    )


@pytest.mark.parametrize(
    "start", ["2026-11-30", "2026-11-30T09:15:00.000Z", "2026-11-30T09:15:00+01:00"]
)
def test_notion_takes_iso_dates(notion: tuple[FakeNotion, str], start: str) -> None:
    fake, source = notion
    assert _page(fake, source, Day={"date": {"start": start}}).status_code == 200


@pytest.mark.parametrize(
    "start", ["30/11/2026", "Nov 30, 2026", "2026-13-01", "1764460800", "today"]
)
def test_notion_refuses_other_dates(notion: tuple[FakeNotion, str], start: str) -> None:
    fake, source = notion
    _refused(
        _page(fake, source, Day={"date": {"start": start}}),
        "body.properties.Day.date.start should be a valid ISO 8601 date string",
    )


def test_notion_filters_must_match_the_property_type(notion: tuple[FakeNotion, str]) -> None:
    fake, source = notion
    assert _page(fake, source, Note={"rich_text": _text("a")}, Value={"number": 1}).ok
    path = f"/v1/data_sources/{source}/query"
    good = _call(fake, "POST", path, {"filter": {"property": "Note", "rich_text": {"equals": "a"}}})
    assert good.status_code == 200 and len(good.json()["results"]) == 1
    _refused(
        _call(fake, "POST", path, {"filter": {"property": "Note", "number": {"equals": 1}}}),
        "database property rich_text does not match filter number",
    )
    nested = {
        "and": [
            {"property": "Value", "number": {"equals": 1}},
            {"property": "Value", "date": {"equals": "2026-01-01"}},
        ]
    }
    _refused(
        _call(fake, "POST", path, {"filter": nested}),
        "database property number does not match filter date",
    )


def test_notion_answers_an_unknown_cursor_with_a_400(notion: tuple[FakeNotion, str]) -> None:
    fake, source = notion
    for i in range(3):
        assert _page(fake, source, Value={"number": i}).ok
    path = f"/v1/data_sources/{source}/query"
    first = _call(fake, "POST", path, {"page_size": 2}).json()
    assert first["has_more"] is True and len(first["results"]) == 2
    second = _call(fake, "POST", path, {"page_size": 2, "start_cursor": first["next_cursor"]})
    assert second.json()["has_more"] is False and len(second.json()["results"]) == 1
    _refused(
        _call(fake, "POST", path, {"start_cursor": "0f1e2d3c-0000-4000-8000-000000000000"}),
        "body.start_cursor should be a valid cursor",
    )


# --- GitHub ------------------------------------------------------------------------------------


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tokens={GH_TOKEN})
    fake.add(Repo("acme", "rocket", forks=3))
    with fake.serve() as url:
        fake.url = url
        yield fake


def _repo(fake: FakeGitHub, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(fake.url + "/repos/acme/rocket", headers=headers, timeout=10)


def test_github_gives_anonymous_callers_60_an_hour(github: FakeGitHub) -> None:
    first = _repo(github)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "60"
    assert first.headers["x-ratelimit-remaining"] == "59"
    assert first.headers["x-ratelimit-used"] == "1"
    assert first.headers["x-ratelimit-resource"] == "core"
    for _ in range(59):
        assert _repo(github).status_code == 200
    spent = _repo(github)
    assert spent.status_code == 403
    assert spent.headers["x-ratelimit-remaining"] == "0"
    assert int(spent.headers["x-ratelimit-reset"]) >= int(first.headers["x-ratelimit-reset"])
    assert spent.json()["message"].startswith("API rate limit exceeded for 127.0.0.1.")
    # a token has a budget of its own: 5,000
    authed = _repo(github, GH_TOKEN)
    assert authed.status_code == 200
    assert (authed.headers["x-ratelimit-limit"], authed.headers["x-ratelimit-remaining"]) == (
        "5000",
        "4999",
    )


def test_github_may_answer_a_spent_limit_with_429(github: FakeGitHub) -> None:
    github.limited_status = 429
    github.spend_quota(remaining=0, reset_in=600)
    spent = _repo(github, GH_TOKEN)
    assert spent.status_code == 429
    assert spent.headers["x-ratelimit-remaining"] == "0"
    assert spent.headers["x-ratelimit-limit"] == "5000"
    assert "API rate limit exceeded for user ID" in spent.json()["message"]


def test_github_answers_the_901st_request_of_a_minute_with_retry_after(
    github: FakeGitHub,
) -> None:
    """The secondary limit at its documented size, with the primary quota far from spent."""
    assert github.secondary_window == 60.0
    github.secondary_window = 3600.0  # a slow machine must not reach the minute's end mid-test
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {GH_TOKEN}"
        for _ in range(900):
            assert session.get(github.url + "/repos/acme/rocket", timeout=10).status_code == 200
        limited = session.get(github.url + "/repos/acme/rocket", timeout=10)
    assert limited.status_code == 403
    assert limited.json()["message"].startswith("You have exceeded a secondary rate limit.")
    assert 3000 < int(limited.headers["retry-after"]) <= 3600
    assert limited.headers["x-ratelimit-remaining"] == "4100"  # the refusal spent nothing
    assert limited.headers["x-ratelimit-limit"] == "5000"
    assert _repo(github).status_code == 200  # anonymous callers have a limit of their own


def test_github_may_answer_the_secondary_limit_with_429(github: FakeGitHub) -> None:
    github.limited_status = 429
    github.secondary_limit = 2
    answers = [_repo(github, GH_TOKEN) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert "secondary rate limit" in answers[2].json()["message"]
    assert int(answers[2].headers["retry-after"]) > 0


# --- Stripe ------------------------------------------------------------------------------------


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe(keys={SK})
    with fake.serve() as url:
        fake.url = url
        yield fake


def _subscriptions(fake: FakeStripe, authorization: str | None) -> requests.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return requests.get(fake.url + "/v1/subscriptions", headers=headers, timeout=10)


def _basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_stripe_takes_the_key_by_basic_auth_or_bearer(stripe: FakeStripe) -> None:
    for authorization in (_basic(SK), _basic(SK, "ignored"), f"Bearer {SK}"):
        answer = _subscriptions(stripe, authorization)
        assert answer.status_code == 200, (authorization, answer.text)
        assert answer.json()["object"] == "list"


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "You did not provide an API key"),
        (_basic(""), "You did not provide an API key"),
        ("Basic not-base64!", "You did not provide an API key"),
        (_basic("sk_test_51WrongKey0000000000000000wxyz"), "Invalid API Key provided: sk_test_"),
        ("Bearer sk_test_51WrongKey0000000000000000wxyz", "Invalid API Key provided: sk_test_"),
    ],
)
def test_stripe_refuses_a_missing_or_wrong_key(
    stripe: FakeStripe, authorization: str | None, message: str
) -> None:
    answer = _subscriptions(stripe, authorization)
    assert answer.status_code == 401
    assert answer.json()["error"]["message"].startswith(message)
