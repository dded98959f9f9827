"""`type: plausible` against a local copy of the Plausible Stats API v2."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.sources.plausible import Plausible
from kpi_collector.sources.plausible.fake import FakePlausible
from tests.cli import observations, run_and_backfill_twice, store_dump
from tests.fakes.collect import backfill, collect, outcome
from tests.fakes.data import NOW, TODAY

KEY = "plausible-test-key-0000000000000001"


def figures(n: int) -> dict[str, int]:
    return {
        "visitors": 100 + n,
        "pageviews": 300 + n,
        "visits": 200,
        "bounces": 90,
        "duration": 12345,
    }


@pytest.fixture
def plausible():
    fake = FakePlausible(keys={KEY: {"example.com"}})
    fake.sites["example.com"] = {TODAY - timedelta(days=n): figures(n) for n in range(1, 11)}
    with fake.serve():
        yield fake


def test_yesterdays_figures(plausible: FakePlausible) -> None:
    values = collect(Plausible(site_id="example.com", api_key=KEY, api_url=plausible.url), now=NOW)
    assert values == {
        "visitors": 101.0,
        "pageviews": 301.0,
        "visits": 200.0,
        "bounce_rate": 45.0,
        "visit_duration": 62.0,
    }
    (request,) = plausible.requests
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert plausible.calls("/api/v2/query") == 1


def test_subset_and_filters_are_sent(plausible: FakePlausible) -> None:
    plausible.sites["example.com"][TODAY - timedelta(days=1)]["page"] = 1  # no page "/" matches
    source = Plausible(
        site_id="example.com",
        api_key=KEY,
        api_url=plausible.url,
        metrics=["visitors"],
        filters=[["is", "event:page", ["/"]]],
    )
    assert collect(source, now=NOW) == {"visitors": 0.0}


def test_unknown_metric_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'users' for type 'plausible'"):
        Plausible(site_id="example.com", api_key=KEY, metrics=["users"])


def test_wrong_key_names_the_key(plausible: FakePlausible) -> None:
    wrong = "plausible-wrong-key-000000000000009"
    result = outcome(Plausible(site_id="example.com", api_key=wrong, api_url=plausible.url))
    ((_, message, transient),) = result.errors
    assert "Invalid API key or site ID" in message and "`api_key`" in message
    assert wrong not in message and not transient


def test_backfill_stores_0_for_each_day_without_visits(plausible: FakePlausible) -> None:
    """Plausible leaves the days without visits out of a daily answer: they got no value,
    as if never counted, where Plausible counted 0. Every day of the range it covers
    (`meta.time_labels`) is stored now: 0 visits, and no average over no visit."""
    for n in (3, 4):
        del plausible.sites["example.com"][TODAY - timedelta(days=n)]
    source = Plausible(
        site_id="example.com",
        api_key=KEY,
        api_url=plausible.url,
        metrics=["visits", "visitors", "pageviews", "bounce_rate", "visit_duration"],
    )
    points = backfill(source, TODAY - timedelta(days=10), now=NOW)
    by = {(p.metric, p.ts.date()): p.value for p in points}
    assert sorted({d for _, d in by}) == [TODAY - timedelta(days=n) for n in range(10, 0, -1)]
    for n in (4, 3):
        day = TODAY - timedelta(days=n)
        assert [by.get((m, day)) for m in source.metrics] == [0.0, 0.0, 0.0, None, None]
    assert by[("visitors", TODAY - timedelta(days=5))] == 105.0
    assert by[("bounce_rate", TODAY - timedelta(days=5))] == 45.0
    assert plausible.calls() == 1
    assert plausible.requests[0].method == "POST"


def test_kpi_run_and_backfill_end_to_end(tmp_path: Path) -> None:
    """`kpi run` and `kpi backfill` (subprocesses) against the fake, into SQLite; the key never
    reaches output or the store, and a second backfill adds nothing."""
    today = datetime.now(UTC).date()
    fake = FakePlausible(keys={KEY: {"example.com"}})
    fake.sites["example.com"] = {today - timedelta(days=n): figures(n) for n in range(1, 11)}
    with fake.serve():
        (tmp_path / "kpi.yaml").write_text(
            "timezone: UTC\nsources:\n"
            f'  - {{name: web, type: plausible, site_id: example.com, api_key: "${{PLAUSIBLE_API_KEY}}", '
            f'api_url: "{fake.url}"}}\n'
        )
        (tmp_path / ".env").write_text(f"PLAUSIBLE_API_KEY={KEY}\n")
        # the site's stats begin 10 days back: the 5 days asked before them get no value
        since = (today - timedelta(days=15)).isoformat()
        ran, first, second = run_and_backfill_twice(tmp_path, since, source="web")
    rows, dump = observations(tmp_path), store_dump(tmp_path)
    visitors = [(v, b) for k, v, b in rows if k == "web.visitors"]
    # yesterday's figure, collected by the run and stamped with yesterday's end, where the
    # backfill finds it stored: not a second time
    assert visitors[-1] == (101.0, 0)
    assert [v for v, b in visitors if b] == [110.0 - n for n in range(9)]
    assert f"(the service has nothing before {today - timedelta(days=10)})" in first.stdout
    for text in (ran.stdout, ran.stderr, first.stdout, second.stdout, dump):
        assert KEY not in text


def test_a_day_still_under_way_at_the_site_is_not_read(plausible: FakePlausible) -> None:
    """kpi runs in Berlin, the site counts days in Los Angeles: at 07:00 in Berlin on the 10th,
    the 9th is still under way there (its figures so far). The run reads the 8th; backfill
    leaves the 9th out. The answer's `query.date_range` gives the site's UTC offset."""
    plausible.time_zone = "America/Los_Angeles"
    plausible.sites["example.com"][TODAY - timedelta(days=1)] = figures(-90)  # so far
    now = NOW - timedelta(hours=1)  # 2026-03-10 07:00 in Berlin, 2026-03-09 23:00 in LA
    source = Plausible(
        site_id="example.com", api_key=KEY, api_url=plausible.url, metrics=["visitors"]
    )
    assert collect(source, now=now, tz="Europe/Berlin") == {"visitors": 102.0}
    points = backfill(source, TODAY - timedelta(days=3), now=now, tz="Europe/Berlin")
    assert {p.ts.date(): p.value for p in points} == {
        TODAY - timedelta(days=3): 103.0,
        TODAY - timedelta(days=2): 102.0,
    }


def test_a_metric_plausible_gives_no_number_for_is_named_with_the_day(
    plausible: FakePlausible,
) -> None:
    """`null` in the answer (nothing to average over) left the metric out silently."""
    plausible.inject(
        200,
        {
            "results": [{"metrics": [3, None], "dimensions": []}],
            "meta": {},
            "query": {"date_range": ["2026-03-09T00:00:00+00:00", "2026-03-09T23:59:59+00:00"]},
        },
    )
    source = Plausible(
        site_id="example.com",
        api_key=KEY,
        api_url=plausible.url,
        metrics=["visits", "visit_duration"],
    )
    result = outcome(source, now=NOW)
    assert result.values == {"visits": 3.0}
    ((metric, message, _),) = result.errors
    assert metric == "visit_duration"
    assert message == "visit_duration: Plausible gave None for 2026-03-09, no number"


def test_days_before_the_sites_stats_began_get_no_value(plausible: FakePlausible) -> None:
    """The site's stats begin 10 days ago; backfill asks for 30. Plausible lists every day
    of the range in `meta.time_labels` (it counts nothing before the site's stats start),
    and the 20 days before got 0 visitors each: a wrong number, not a quiet day. They get
    none now (`kpi backfill` says from the values where they begin)."""
    source = Plausible(site_id="example.com", api_key=KEY, api_url=plausible.url)
    points = backfill(source, TODAY - timedelta(days=30), now=NOW)
    days = sorted({p.ts.date() for p in points})
    assert days == [TODAY - timedelta(days=n) for n in range(10, 0, -1)]
    assert 0.0 not in {p.value for p in points if p.metric == "visitors"}


def test_a_site_without_any_visit_in_the_range_gets_no_value(plausible: FakePlausible) -> None:
    source = Plausible(site_id="example.com", api_key=KEY, api_url=plausible.url)
    plausible.sites["example.com"] = {}
    assert backfill(source, TODAY - timedelta(days=60), now=NOW) == []


def test_imported_stats_count_as_on_the_dashboard(plausible: FakePlausible) -> None:
    """The site moved to Plausible 10 days ago and imported its Google Analytics history.
    The dashboard shows the imported days; the API leaves them out unless asked
    (`include.imports`): backfill stored nothing (or 0) for them. They count now, in
    backfill and in a run."""
    plausible.imported["example.com"] = {
        TODAY - timedelta(days=n): {**figures(n), "visitors": 1000 + n} for n in range(11, 21)
    }
    source = Plausible(
        site_id="example.com", api_key=KEY, api_url=plausible.url, metrics=["visitors"]
    )
    points = backfill(source, TODAY - timedelta(days=20), now=NOW)
    by_day = {p.ts.date(): p.value for p in points}
    assert by_day[TODAY - timedelta(days=20)] == 1020.0
    assert by_day[TODAY - timedelta(days=11)] == 1011.0
    assert by_day[TODAY - timedelta(days=10)] == 110.0
    assert len(by_day) == 20
    assert all(r.method == "POST" for r in plausible.requests)
    assert collect(source, now=NOW) == {"visitors": 101.0}


def test_an_average_over_a_day_without_visits_is_no_figure(plausible: FakePlausible) -> None:
    """Plausible gives a bounce rate and a visit duration of 0 for a day nobody came: a run
    stored "0 % bounce rate" where backfill stores nothing for the same day. Both averages
    are now an error saying there was no visit, also when `visits` is not asked for (it
    is read along); the counts are 0."""
    plausible.sites["example.com"][TODAY - timedelta(days=1)] = dict.fromkeys(figures(1), 0)
    source = Plausible(
        site_id="example.com",
        api_key=KEY,
        api_url=plausible.url,
        metrics=["visitors", "bounce_rate", "visit_duration"],
    )
    result = outcome(source, now=NOW)
    assert result.values == {"visitors": 0.0}
    assert sorted((m, text) for m, text, _ in result.errors) == [
        ("bounce_rate", "bounce_rate: no visit to example.com on 2026-03-09 to average over"),
        ("visit_duration", "visit_duration: no visit to example.com on 2026-03-09 to average over"),
    ]
    day = {
        p.metric: p.value
        for p in backfill(source, TODAY - timedelta(days=2), now=NOW)
        if p.ts.date() == TODAY - timedelta(days=1)
    }
    assert day == {"visitors": 0.0}  # the same day from backfill: no average either
    source = Plausible(
        site_id="example.com", api_key=KEY, api_url=plausible.url, metrics=["bounce_rate"]
    )
    # a day with visits: its own rate (`visits` read along, not stored)
    assert collect(source, now=NOW - timedelta(days=1)) == {"bounce_rate": 45.0}


def test_kpi_run_stamps_each_value_with_the_day_it_describes(
    plausible: FakePlausible, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kpi run` stored yesterday's visitors with the run's moment: the 9th's figures stamped
    the 10th, compared with the previous run's (the 8th's) as if they were of one day, and a
    site in a time zone behind the config's gave the 8th's figures stamped the 10th too.
    Each value is stamped with the end of the day it describes, once a day, as `kpi
    backfill` stamps it."""
    from zoneinfo import ZoneInfo

    from kpi_collector.pipeline import Pipeline

    berlin = ZoneInfo("Europe/Berlin")
    monkeypatch.setenv("PLAUSIBLE_API_KEY", KEY)
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: Europe/Berlin\nsources:\n"
        "  - {name: web, type: plausible, site_id: example.com, metrics: [visitors],"
        f' api_key: "${{PLAUSIBLE_API_KEY}}", api_url: "{plausible.url}"}}\n'
    )
    plausible.time_zone = "America/Los_Angeles"
    plausible.sites["example.com"][TODAY - timedelta(days=1)] = figures(-90)  # so far
    pipeline = Pipeline.from_config(tmp_path / "kpi.yaml")
    assert pipeline.store is not None

    def end_of(days: int) -> float:
        day = TODAY - timedelta(days=days)
        return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=berlin).timestamp()

    # 07:00 in Berlin, the 9th still under way in Los Angeles: the 8th's figure, on the 8th
    early = pipeline.process(deliver=False, now=NOW - timedelta(hours=1))
    assert early.errors == {}
    assert early.values == {"web.visitors": 102.0}
    assert early.stamps == {"web.visitors": end_of(2)}
    assert early.to_dict()["values"][0]["day"] == (TODAY - timedelta(days=2)).isoformat()
    assert [(ts, v) for _, ts, v in pipeline.store.rows(["web.visitors"])] == [(end_of(2), 102.0)]
    # the 9th is over in Los Angeles at 09:00 in Berlin: its figure, on the 9th
    plausible.sites["example.com"][TODAY - timedelta(days=1)] = figures(1)
    later = pipeline.process(deliver=False, now=NOW + timedelta(hours=2))
    assert later.errors == {}
    assert later.stamps == {"web.visitors": end_of(1)}
    assert later.previous == {"web.visitors": 102.0}  # the day before, not a run's moment
    assert [(ts, v) for _, ts, v in pipeline.store.rows(["web.visitors"])] == [
        (end_of(2), 102.0),
        (end_of(1), 101.0),
    ]
    again = pipeline.process(deliver=False, now=NOW + timedelta(hours=5))  # once a day
    assert again.values == {"web.visitors": 101.0}
    assert len(pipeline.store.rows(["web.visitors"])) == 2


