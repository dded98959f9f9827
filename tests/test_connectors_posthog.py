"""`type: posthog` against a local copy of its query API: active users over whole days ending
yesterday, errors, and daily/weekly/monthly active users for backfill."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kpi_collector.errors import ExtractError, HttpError
from kpi_collector.sources.posthog import PostHog
from kpi_collector.sources.posthog.fake import FakePostHog
from tests.fakes.collect import backfill, collect, outcome
from tests.fakes.data import EVENTS, NOW, TODAY, WINDOWS, YESTERDAY, expected

PH_KEY = "phx_fakePersonalApiKey0123456789abcdef"


@pytest.fixture
def posthog():
    fake = FakePostHog(
        keys={PH_KEY: {"query:read"}, "phx_noscope_key_000000": {"insight:read"}},
        events=EVENTS,
        today=TODAY,
    )
    with fake.serve():
        yield fake


def posthog_source(fake: FakePostHog, **kwargs) -> PostHog:
    return PostHog(
        project_id=kwargs.pop("project_id", 4242),
        api_key=kwargs.pop("api_key", PH_KEY),
        api_url=fake.url,
        **kwargs,
    )


def test_posthog_active_users_in_one_query(posthog: FakePostHog) -> None:
    values = collect(posthog_source(posthog), now=NOW)
    assert values == {m: expected(first, YESTERDAY) for m, first in WINDOWS.items()}
    assert values["dau"] > 0 and values["mau"] > values["wau"] > values["dau"]
    ((request),) = posthog.requests
    assert request.headers["Authorization"] == f"Bearer {PH_KEY}"
    assert request.path == "/api/projects/4242/query/"


def test_posthog_event_goes_in_as_a_value_not_into_the_sql(posthog: FakePostHog) -> None:
    values = collect(posthog_source(posthog, event="signup", metrics=["mau"]), now=NOW)
    assert values == {"mau": expected(WINDOWS["mau"], YESTERDAY, "signup")}
    (sent,) = posthog.queries
    assert sent["query"]["values"] == {"event": "signup"} and "signup" not in sent["query"]["query"]


def test_posthog_errors(posthog: FakePostHog) -> None:
    wrong = "phx_wrongPersonalApiKey_zzzzzzzzzzzz"
    result = outcome(posthog_source(posthog, api_key=wrong), now=NOW)
    ((_, message, _),) = result.errors
    assert "PostHog refused the credentials (HTTP 401: Personal API key found in request" in message
    assert "${POSTHOG_API_KEY}" in message and wrong not in message
    with pytest.raises(HttpError, match=r"needs the Query Read scope \(query:read\)"):
        collect(posthog_source(posthog, api_key="phx_noscope_key_000000"), now=NOW)
    with pytest.raises(HttpError, match=r"PostHog has no project 99 .*eu\.posthog\.com"):
        collect(posthog_source(posthog, project_id="99"), now=NOW)


def test_posthog_throttled_then_answers(posthog: FakePostHog) -> None:
    posthog.inject(
        429,
        {
            "type": "throttled_error",
            "code": "throttled",
            "detail": "Request was throttled. Expected available in 1 second.",
            "attr": None,
        },
        headers={"Retry-After": "1"},
    )
    assert collect(posthog_source(posthog, metrics=["dau"]), now=NOW) == {
        "dau": expected(YESTERDAY, YESTERDAY)
    }


@pytest.mark.parametrize("event", [None, "signup"])
def test_posthog_backfill_daily_weekly_monthly_active_users(
    posthog: FakePostHog, event: str | None
) -> None:
    since = TODAY - timedelta(days=90)
    points = backfill(posthog_source(posthog, event=event), since, now=NOW)
    by: dict[str, dict[date, float]] = {}
    for p in points:
        by.setdefault(p.metric, {})[p.ts.date()] = p.value
    assert set(by) == {"dau", "wau", "mau"}
    first_day = TODAY - timedelta(days=60)
    for metric, span in {"dau": 1, "wau": 7, "mau": 30}.items():
        days = by[metric]
        assert min(days) == first_day and max(days) == YESTERDAY  # nor before, nor today
        assert len(days) == (YESTERDAY - first_day).days + 1  # quiet days count 0
        for day, value in days.items():
            assert value == expected(day - timedelta(days=span - 1), day, event), (metric, day)
    assert any(by["mau"][d] > by["wau"][d] > by["dau"][d] for d in by["dau"])
    (sent,) = posthog.queries
    assert sent["query"]["values"] == {
        "since": since.isoformat(),
        **({"event": event} if event else {}),
    }
    assert "LIMIT 10000" in sent["query"]["query"]


def test_posthog_backfill_from_a_day_inside_the_data(posthog: FakePostHog) -> None:
    """A window reaches back before `since`: a day's wau and mau still count those persons."""
    since = TODAY - timedelta(days=20)
    points = backfill(posthog_source(posthog, metrics=["mau"]), since, now=NOW)
    values = {p.ts.date(): p.value for p in points}
    assert min(values) == since and {p.metric for p in points} == {"mau"}
    assert values[since] == expected(since - timedelta(days=29), since)


