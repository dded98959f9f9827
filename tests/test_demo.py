"""`kpi demo`: its made-up history and its live run continue each other, and the first screen
is a healthy team's dashboard."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from kpi_collector.config import load_config
from kpi_collector.demo.server import TOTALS, metric
from kpi_collector.report.data import DashboardData
from kpi_collector.report.pages import trend_class

KPI = Path(sys.executable).with_name("kpi")
#: the demo's KPIs that count everything so far: they never drop from one value to the next
RUNNING_TOTALS = {
    "github.stars",
    "github.forks",
    "github.watchers",
    "github.contributors",
    "github.releases_downloads",
    "blog.posts",
    "podcast.downloads",
    "crm.paying_customers",
    "crate.downloads",  # the devtools series (demo/devtools.py)
    "forum.users",
    "app.users",
}


def test_every_running_total_grows_day_after_day_for_years() -> None:
    """The demo's formula over three years around its epoch, any day the demo may run."""
    start = date(2025, 6, 1)
    for name in TOTALS:
        values = [metric(name, start + timedelta(days=i)) for i in range(3 * 365)]
        drops = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(values)) if b < a]
        assert not drops, f"{name} drops: {drops[:3]}"
        assert values[-1] > values[0]


def test_demo_history_and_live_run_continue_each_other(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    done = subprocess.run(
        [str(KPI), "demo", "--dir", "demo"],
        cwd=tmp_path,
        env={**env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "demo" / "kpi.db") as db:
        rows = db.execute("SELECT kpi, value FROM observations ORDER BY kpi, ts, id").fetchall()
        live_run = db.execute("SELECT max(id) FROM runs").fetchone()[0]
        live = {
            kpi
            for (kpi,) in db.execute(
                "SELECT kpi FROM observations WHERE run_id = ?", (live_run,)
            ).fetchall()
        }
    series: dict[str, list[float]] = {}
    for kpi, value in rows:
        series.setdefault(kpi, []).append(value)
    assert len(live) == 16 and live == set(series)
    for kpi in sorted(live):  # 90 days of made-up history and today's live value
        assert len(series[kpi]) == 91, f"{kpi} has {len(series[kpi]) - 1} past values"
    for kpi in sorted(RUNNING_TOTALS):
        values = series[kpi]
        drops = [(a, b) for a, b in itertools.pairwise(values) if b < a]
        assert not drops, f"the running total {kpi} drops: {drops}"

    config = load_config(tmp_path / "demo" / "kpi.yaml")
    data = DashboardData(config)
    try:
        for period in ("day", "week", "month"):
            doc = data.overview(period)
            tiles = doc["kpis"]
            assert len(tiles) == 16 and all(t["status"] == "ok" for t in tiles)
            red = [
                t["id"] for t in tiles if trend_class(t["change"], t["higher_is_better"]) == "bad"
            ]
            assert len(red) <= 2, f"{period}: red tiles {red}"  # most tiles are not red
            assert all(t["id"] not in RUNNING_TOTALS for t in tiles if t["id"] in red)
            assert doc["health"] is not None and doc["health"]["problems"] == []
    finally:
        data.close()
