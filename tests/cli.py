"""Running the installed `kpi` command in a folder, as a user would, for end-to-end tests."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

KPI = Path(sys.executable).parent / "kpi"


def run_kpi(
    folder: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`kpi ARGS` in `folder` (where `kpi.yaml` and `.env` are); its output as text. `env`
    adds to a bare environment (PATH, HOME=folder, NO_COLOR), so nothing of the test
    process's own environment (a `KPI_*` variable, a token) leaks into the run."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "NO_COLOR": "1"}
    return subprocess.run(
        [str(KPI), *args],
        cwd=folder,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stored_values(folder: Path) -> dict[str, float]:
    """{KPI id: value} of every observation in `folder`'s default store (`kpi.db`)."""
    with sqlite3.connect(folder / "kpi.db") as db:
        return dict(db.execute("SELECT kpi, value FROM observations").fetchall())


def store_dump(folder: Path) -> str:
    """The SQL dump of `folder`'s default store (`kpi.db`): to search it for what must never
    be stored, such as a token."""
    with sqlite3.connect(folder / "kpi.db") as db:
        return "\n".join(db.iterdump())


def observations(folder: Path) -> list[tuple[str, float, int]]:
    """(KPI id, value, backfilled: 0 or 1) of every observation in `folder`'s default store
    (`kpi.db`), by KPI and then time."""
    with sqlite3.connect(folder / "kpi.db") as db:
        return db.execute(
            "SELECT kpi, value, backfilled FROM observations ORDER BY kpi, ts"
        ).fetchall()


def run_and_backfill_twice(
    folder: Path, since: str, *, source: str, env: Mapping[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], ...]:
    """`kpi run --format json`, then `kpi backfill --since SINCE` twice, in `folder` (see
    run_kpi): the run and the first backfill succeed, the second adds nothing to `source`.
    The three results, in that order."""
    ran = run_kpi(folder, "run", "--format", "json", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    first = run_kpi(folder, "backfill", "--since", since, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_kpi(folder, "backfill", "--since", since, env=env)
    assert f"{source}: 0 values added" in second.stdout
    return ran, first, second
