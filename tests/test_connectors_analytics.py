"""`type: posthog` and `type: mixpanel` against local copies of their query APIs: active users
over whole days ending yesterday, errors, and daily active users for backfill."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from kpi_collector.errors import HttpError
from kpi_collector.sources.mixpanel import Mixpanel
from kpi_collector.sources.mixpanel.fake import FakeMixpanel
from kpi_collector.sources.posthog import PostHog
from kpi_collector.sources.posthog.fake import FakePostHog
from tests.fakes.collect import backfill, collect, outcome

TODAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)
PH_KEY = "phx_fakePersonalApiKey0123456789abcdef"
MP_SECRET = "mp-fake-service-account-secret-42"


def make_events() -> list[tuple[datetime, str, str]]:
    """Person p<i> is active on days i..i+k; 'signup' only on the first day; plus today's events."""
    events = []
    for i in range(60):
        first = TODAY - timedelta(days=60 - i)
        for k in range(i % 5 + 1):
            day = first + timedelta(days=k)
            if day < TODAY:
                events.append(
                    (
                        datetime(day.year, day.month, day.day, 10, tzinfo=UTC),
                        f"p{i}",
                        "signup" if k == 0 else "pageview",
                    )
                )
    events.append(
        (datetime(2026, 3, 10, 6, tzinfo=UTC), "early-bird", "pageview")
    )  # today: not counted
    return events


EVENTS = make_events()


def expected(first: date, last: date, event: str | None = None) -> int:
    return len(
        {p for t, p, e in EVENTS if first <= t.date() <= last and (event is None or e == event)}
    )


YESTERDAY = TODAY - timedelta(days=1)
WINDOWS = {
    "dau": YESTERDAY,
    "wau": YESTERDAY - timedelta(days=6),
    "mau": YESTERDAY - timedelta(days=29),
}


@pytest.fixture
def posthog():
    fake = FakePostHog(
        keys={PH_KEY: {"query:read"}, "phx_noscope_key_000000": {"insight:read"}},
        events=EVENTS,
        today=TODAY,
    )
    with fake.serve():
        yield fake


@pytest.fixture
def mixpanel():
    fake = FakeMixpanel(
        accounts={"kpi.bot.1234.mp-service-account": MP_SECRET},
        projects={777: {"kpi.bot.1234.mp-service-account"}, 778: set()},
        events=EVENTS,
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


def mixpanel_source(fake: FakeMixpanel, **kwargs) -> Mixpanel:
    return Mixpanel(
        project_id=kwargs.pop("project_id", 777),
        username="kpi.bot.1234.mp-service-account",
        secret=kwargs.pop("secret", MP_SECRET),
        api_url=fake.url,
        **kwargs,
    )


# posthog ----------------------------------------------------------------------------------------


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


# mixpanel ---------------------------------------------------------------------------------------


def test_mixpanel_any_event_through_jql(mixpanel: FakeMixpanel) -> None:
    values = collect(mixpanel_source(mixpanel), now=NOW)
    assert values == {m: expected(first, YESTERDAY) for m, first in WINDOWS.items()}
    ((request),) = mixpanel.requests
    assert request.path == "/api/query/jql" and request.query["project_id"] == "777"
    assert request.headers["Authorization"].startswith("Basic ")


def test_mixpanel_one_event_through_segmentation_intervals(mixpanel: FakeMixpanel) -> None:
    values = collect(mixpanel_source(mixpanel, event="pageview"), now=NOW)
    assert values == {m: expected(first, YESTERDAY, "pageview") for m, first in WINDOWS.items()}
    intervals = sorted(r.query["interval"] for r in mixpanel.requests)
    assert intervals == ["1", "30", "7"] and all(
        r.query["type"] == "unique" for r in mixpanel.requests
    )


def test_mixpanel_errors(mixpanel: FakeMixpanel) -> None:
    result = outcome(mixpanel_source(mixpanel, secret="wrong-secret-value-123"), now=NOW)
    ((_, message, _),) = result.errors
    assert "Mixpanel refused the credentials (HTTP 401: Invalid credentials)" in message
    assert "`username` and `secret`" in message and "${MIXPANEL_SECRET}" in message
    assert "wrong-secret-value-123" not in message
    with pytest.raises(HttpError, match="needs a role in project 778"):
        collect(mixpanel_source(mixpanel, project_id=778), now=NOW)


def test_mixpanel_query_limit_then_answers(mixpanel: FakeMixpanel) -> None:
    mixpanel.inject(
        429, {"error": "Query rate limit exceeded", "status": "error"}, headers={"Retry-After": "1"}
    )
    assert collect(mixpanel_source(mixpanel, metrics=["wau"]), now=NOW)["wau"] == expected(
        WINDOWS["wau"], YESTERDAY
    )


@pytest.mark.parametrize("event", [None, "pageview"])
def test_mixpanel_backfill_daily_active_users(mixpanel: FakeMixpanel, event: str | None) -> None:
    points = backfill(mixpanel_source(mixpanel, event=event), TODAY - timedelta(days=20), now=NOW)
    by = {p.ts.date(): p.value for p in points}
    assert min(by) == TODAY - timedelta(days=20) and max(by) == YESTERDAY
    assert all(by[d] == expected(d, d, event) for d in by)
    assert mixpanel.calls() == 1
    (request,) = mixpanel.requests
    if event is None:
        assert request.path == "/api/query/jql"
    else:
        assert request.path == "/api/query/segmentation" and request.query["unit"] == "day"
