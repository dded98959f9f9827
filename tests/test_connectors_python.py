"""`type: python`: a function returning `{name: number}`, sync or async, given or imported."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from kpi_collector.sources import Function
from tests.fakes.collect import run

KPI = Path(sys.executable).with_name("kpi")


def get_blog_stats() -> dict[str, int]:
    return {"posts": 12, "authors": 3}


async def get_async_stats() -> dict[str, float]:
    return {"mrr": 1234.5}


def test_python_functions_sync_and_async() -> None:
    result = run(
        get_blog_stats,
        Function(get_async_stats, name="billing"),
        Function("tests.test_connectors_python:get_blog_stats", name="imported"),
    )
    assert result.values == {
        "get_blog_stats.posts": 12,
        "get_blog_stats.authors": 3,
        "billing.mrr": 1234.5,
        "imported.posts": 12,
        "imported.authors": 3,
    }


def test_python_function_errors() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("database is down")

    def wrong_shape() -> list[int]:
        return [1]

    result = run(broken, wrong_shape)
    assert result.errors["broken"] == "RuntimeError: database is down"
    assert "expected a mapping" in result.errors["wrong_shape"]


def test_a_module_beside_kpi_yaml_is_importable_from_any_folder(tmp_path: Path) -> None:
    """`function: "acme_metrics:support_queue"` with acme_metrics.py beside kpi.yaml, run by
    `kpi -c` from another working directory (the module is on no other path)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "acme_metrics.py").write_text(
        "def support_queue():\n    return {'open': 17, 'waiting': '4'}\n"
    )
    (project / "kpi.yaml").write_text(
        "sources:\n  - {name: support, type: python, function: 'acme_metrics:support_queue'}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "120", "NO_COLOR": "1"}
    done = subprocess.run(
        [str(KPI), "-c", str(project / "kpi.yaml"), "run", "--no-deliver"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(project / "kpi.db") as db:
        rows = dict(db.execute("SELECT kpi, value FROM observations").fetchall())
    assert rows == {"support.open": 17.0, "support.waiting": 4.0}
    assert not (elsewhere / "kpi.db").exists()


def test_a_sync_function_still_running_after_its_timeout_does_not_keep_the_run_waiting(
    tmp_path: Path,
) -> None:
    """A sync function that never returns times out; `kpi run` stores the other source and
    exits, instead of waiting for the function's thread (which asyncio.run joins)."""
    release = tmp_path / "release"
    (tmp_path / "stuck_metrics.py").write_text(
        "import time\n"
        "from pathlib import Path\n\n"
        "def stuck():\n"
        f"    for _ in range(2400):  # until the test has its answer (at most 2 min)\n"
        f"        if Path({str(release)!r}).exists():\n"
        "            break\n"
        "        time.sleep(0.05)\n"
        "    return {'n': 1}\n\n"
        "def fine():\n"
        "    return {'n': 5}\n"
    )
    (tmp_path / "kpi.yaml").write_text(
        "defaults: {timeout: 1, retries: 0}\n"
        "sources:\n"
        "  - {name: stuck, type: python, function: 'stuck_metrics:stuck'}\n"
        "  - {name: fine, type: python, function: 'stuck_metrics:fine'}\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"}
    try:
        # before the release the function never returns: an exit here is the run's own
        done = subprocess.run(
            [str(KPI), "run", "--no-deliver"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        release.touch()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed stuck: timed out after 1s" in done.stdout
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        rows = dict(db.execute("SELECT kpi, value FROM observations").fetchall())
    assert rows == {"fine.n": 5.0}
