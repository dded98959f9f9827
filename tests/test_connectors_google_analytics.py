"""`type: google_analytics` against a local GA4 Data API and Google token endpoint: a real
service account key, signed by google-auth, checked by the fake's token endpoint."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.errors import ExtractError
from kpi_collector.sources.google_analytics import GoogleAnalytics
from kpi_collector.sources.google_analytics.fake import (
    QUOTA_PER_DAY,
    FakeAnalytics,
    daily,
    service_account,
)
from tests.cli import observations, run_and_backfill_twice, store_dump
from tests.fakes.collect import backfill, collect, outcome
from tests.fakes.data import NOW, TODAY

PROPERTY = "123456789"
WWW = {
    "activeUsers": 120,
    "totalUsers": 130,
    "active1DayUsers": 120,
    "active7DayUsers": 700,
    "active28DayUsers": 2500,
    "sessions": 180,
    "screenPageViews": 540,
    "keyEvents": 9,
}
DOCS = {
    "activeUsers": 80,
    "totalUsers": 85,
    "active1DayUsers": 80,
    "active7DayUsers": 400,
    "active28DayUsers": 1500,
    "sessions": 95,
    "screenPageViews": 610,
    "keyEvents": 0,
}


def property_data(today: date) -> dict[date, dict[str, dict[str, int]]]:
    """10 days up to yesterday; 4 days ago nothing was recorded."""
    data = daily(
        today - timedelta(days=10),
        today - timedelta(days=1),
        **{"www.acme.dev": WWW, "docs.acme.dev": DOCS},
    )
    del data[today - timedelta(days=4)]
    return data


@pytest.fixture
def ga():
    fake = FakeAnalytics(properties={PROPERTY: property_data(TODAY), "999": {}})
    with fake.serve():
        key = service_account(f"{fake.url}/token")
        fake.add_account(key, PROPERTY)
        fake.key = key  # type: ignore[attr-defined]
        yield fake


def source(ga: FakeAnalytics, **kwargs: object) -> GoogleAnalytics:
    config: dict[str, object] = {
        "property_id": PROPERTY,
        "credentials_json": json.dumps(ga.key),  # type: ignore[attr-defined]
        "api_url": ga.url,
    }
    return GoogleAnalytics(**(config | kwargs))


def test_yesterdays_figures_after_a_signed_token_exchange(ga: FakeAnalytics) -> None:
    assert collect(source(ga), now=NOW) == {
        "users": 200.0,
        "active_users_7_days": 1100.0,
        "active_users_28_days": 4000.0,
        "sessions": 275.0,
        "page_views": 1150.0,
        "conversions": 9.0,
    }
    assert ga.token_requests == 1
    report = next(r for r in ga.requests if "runReport" in r.path)
    assert report.path == f"/v1beta/properties/{PROPERTY}:runReport"
    assert report.headers["Authorization"].removeprefix("Bearer ") in ga.tokens


def test_a_hostname_filter_and_a_subset(ga: FakeAnalytics) -> None:
    hostname = {"filter": {"fieldName": "hostName", "stringFilter": {"value": "docs.acme.dev"}}}
    subset = source(
        ga, dimension_filter=hostname, metrics=["total_users", "active_users_1_day", "page_views"]
    )
    assert collect(subset, now=NOW) == {
        "total_users": 85.0,
        "active_users_1_day": 80.0,
        "page_views": 610.0,
    }


def test_config_mistakes_are_refused_at_load(ga: FakeAnalytics) -> None:
    with pytest.raises(
        ValidationError, match="unknown metric 'bounce_rate' for type 'google_analytics'"
    ):
        source(ga, metrics=["bounce_rate"])
    with pytest.raises(ValidationError, match="not a GA4 property id"):
        source(ga, property_id="G-ABC123")
    with pytest.raises(ValidationError, match="exactly one of `credentials_json:`"):
        GoogleAnalytics(property_id=PROPERTY)
    with pytest.raises(ValidationError, match="exactly one of filter, andGroup"):
        source(ga, dimension_filter={"fieldName": "hostName"})


def test_credentials_file_relative_to_the_config(
    ga: FakeAnalytics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ga.json").write_text(json.dumps(ga.key))  # type: ignore[attr-defined]
    monkeypatch.chdir(tmp_path)  # the helpers run sources with base_dir = the working folder
    from_file = GoogleAnalytics(
        property_id=PROPERTY, credentials_file="ga.json", api_url=ga.url, metrics=["sessions"]
    )
    assert collect(from_file, now=NOW) == {"sessions": 275.0}
    missing = GoogleAnalytics(property_id=PROPERTY, credentials_file="nope.json", api_url=ga.url)
    ((_, message, _),) = outcome(missing, now=NOW).errors
    assert "cannot read `credentials_file:`" in message and "nope.json" in message


def test_not_a_key_names_the_key(ga: FakeAnalytics) -> None:
    ((_, message, _),) = outcome(
        source(ga, credentials_json="value-of-GA_CREDENTIALS"), now=NOW
    ).errors
    assert (
        "`credentials_json:` of source 'google_analytics' is not a service account JSON key"
        in message
    )
    other = json.dumps({"type": "authorized_user", "client_id": "x"})
    ((_, message, _),) = outcome(source(ga, credentials_json=other), now=NOW).errors
    assert '"type": "service_account"' in message


def test_an_unknown_key_is_refused_at_the_token_endpoint(ga: FakeAnalytics) -> None:
    stranger = service_account(
        f"{ga.url}/token", email="kpi-bot@acme-analytics.iam.gserviceaccount.com"
    )
    result = outcome(source(ga, credentials_json=json.dumps(stranger)), now=NOW)
    ((_, message, transient),) = result.errors
    assert "Google refused the service account's sign-in" in message
    assert "Invalid JWT Signature" in message and "`credentials_json`" in message
    assert not transient and stranger["private_key"] not in message
    assert not any("runReport" in r.path for r in ga.requests)


def test_no_access_to_the_property_names_the_fix(ga: FakeAnalytics) -> None:
    ((_, message, transient),) = outcome(source(ga, property_id="999"), now=NOW).errors
    assert "User does not have sufficient permissions" in message
    assert "client_email as a Viewer" in message and "`property_id:`" in message
    assert not transient


def test_an_api_not_enabled_says_to_enable_it(ga: FakeAnalytics) -> None:
    message = (
        "Google Analytics Data API has not been used in project 123 before or it is disabled. "
        "Enable it by visiting https://console.developers.google.com/apis/api/"
        "analyticsdata.googleapis.com/overview?project=123 then retry."
    )
    disabled = {
        "error": {
            "code": 403,
            "message": message,
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "SERVICE_DISABLED",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "analyticsdata.googleapis.com",
                        "consumer": "projects/123",
                    },
                }
            ],
        }
    }
    ga.inject(403, disabled, path="runReport")
    ((_, text, transient),) = outcome(source(ga), now=NOW).errors
    assert "has not been used in project 123" in text
    assert "enable the Google Analytics Data API" in text and not transient


def test_a_bad_dimension_filter_names_it(ga: FakeAnalytics) -> None:
    wrong = {"filter": {"fieldName": "hostname", "stringFilter": {"value": "x"}}}
    ((_, message, _),) = outcome(source(ga, dimension_filter=wrong), now=NOW).errors
    assert "Field hostname is not a valid dimension" in message and "`dimension_filter:`" in message


def test_a_spent_daily_quota_is_transient(ga: FakeAnalytics) -> None:
    quota = {"error": {"code": 429, "message": QUOTA_PER_DAY, "status": "RESOURCE_EXHAUSTED"}}
    ga.inject(429, quota, path="runReport", times=3)
    ((_, message, transient),) = outcome(source(ga), now=NOW, retries=2).errors
    assert transient and QUOTA_PER_DAY in message and "midnight Pacific Time" in message


def test_a_day_without_data_is_an_error_not_a_zero(ga: FakeAnalytics) -> None:
    ((_, message, _),) = outcome(source(ga), now=NOW - timedelta(days=3)).errors
    assert f"no data for {TODAY - timedelta(days=4)}" in message


def test_backfill_gives_each_day_over_pages(ga: FakeAnalytics) -> None:
    ga.max_rows = 3  # the API may give fewer rows than asked: the connector pages by offset
    points = backfill(
        source(ga, metrics=["sessions", "active_users_7_days"]), TODAY - timedelta(days=6), now=NOW
    )
    by = {(p.metric, (TODAY - p.ts.date()).days): p.value for p in points}
    assert sorted({n for _, n in by}) == [1, 2, 3, 5, 6]  # 4 days ago: no data, no value
    assert all(
        by["sessions", n] == 275.0 and by["active_users_7_days", n] == 1100.0
        for n in (1, 2, 3, 5, 6)
    )
    assert ga.calls("runReport") == 2 and ga.token_requests == 1


def test_kpi_run_and_backfill_end_to_end(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    fake = FakeAnalytics(properties={PROPERTY: property_data(today)})
    with fake.serve():
        key = service_account(f"{fake.url}/token")
        fake.add_account(key, PROPERTY)
        (tmp_path / "kpi.yaml").write_text(
            "timezone: UTC\nsources:\n"
            f'  - {{name: web, type: google_analytics, property_id: "{PROPERTY}", '
            f'credentials_json: "${{GA_CREDENTIALS}}", api_url: "{fake.url}", metrics: [users, page_views]}}\n'
        )
        env = {"GA_CREDENTIALS": json.dumps(key)}
        since = (today - timedelta(days=5)).isoformat()
        ran, first, second = run_and_backfill_twice(tmp_path, since, source="web", env=env)
        tokens = list(fake.tokens)
    rows, dump = observations(tmp_path), store_dump(tmp_path)
    # 4 days ago: none; yesterday, stored by the run with its stamp: not a second time
    assert [v for k, v, b in rows if k == "web.page_views" and b] == [1150.0] * 3
    assert ("web.users", 200.0, 0) in rows and ("web.page_views", 1150.0, 0) in rows
    secret_line = key["private_key"].splitlines()[1]
    for text in (ran.stdout, ran.stderr, first.stdout, first.stderr, second.stdout, dump):
        assert secret_line not in text and all(t not in text for t in tokens)


def test_a_day_still_under_way_in_the_propertys_time_zone_is_not_read(ga: FakeAnalytics) -> None:
    """kpi runs in Berlin, the property reports in Los Angeles: at 07:00 in Berlin on the
    10th, the 9th is still under way in Los Angeles (partial figures so far). The run reads
    the 8th, the last complete day there; backfill leaves the 9th out."""
    ga.time_zone = "America/Los_Angeles"
    now = NOW - timedelta(hours=1)  # 2026-03-10 07:00 in Berlin, 2026-03-09 23:00 in LA
    partial = {m: v // 3 for m, v in WWW.items()}
    ga.properties[PROPERTY][TODAY - timedelta(days=1)] = {"www.acme.dev": partial}
    values = collect(source(ga, metrics=["sessions", "page_views"]), now=now, tz="Europe/Berlin")
    assert values == {"sessions": 275.0, "page_views": 1150.0}
    points = backfill(
        source(ga, metrics=["sessions"]), TODAY - timedelta(days=3), now=now, tz="Europe/Berlin"
    )
    assert {p.ts.date(): p.value for p in points} == {
        TODAY - timedelta(days=3): 275.0,
        TODAY - timedelta(days=2): 275.0,
    }


def test_a_report_that_stops_short_of_its_row_count_is_an_error(ga: FakeAnalytics) -> None:
    """A page saying 5 rows, then an empty one at offset 1: backfill stored the one day and
    left the 4 others without a value, unsaid. Now an error says the report stopped short."""
    row = {
        "dimensionValues": [{"value": (TODAY - timedelta(days=2)).strftime("%Y%m%d")}],
        "metricValues": [{"value": "275"}],
    }
    ga.inject(
        200, {"rows": [row], "rowCount": 5, "kind": "analyticsData#runReport"}, path="runReport"
    )
    ga.inject(200, {"rowCount": 5, "kind": "analyticsData#runReport"}, path="runReport")
    with pytest.raises(ExtractError, match="gave 1 of the report's 5 rows, then no more"):
        backfill(source(ga, metrics=["sessions"]), TODAY - timedelta(days=6), now=NOW)


def test_each_days_figures_are_stamped_with_the_day_they_describe(ga: FakeAnalytics) -> None:
    """`kpi run` stored yesterday's users, sessions and page views with the run's moment,
    and the day before's (the property's yesterday under way) the same: every metric is one
    whole day's (the 7- and 28-day ones end that day), so the source gives complete days,
    and says which when it is not the config's yesterday; the run stamps them so."""
    assert GoogleAnalytics.complete_days
    ga.time_zone = "America/Los_Angeles"
    early = NOW - timedelta(hours=1)  # 2026-03-10 07:00 in Berlin, 2026-03-09 23:00 in LA
    got = outcome(source(ga, metrics=["sessions"]), now=early, tz="Europe/Berlin")
    assert got.values == {"sessions": 275.0} and got.day == TODAY - timedelta(days=2)
    later = NOW + timedelta(hours=2)  # 02:00 on the 10th in Los Angeles: the 9th is over
    got = outcome(source(ga, metrics=["sessions"]), now=later, tz="Europe/Berlin")
    assert got.values == {"sessions": 275.0} and got.day is None  # yesterday
