"""Writing the demo's folder: an app database, `.env`, `kpi.yaml`, and 90 days of history."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from kpi_collector.demo import devtools
from kpi_collector.demo.server import (
    DEMO_CRM_TOKEN,
    DEMO_PASSWORD,
    DEMO_USER,
    metric,
    releases_downloads,
    signups,
)
from kpi_collector.store import HistoryStore, StoredObservation

HISTORY_DAYS = 90

CONFIG = """\
# The kpi-collector demo: every source below is served by `kpi demo` on 127.0.0.1.
timezone: UTC
title: Acme Rocket KPIs
north_star: crm.paying_customers
kpis:                      # `group:` makes a section (in this order) on the dashboard and reports
  crm.paying_customers: {{title: Paying customers, target: 150, group: Revenue}}
  app.users: {{title: Users, group: Product}}
  app.signups_today: {{title: Signups today, agg: max, group: Product}}
  github.stars: {{title: GitHub stars, target: 2500, group: Community}}
  github.forks: {{title: GitHub forks, group: Community}}
  github.watchers: {{title: GitHub watchers, group: Community}}
  github.contributors: {{title: Contributors, group: Community}}
  blog.posts: {{title: Blog posts, group: Community}}
  podcast.downloads: {{title: Podcast downloads (all time), group: Community}}
  github.releases_downloads: {{title: Release downloads, group: Community}}
  github.open_issues: {{title: Open issues, higher_is_better: false, group: Engineering}}
  github.open_prs: {{title: Open pull requests, higher_is_better: false, group: Engineering}}
{devtools_titles}

sources:
  - {{name: github, type: github, repo: acme/rocket, api_url: "{url}/github"}}
  - name: blog
    type: html
    url: {url}/blog/
    metrics:
      posts: {{css: "a.anthrazit", count: true}}
  - name: podcast
    type: html
    url: {url}/podcast/analytics
    login:
      url: {url}/podcast/login
      fields: {{email: "${{POD_USER}}", password: "${{POD_PASSWORD}}"}}
    metrics:
      downloads: {{css: "#total-downloads"}}
  - name: crm
    type: http_json
    url: {url}/crm/v1/stats
    auth: {{bearer: "${{CRM_TOKEN}}"}}
    metrics:
      paying_customers: data.customers.paying
  - name: app
    type: sql
    url: "sqlite:///{app_db}"
    metrics:
      users: SELECT count(*) FROM users
      signups_today: {{query: "SELECT count(*) FROM users WHERE created_at >= date('now')", allow_zero: true}}
{devtools_sources}
destinations:
  - {{type: csv, path: kpis.csv, every: day}}
"""


def write_demo_folder(folder: Path, url: str) -> Path:
    """Write the demo's files into `folder`; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    app_db = (folder / "app.db").resolve()
    _write_app_db(app_db)
    (folder / ".env").write_text(
        f"POD_USER={DEMO_USER}\nPOD_PASSWORD={DEMO_PASSWORD}\nCRM_TOKEN={DEMO_CRM_TOKEN}\n"
        f"PLAUSIBLE_API_KEY={devtools.DEMO_PLAUSIBLE_KEY}\n",
        encoding="utf-8",
    )
    config = folder / "kpi.yaml"
    text = CONFIG.format(
        url=url,
        app_db=app_db,
        devtools_titles=devtools.TITLES.format(),
        devtools_sources=devtools.SOURCES.format(url=url),
    )
    config.write_text(text, encoding="utf-8")
    return config


def _write_app_db(path: Path) -> None:
    path.unlink(missing_ok=True)
    today = datetime.now(UTC).date()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, created_at TEXT)")
        rows = []
        for back in range(HISTORY_DAYS, -1, -1):
            day = today - timedelta(days=back)
            for i in range(signups(day)):
                rows.append(
                    (f"user{day.toordinal()}-{i}@example.com", f"{day.isoformat()} 09:{i:02d}:00")
                )
        conn.executemany("INSERT INTO users (email, created_at) VALUES (?, ?)", rows)


def history_points(today: date, days: int = HISTORY_DAYS) -> list[StoredObservation]:
    """A value of every demo KPI for each day before `today`, at 07:00 UTC: what the demo's
    services and app database answer on that day, so that today's run continues it (the
    app's users count every signup from the app database's first day on, as its query does)."""
    kpis = {
        "github.stars": "stars",
        "github.forks": "forks",
        "github.watchers": "watchers",
        "github.open_issues": "open_issues",
        "github.open_prs": "open_prs",
        "github.contributors": "contributors",
        "blog.posts": "posts",
        "podcast.downloads": "downloads",
        "crm.paying_customers": "paying",
    }
    first = today - timedelta(days=HISTORY_DAYS)  # the app database's first signups
    points = []
    users = sum(signups(first + timedelta(days=i)) for i in range(HISTORY_DAYS - days))
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        ts = datetime.combine(day, time(7), tzinfo=UTC).timestamp()
        for kpi, name in kpis.items():
            points.append(StoredObservation(kpi, ts, metric(name, day), kpi.partition(".")[0]))
        points.append(
            StoredObservation("github.releases_downloads", ts, releases_downloads(day), "github")
        )
        users += signups(day)
        points.append(StoredObservation("app.users", ts, float(users), "app"))
        points.append(StoredObservation("app.signups_today", ts, float(signups(day)), "app"))
    return points


def demo_notes(today: date) -> list[tuple[date, str]]:
    """The demo's notes (`kpi annotate`): marks on its charts."""
    return [
        (today - timedelta(days=61), "v1.0 released"),
        (today - timedelta(days=24), "podcast episode with a big guest"),
        (today - timedelta(days=6), "pricing page launched"),
    ]


def seed(store: HistoryStore, tz: ZoneInfo, today: date) -> int:
    """Store the demo's past values (`history_points`) and notes; returns how many values."""
    from kpi_collector.store.annotations import add_annotation

    added = store.add_observations(history_points(today) + devtools.history(today), tz=tz)
    for day, text in demo_notes(today):
        add_annotation(store, text, day)
    return added
