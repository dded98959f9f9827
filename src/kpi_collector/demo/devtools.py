"""The demo's developer-tools numbers: website visitors (Plausible), crate downloads
(crates.io), model downloads (Hugging Face Hub) and forum members (Discourse), served by the
connectors' own local fakes, mounted under the demo server, with 90 days of history that the
live run continues.

Every series is a running total or a steadily growing count, so the dashboard's first screen
shows a healthy product; the fakes are filled from the same formulas, for `today`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from aiohttp import web

from kpi_collector.sources.crates.fake import Crate, FakeCrates
from kpi_collector.sources.discourse.fake import FakeDiscourse
from kpi_collector.sources.huggingface.fake import FakeHub, Repo
from kpi_collector.sources.plausible.fake import FakePlausible
from kpi_collector.store import StoredObservation

DEMO_PLAUSIBLE_KEY = "demo-plausible-key-0001"
_START = date(2024, 1, 1)
#: name -> (value on _START, growth per day, growth of the growth per day)
_SHAPES = {
    "visitors": (300.0, 1.2, 0.001),
    "crate_downloads": (20_000.0, 150.0, 0.12),
    "model_downloads": (4_000.0, 22.0, 0.02),
    "forum_users": (800.0, 1.6, 0.001),
}

#: the sources the demo's kpi.yaml lists (the demo server's URL goes in `{url}`)
SOURCES = """\
  - {{name: web, type: plausible, site_id: acme.dev, api_key: "${{PLAUSIBLE_API_KEY}}", metrics: [visitors], api_url: "{url}/plausible"}}
  - {{name: crate, type: crates, crate: acme-rocket, contact: demo@acme.dev, metrics: [downloads], api_url: "{url}/crates"}}
  - {{name: hf, type: huggingface, author: acme, metrics: [downloads], api_url: "{url}/hf"}}
  - {{name: forum, type: discourse, metrics: [users], api_url: "{url}/forum"}}
"""
#: their titles, for the `kpis:` of the demo's kpi.yaml
TITLES = """\
  web.visitors: {{title: Website visitors (yesterday), group: Product}}
  crate.downloads: {{title: Crate downloads, group: Community}}
  hf.downloads: {{title: Model downloads (30 days), group: Community}}
  forum.users: {{title: Forum members, group: Community}}"""


def value(name: str, day: date) -> float:
    """A demo series on a day: a count that grows a little faster every day (never drops)."""
    n = (day - _START).days
    base, growth, speedup = _SHAPES[name]
    return float(round(base + growth * n + speedup * n * n))


def mount(app: web.Application, today: date) -> None:
    """Serve the four fakes under `/plausible`, `/crates`, `/hf` and `/forum` of `app`."""
    plausible = FakePlausible(keys={DEMO_PLAUSIBLE_KEY: {"acme.dev"}})
    plausible.sites["acme.dev"] = {}
    for back in range(1, 100):
        day = today - timedelta(days=back)
        visitors = int(value("visitors", day))
        plausible.sites["acme.dev"][day] = {
            "visitors": visitors,
            "pageviews": 3 * visitors,
            "visits": visitors + visitors // 4,
            "bounces": visitors // 2,
            "duration": 95 * visitors,
        }
    # crates.io: all-time downloads = before the 90 days + each day's (today's so far too)
    daily = {
        today - timedelta(days=back): int(
            value("crate_downloads", today - timedelta(days=back))
            - value("crate_downloads", today - timedelta(days=back + 1))
        )
        for back in range(100)
    }
    first = today - timedelta(days=99)
    crate = Crate(
        created=_START,
        versions=[("0.9.0", False), ("1.0.0", False), ("1.1.0", False), ("1.2.0", False)],
        daily={d: {"1.2.0": n} for d, n in daily.items()},
        before=int(value("crate_downloads", first - timedelta(days=1))),
    )
    crates = FakeCrates(crates={"acme-rocket": crate}, today=today)
    total = int(value("model_downloads", today))
    big, small = total * 6 // 10, total * 3 // 10
    hub = FakeHub(
        repos=[
            Repo("model", "acme/rocket-7b", likes=310, downloads=big),
            Repo("model", "acme/rocket-1b", likes=120, downloads=small),
            Repo("dataset", "acme/launch-logs", likes=40, downloads=total - big - small),
            Repo("space", "acme/rocket-playground", likes=75),
        ]
    )
    forum = FakeDiscourse(stats=_forum_stats(today))
    for prefix, fake in (
        ("/plausible", plausible),
        ("/crates", crates),
        ("/hf", hub),
        ("/forum", forum),
    ):
        app.add_subapp(prefix, fake.app())


def _forum_stats(today: date) -> dict[str, int]:
    users = int(value("forum_users", today))
    return {
        "topics_count": users // 3,
        "posts_count": users * 4,
        "users_count": users,
        "active_users_7_days": users // 9,
        "active_users_30_days": users // 4,
        "likes_count": users * 3,
    }


def history(today: date, days: int = 90) -> list[StoredObservation]:
    """A value of each of the four KPIs for each day before `today`, at 07:00 UTC: what the
    fakes would have answered then (Plausible gives the day before's visitors)."""
    points = []
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        ts = datetime.combine(day, time(7), tzinfo=UTC).timestamp()
        for kpi, figure in (
            ("web.visitors", value("visitors", day - timedelta(days=1))),
            ("crate.downloads", value("crate_downloads", day)),
            ("hf.downloads", value("model_downloads", day)),
            ("forum.users", value("forum_users", day)),
        ):
            points.append(StoredObservation(kpi, ts, figure, kpi.partition(".")[0]))
    return points