def test_posthog_backfill_ends_at_the_projects_yesterday(posthog: FakePostHog) -> None:
    """kpi runs in Berlin, the project counts days in Los Angeles: at 07:00 in Berlin, it is
    still yesterday in Los Angeles, which PostHog has not counted; that day gets no value,
    not dau = wau = mau = 0."""
    posthog.timezone = "America/Los_Angeles"
    posthog.today = YESTERDAY
    now = NOW - timedelta(hours=1)  # 2026-03-10 07:00 in Berlin, 2026-03-09 23:00 in LA
    since = TODAY - timedelta(days=10)
    points = backfill(posthog_source(posthog), since, now=now, tz="Europe/Berlin")
    by: dict[str, dict[date, float]] = {}
    for p in points:
        by.setdefault(p.metric, {})[p.ts.date()] = p.value
    last = YESTERDAY - timedelta(days=1)
    for metric, span in {"dau": 1, "wau": 7, "mau": 30}.items():
        assert max(by[metric]) == last, metric
        assert by[metric][last] == expected(last - timedelta(days=span - 1), last) > 0


@pytest.mark.parametrize("event", ["pageviews", "PageView"])
def test_posthog_a_misspelt_event_is_an_error_naming_it_not_zero(
    posthog: FakePostHog, event: str
) -> None:
    result = outcome(posthog_source(posthog, event=event), now=NOW)
    assert result.values == {}
    ((metric, message, transient),) = result.errors
    assert metric is None and not transient
    assert f"PostHog project 4242 has never received an event {event!r}" in message
    assert "did you mean 'pageview'" in message and "check `event:` of source" in message
    (seen, _) = posthog.queries[1:]
    assert seen["query"]["values"] == {"event": event} and event not in seen["query"]["query"]
    with pytest.raises(ExtractError, match=f"never received an event {event!r}"):
        backfill(posthog_source(posthog, event=event), TODAY - timedelta(days=5), now=NOW)


def test_posthog_an_event_quiet_in_every_window_is_zero(posthog: FakePostHog) -> None:
    """An event last sent long ago: 0 for each window (it exists), and the backfill of
    recent days gives zeros for no day (no activity), without an error."""
    long_ago = NOW - timedelta(days=200)
    posthog.events = [*EVENTS, (long_ago, "p1", "beta_signup")]
    values = collect(posthog_source(posthog, event="beta_signup"), now=NOW)
    assert values == {"dau": 0.0, "wau": 0.0, "mau": 0.0}
    points = backfill(
        posthog_source(posthog, event="beta_signup"), TODAY - timedelta(days=5), now=NOW
    )
    assert points == []


@pytest.mark.parametrize(
    ("api_url", "other"),
    [(None, "https://eu.posthog.com"), ("https://eu.posthog.com", "https://us.posthog.com")],
)
def test_a_refused_cloud_key_names_the_other_region(api_url: str | None, other: str) -> None:
    """An EU Cloud project's key sent to US Cloud (the default `api_url`) is refused as an
    invalid key: the message sent people to their key alone. It names the other region's
    `api_url` too (a self-hosted PostHog has none)."""
    from kpi_collector.collect.http import Response

    body = (
        b'{"type": "authentication_error", "code": "authentication_failed", "detail": '
        b'"Personal API key found in request Authorization header is invalid.", "attr": null}'
    )
    config = {"project_id": "4242", "api_key": "phx_someKey_000000000000"}
    source = PostHog(**config, **({"api_url": api_url} if api_url else {}))
    url = f"{source.api_url}/api/projects/4242/query/"
    refused = Response(401, url, {"Content-Type": "application/json"}, body)
    assert f"set `api_url: {other}`" in str(source.http_error(refused))
    hosted = PostHog(**config, api_url="https://posthog.example.com")
    assert "api_url" not in str(hosted.http_error(refused))
