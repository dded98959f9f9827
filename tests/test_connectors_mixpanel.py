"""`type: mixpanel` against a local copy of its query API: active users over whole days ending
yesterday through JQL or Segmentation, errors, and daily active users for backfill."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kpi_collector.errors import ExtractError, HttpError
from kpi_collector.sources.mixpanel import Mixpanel
from kpi_collector.sources.mixpanel.fake import FakeMixpanel
from tests.fakes.collect import backfill, collect, outcome
from tests.fakes.data import EVENTS, NOW, TODAY, WINDOWS, YESTERDAY, expected

MP_SECRET = "mp-fake-service-account-secret-42"


@pytest.fixture
def mixpanel():
    fake = FakeMixpanel(
        accounts={"kpi.bot.1234.mp-service-account": MP_SECRET},
        projects={777: {"kpi.bot.1234.mp-service-account"}, 778: set()},
        events=EVENTS,
        today=TODAY,
    )
    with fake.serve():
        yield fake


def mixpanel_source(fake: FakeMixpanel, **kwargs) -> Mixpanel:
    return Mixpanel(
        project_id=kwargs.pop("project_id", 777),
        username="kpi.bot.1234.mp-service-account",
        secret=kwargs.pop("secret", MP_SECRET),
        api_url=fake.url,
        **kwargs,
    )


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


@pytest.mark.parametrize("event", [None, "pageview"])
def test_mixpanel_never_reads_the_utc_day_under_way(
    mixpanel: FakeMixpanel, event: str | None
) -> None:
    """JQL's days are UTC. kpi runs in Tokyo at 05:00 on the 10th: its yesterday, the 9th, is
    the UTC day under way. The windows end on the 8th, and so does backfill."""
    now = NOW - timedelta(hours=11)  # 2026-03-09 20:00 UTC, 2026-03-10 05:00 in Tokyo
    last = YESTERDAY - timedelta(days=1)
    mixpanel.events = [*EVENTS, (now - timedelta(hours=1), "night-owl", "pageview")]
    values = collect(mixpanel_source(mixpanel, event=event), now=now, tz="Asia/Tokyo")
    assert values == {
        m: expected(first - timedelta(days=1), last, event) for m, first in WINDOWS.items()
    }
    points = backfill(
        mixpanel_source(mixpanel, event=event),
        TODAY - timedelta(days=5),
        now=now,
        tz="Asia/Tokyo",
    )
    by = {p.ts.date(): p.value for p in points}
    assert max(by) == last and by[last] == expected(last, last, event)


@pytest.mark.parametrize("event", ["pageviews", "PAGEVIEW"])
def test_a_misspelt_event_is_an_error_naming_it_not_zero(
    mixpanel: FakeMixpanel, event: str
) -> None:
    """Segmentation answers an event nobody sends with no series, as it answers a quiet one:
    the project's event names tell them apart."""
    result = outcome(mixpanel_source(mixpanel, event=event), now=NOW)
    assert result.values == {}
    ((metric, message, transient),) = result.errors
    assert metric is None and not transient
    assert f"Mixpanel project 777 has no event {event!r} in the last 31 days" in message
    assert "did you mean 'pageview'?" in message and "check `event:` of source" in message
    with pytest.raises(ExtractError, match=f"no event {event!r}"):
        backfill(mixpanel_source(mixpanel, event=event), TODAY - timedelta(days=5), now=NOW)


def test_a_known_event_nobody_sent_in_the_window_is_zero(mixpanel: FakeMixpanel) -> None:
    """An event sent today only (after the windows' last day): 0 for each window, no error."""
    mixpanel.events = [*EVENTS, (NOW - timedelta(hours=1), "p1", "upgrade")]
    values = collect(mixpanel_source(mixpanel, event="upgrade"), now=NOW)
    assert values == {"dau": 0.0, "wau": 0.0, "mau": 0.0}
    names = [r for r in mixpanel.requests if r.path == "/api/query/events/names"]
    assert len(names) == 1 and names[0].query["project_id"] == "777"


def test_a_project_behind_utc_is_not_read_before_its_day_ends(mixpanel: FakeMixpanel) -> None:
    """Segmentation counts the project's days. kpi runs (in UTC) at 04:00 on the 10th: in
    Los Angeles it is 21:00 on the 9th, which was read as a complete day, its users so far
    stored as the 9th's. With `project_timezone:` the windows end on the 8th there."""
    mixpanel.timezone = "America/Los_Angeles"
    now = NOW - timedelta(hours=3)  # 2026-03-10 04:00 UTC, 2026-03-09 21:00 in Los Angeles
    source = mixpanel_source(mixpanel, event="pageview", project_timezone="America/Los_Angeles")
    collect(source, now=now)
    last = YESTERDAY - timedelta(days=1)
    assert {r.query["to_date"] for r in mixpanel.requests} == {last.isoformat()}
    points = backfill(source, TODAY - timedelta(days=5), now=now)
    assert max(p.ts.date() for p in points) == last
    with pytest.raises(ValueError, match="not a time zone"):
        mixpanel_source(mixpanel, project_timezone="Pacific Time")


def test_the_windows_bucket_is_read_whatever_day_it_is_keyed_by(
    mixpanel: FakeMixpanel,
) -> None:
    """The window's one bucket was read at its first day only: keyed by another day (its
    last), the count read 0, silently, for an event Mixpanel knows. It is read as it is;
    an answer split into several buckets (unique users cannot be added) is an error."""
    one = {"data": {"series": [], "values": {"pageview": {YESTERDAY.isoformat(): 17}}}}
    mixpanel.inject(200, one, path="segmentation")
    assert collect(mixpanel_source(mixpanel, event="pageview", metrics=["wau"]), now=NOW) == {
        "wau": 17.0
    }
    two = {"data": {"values": {"pageview": {"2026-03-03": 5, "2026-03-06": 9}}}}
    mixpanel.inject(200, two, path="segmentation")
    result = outcome(mixpanel_source(mixpanel, event="pageview", metrics=["wau"]), now=NOW)
    ((_, message, _),) = result.errors
    assert "split the 7 days to 2026-03-09 into 2 buckets" in message


def test_a_segmentation_answer_without_values_is_an_error_not_0(mixpanel: FakeMixpanel) -> None:
    """An answer without `data.values` read as "no series": 0 users, stored."""
    mixpanel.inject(200, {"legend_size": 0}, path="segmentation")
    result = outcome(mixpanel_source(mixpanel, event="pageview", metrics=["dau"]), now=NOW)
    assert result.values == {}
    ((_, message, _),) = result.errors
    assert "the segmentation answer has no data.values" in message


def test_the_windows_are_stamped_with_the_day_they_end(mixpanel: FakeMixpanel) -> None:
    """`kpi run` stored the windows ending yesterday (or the day before, the project's day
    under way) with the run's moment: every metric is a window of whole days, so the source
    gives complete days and names the day they end when it is not the config's yesterday."""
    assert Mixpanel.complete_days
    mixpanel.timezone = "America/Los_Angeles"
    now = NOW - timedelta(hours=3)  # 2026-03-10 04:00 UTC, 2026-03-09 21:00 in Los Angeles
    source = mixpanel_source(mixpanel, event="pageview", project_timezone="America/Los_Angeles")
    assert outcome(source, now=now).day == YESTERDAY - timedelta(days=1)
    assert outcome(mixpanel_source(mixpanel, event="pageview"), now=NOW).day is None
