"""`kpi demo`'s developer-tools numbers (Plausible, crates.io, Hugging Face, Discourse fakes):
90 days of history that the live run, through the real connectors, continues."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from kpi_collector.demo.devtools import value

KPI = Path(sys.executable).with_name("kpi")
DEVTOOLS = {
    "web.visitors": "visitors",
    "crate.downloads": "crate_downloads",
    "hf.downloads": "model_downloads",
    "forum.users": "forum_users",
}


def test_the_series_start_where_their_shapes_say() -> None:
    start = date(2024, 1, 1)
    assert value("visitors", start) == 300.0
    assert value("crate_downloads", start + timedelta(days=10)) == 20_000 + 1_500 + 12  # 0.12·100
    assert value("forum_users", start + timedelta(days=100)) == 800 + 160 + 10  # 0.001·10,000


def test_history_and_live_values_continue_each_other(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    done = subprocess.run(
        [str(KPI), "demo", "--dir", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    today = datetime.now(UTC).date()
    with sqlite3.connect(tmp_path / "demo" / "kpi.db") as db:
        rows = db.execute(
            "SELECT kpi, value, run_id FROM observations WHERE kpi IN (?, ?, ?, ?) ORDER BY ts",
            tuple(DEVTOOLS),
        ).fetchall()
        errors = db.execute("SELECT count(*) FROM run_errors").fetchone()[0]
    assert errors == 0
    for kpi, name in DEVTOOLS.items():
        values = [v for k, v, _ in rows if k == kpi]
        live = [v for k, v, run in rows if k == kpi and run is not None]
        assert len(values) == 91, kpi
        assert not [(a, b) for a, b in itertools.pairwise(values) if b < a], kpi
        # Plausible gives yesterday's visitors; the others today's totals
        day = today - timedelta(days=1) if kpi == "web.visitors" else today
        assert live == [value(name, day)], kpi
