"""`type: crates` against a local copy of the crates.io API."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.sources.crates import Crates
from kpi_collector.sources.crates.fake import Crate, FakeCrates
from tests.cli import observations, run_and_backfill_twice
from tests.fakes.collect import backfill, collect, outcome
from tests.fakes.data import NOW, TODAY

VERSIONS = [("0.1.0", False), ("0.2.0", True), *((f"1.{i}.0", False) for i in range(5))]


def crate(today: date) -> Crate:
    """100 days of downloads up to today: 111 a day (1.4.0: 100, 1.3.0: 10, 0.1.0, which only
    `extra_downloads` holds: 1), except 3 days ago (510: 1.4.0 500, 1.3.0 10) and 5 days ago
    (none); 1,000,000 before that."""
    daily = {}
    for n in range(100):
        if n == 5:
            continue
        day = today - timedelta(days=n)
        daily[day] = (
            {"1.4.0": 500, "1.3.0": 10} if n == 3 else {"1.4.0": 100, "1.3.0": 10, "0.1.0": 1}
        )
    return Crate(date(2024, 6, 1), VERSIONS, daily, before=1_000_000)


@pytest.fixture
def crates():
    fake = FakeCrates(crates={"acme-core": crate(TODAY)}, today=TODAY)
    with fake.serve():
        yield fake


def test_totals_versions_and_yesterday(crates: FakeCrates) -> None:
    values = collect(Crates(crate="acme-core", api_url=crates.url), now=NOW)
    assert values == {
        "downloads": 1_000_000.0 + 98 * 111 + 510,
        "recent_downloads": 88 * 111.0 + 510,  # the 90 days up to today, 5 days ago empty
        "daily_downloads": 111.0,
        "versions": 6.0,  # 7 published, 0.2.0 yanked
    }


def test_the_user_agent_names_the_bot_and_the_contact(crates: FakeCrates) -> None:
    source = Crates(crate="acme-core", contact="ops@acme.dev", api_url=crates.url)
    collect(source, now=NOW)
    agent = crates.requests[0].headers["User-Agent"]
    assert agent.startswith("kpi-collector/") and "ops@acme.dev" in agent


def test_a_403_for_the_user_agent_names_contact(crates: FakeCrates) -> None:
    crates.require_contact = True
    result = outcome(Crates(crate="acme-core", api_url=crates.url, metrics=["downloads"]))
    ((_, message, transient),) = result.errors
    assert "We require that all requests include a `User-Agent` header" in message
    assert "`contact:" in message and not transient
    with_contact = Crates(crate="acme-core", contact="ops@acme.dev", api_url=crates.url)
    assert collect(with_contact, now=NOW)["versions"] == 6.0


def test_the_fake_refuses_a_bare_library_agent(crates: FakeCrates) -> None:
    import urllib.request

    request = urllib.request.Request(f"{crates.url}/api/v1/crates/acme-core")
    request.add_header("User-Agent", "python-requests/2.32")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403


def test_config_mistakes_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'stars' for type 'crates'"):
        Crates(crate="serde", metrics=["stars"])
    with pytest.raises(ValidationError, match="not a crate name"):
        Crates(crate="9lives")
    with pytest.raises(ValidationError, match="not an email or URL"):
        Crates(crate="serde", contact="me (x)")


def test_unknown_crate_names_the_key(crates: FakeCrates) -> None:
    ((_, message, _),) = outcome(
        Crates(crate="nosuch", api_url=crates.url, metrics=["downloads"])
    ).errors
    assert "no crate 'nosuch'" in message and "`crate:`" in message


def test_a_429_is_waited_out(crates: FakeCrates) -> None:
    crates.inject(
        429,
        {"errors": [{"detail": "You have made too many requests."}]},
        headers={"Retry-After": "0"},
    )
    source = Crates(crate="acme-core", api_url=crates.url, metrics=["versions"])
    assert collect(source, now=NOW) == {"versions": 6.0}
    assert crates.calls() == 2


def test_backfill_gives_daily_and_total_downloads(crates: FakeCrates) -> None:
    source = Crates(crate="acme-core", api_url=crates.url)
    points = backfill(source, TODAY - timedelta(days=6), now=NOW)
    by = {(p.metric, (TODAY - p.ts.date()).days): p.value for p in points}
    assert {n: by["daily_downloads", n] for n in range(6, 0, -1)} == {
        6: 111.0,
        5: 0.0,
        4: 111.0,
        3: 510.0,
        2: 111.0,
        1: 111.0,
    }
    # today's total less what came after each day (today's 111 so far first)
    assert {n: by["downloads", n] for n in range(6, 0, -1)} == {
        1: 1_011_277.0,
        2: 1_011_166.0,
        3: 1_011_055.0,
        4: 1_010_545.0,
        5: 1_010_434.0,
        6: 1_010_434.0,
    }
    assert len(points) == 12 and crates.calls() == 2


def test_backfill_stops_at_90_days_and_says_so(crates: FakeCrates) -> None:
    limits: list[str] = []
    source = Crates(crate="acme-core", api_url=crates.url, metrics=["daily_downloads"])
    points = backfill(source, TODAY - timedelta(days=120), now=NOW, limits=limits)
    assert min(p.ts.date() for p in points) == TODAY - timedelta(days=89)
    assert len(points) == 89
    assert limits == [
        f"crates.io keeps daily downloads for 90 days (from {TODAY - timedelta(days=89)})"
    ]


def test_kpi_run_and_backfill_end_to_end(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    fake = FakeCrates(crates={"acme-core": crate(today)}, today=today)
    with fake.serve():
        (tmp_path / "kpi.yaml").write_text(
            "timezone: UTC\nsources:\n"
            f'  - {{name: crate, type: crates, crate: acme-core, contact: ops@acme.dev, api_url: "{fake.url}"}}\n'
        )
        run_and_backfill_twice(tmp_path, (today - timedelta(days=4)).isoformat(), source="crate")
    rows = observations(tmp_path)
    assert [v for k, v, b in rows if k == "crate.daily_downloads" and b] == [
        111.0,
        510.0,
        111.0,
        111.0,
    ]
    assert [v for k, v, b in rows if k == "crate.downloads" and b] == [
        1_010_545.0,
        1_011_055.0,
        1_011_166.0,
        1_011_277.0,
    ]


def test_a_utc_day_still_under_way_is_not_stored(crates: FakeCrates) -> None:
    """crates.io counts UTC days. kpi runs in Tokyo at 05:00 on the 10th: its yesterday, the
    9th, is the UTC day under way (7 downloads so far). `daily_downloads` is the 8th's, and
    backfill ends on the 8th."""
    utc_today = TODAY - timedelta(days=1)
    crates.today = utc_today
    crates.crates["acme-core"] = crate(utc_today)
    crates.crates["acme-core"].daily[utc_today] = {"1.4.0": 7}
    now = datetime(2026, 3, 9, 20, 0, tzinfo=UTC)  # 2026-03-10 05:00 in Tokyo
    source = Crates(crate="acme-core", api_url=crates.url, metrics=["daily_downloads"])
    assert collect(source, now=now, tz="Asia/Tokyo") == {"daily_downloads": 111.0}
    points = backfill(
        Crates(crate="acme-core", api_url=crates.url),
        TODAY - timedelta(days=4),
        now=now,
        tz="Asia/Tokyo",
    )
    by = {(p.metric, p.ts.date()): p.value for p in points}
    assert max(day for _, day in by) == utc_today - timedelta(days=1)
    # the 8th's total: today's less the 7 of the UTC day under way
    total = 1_000_000 + 98 * 111 + 510 - 111 + 7
    assert by["downloads", utc_today - timedelta(days=1)] == total - 7