def test_a_formula_mixing_a_day_and_a_moment_uses_the_stored_day(
    plausible: FakePlausible, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A formula over yesterday's visitors and a value of the run's moment is a value of the
    run's moment (stamped with its start, compared with the run before), computed from the
    day's value as stored: a re-run after Plausible's figures of the day changed (late
    events) computed it from a visitors figure it did not store."""
    from kpi_collector.pipeline import Pipeline

    monkeypatch.setenv("PLAUSIBLE_API_KEY", KEY)
    (tmp_path / "kpi_team_numbers.py").write_text("def team():\n    return {'size': 4}\n")
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: UTC\n"
        "kpis:\n"
        '  web.per_head: {formula: "web.visitors / team.size"}\n'
        '  web.double: {formula: "web.visitors * 2"}\n'
        "sources:\n"
        "  - {name: web, type: plausible, site_id: example.com, metrics: [visitors],"
        f' api_key: "${{PLAUSIBLE_API_KEY}}", api_url: "{plausible.url}"}}\n'
        "  - {name: team, type: python, function: kpi_team_numbers:team}\n"
    )
    pipeline = Pipeline.from_config(tmp_path / "kpi.yaml")
    store = pipeline.store
    assert store is not None
    first = pipeline.process(deliver=False, now=NOW)
    assert first.errors == {}
    assert first.values["web.per_head"] == 101.0 / 4
    assert "web.per_head" not in first.stamps  # the run's moment
    days = {v["kpi"]: v["day"] for v in first.to_dict()["values"]}
    assert days["web.per_head"] is None and days["web.double"] == days["web.visitors"]
    assert first.stamps["web.double"] == first.stamps["web.visitors"]  # the day's, alone
    plausible.sites["example.com"][TODAY - timedelta(days=1)] = figures(99)  # late events
    again = pipeline.process(deliver=False, now=NOW + timedelta(hours=3))
    assert again.errors == {}
    assert again.values["web.visitors"] == 101.0  # stored once a day
    assert again.values["web.double"] == 202.0
    assert again.values["web.per_head"] == 101.0 / 4  # from the stored day, not 199 / 4
    assert again.previous["web.per_head"] == 101.0 / 4  # the run before's
    stored = {(kpi, value) for kpi, _, value in store.rows()}
    assert ("web.visitors", 199.0) not in stored and ("web.double", 398.0) not in stored


def test_a_formula_over_a_site_behind_and_a_day_on_time_is_of_the_earlier_day(
    plausible: FakePlausible, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daily job at 07:00 in Berlin: the site in Los Angeles gives the day before
    yesterday, `active_users` yesterday. `visitors / dau` divided two days' figures, stored
    as one day's. Such a formula is computed for the earlier day, from that day's stored
    values (yesterday's run stored its DAU), and stamped with that day's end."""
    from zoneinfo import ZoneInfo

    from kpi_collector.pipeline import Pipeline
    from tests.test_activity import write_parquet

    berlin = ZoneInfo("Europe/Berlin")
    monkeypatch.setenv("PLAUSIBLE_API_KEY", KEY)
    plausible.time_zone = "America/Los_Angeles"
    march = [datetime(2026, 3, d, 12, tzinfo=UTC) for d in (8, 9)]
    write_parquet(tmp_path / "events.parquet", [("a", march[0]), ("b", march[0]), ("a", march[1])])
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\ntimezone: Europe/Berlin\n"
        "kpis:\n"
        '  web.per_user: {formula: "web.visitors / telemetry.dau"}\n'
        "sources:\n"
        "  - {name: web, type: plausible, site_id: example.com, metrics: [visitors],"
        f' api_key: "${{PLAUSIBLE_API_KEY}}", api_url: "{plausible.url}"}}\n'
        "  - {name: telemetry, type: active_users, events: events.parquet, user: user_id,"
        " time: ts}\n"
    )
    pipeline = Pipeline.from_config(tmp_path / "kpi.yaml")
    store = pipeline.store
    assert store is not None

    def end(day: int) -> float:
        return datetime(2026, 3, day, 23, 59, 59, tzinfo=berlin).timestamp()

    # the 9th at 07:00: the site's 7th, the 8th's DAU; no DAU of the 7th to divide by
    first = pipeline.process(deliver=False, now=datetime(2026, 3, 9, 7, tzinfo=berlin))
    assert first.stamps == {
        "web.visitors": end(7),
        **{f"telemetry.{m}": end(8) for m in ("dau", "wau", "mau")},
    }
    assert set(first.errors) == {"web.per_user"}
    assert "2026-03-07's values of them are not all stored" in first.errors["web.per_user"]
    assert "web.per_user" not in first.values
    # the 10th at 07:00: the site's 8th, the 9th's DAU: the 8th's visitors over its DAU
    second = pipeline.process(deliver=False, now=datetime(2026, 3, 10, 7, tzinfo=berlin))
    assert second.errors == {}
    assert second.values["web.per_user"] == 102.0 / 2
    assert second.stamps["web.per_user"] == end(8)
    per_user = [(ts, v) for _, ts, v in store.rows(["web.per_user"])]
    assert per_user == [(end(8), 51.0)]  # never a ratio of two days
