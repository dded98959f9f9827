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


def test_a_returned_text_with_numbers_on_two_lines_is_an_error() -> None:
    def lines() -> dict[str, str]:
        return {"split": "12\n374", "labelled": "Open tickets:\n1,234"}

    result = run(lines)
    assert result.values == {"lines.labelled": 1234}
    assert "more than one number" in result.errors["lines.split"]


def test_integers_beyond_what_is_stored_exactly_are_errors_not_rounded() -> None:
    """A stored number is a double: 2**53 + 1 would be stored as 2**53, and 10**400 is
    beyond any; each fails its own metric, and the others are stored. Decimals and
    fractions are numbers (a database driver's sum() is a Decimal)."""
    from decimal import Decimal
    from fractions import Fraction

    def counts() -> dict[str, object]:
        return {
            "exact": 2**53,
            "rounded": 2**53 + 1,
            "huge": 10**400,
            "negative": -(2**60) - 1,
            "price": Decimal("12.5"),
            "digits": Decimal("12345678901234567890.5"),
            "third": Fraction(1, 4),
        }

    result = run(counts)
    assert result.values == {
        "counts.exact": 2**53,
        "counts.price": 12.5,
        "counts.third": 0.25,
    }
    for name in ("rounded", "huge", "negative", "digits"):
        assert "stored exactly" in result.errors[f"counts.{name}"], result.errors


def test_a_multi_line_exception_is_a_one_line_error() -> None:
    def crm() -> dict[str, int]:
        raise RuntimeError(
            "cannot reach the CRM\nTraceback (most recent call last):\n  File x\n"
            + "KeyError: 'total'" * 100
        )

    result = run(crm)
    message = result.errors["crm"]
    assert "\n" not in message and len(message) <= 300
    assert message.startswith("RuntimeError: cannot reach the CRM Traceback")


def test_a_function_that_never_returns_does_not_keep_kpi_from_exiting(tmp_path: Path) -> None:
    """A sync function stuck for ever (a socket without a timeout) fails at the source's
    timeout, the run stores the rest, and `kpi run` exits: the thread it runs in was the
    default executor's, which the interpreter waits for at exit, for ever."""
    (tmp_path / "stuck.py").write_text(
        "import threading\n"
        "def forever():\n    threading.Event().wait()\n"
        "def fine():\n    return {'n': 3}\n"
    )
    (tmp_path / "kpi.yaml").write_text(
        "defaults: {timeout: 1, retries: 0}\n"
        "sources:\n"
        "  - {name: stuck, type: python, function: 'stuck:forever'}\n"
        "  - {name: ok, type: python, function: 'stuck:fine'}\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"}
    done = subprocess.run(
        [str(KPI), "run", "--no-deliver"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a guard against the hang, not a measure
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "timed out" in done.stdout + done.stderr
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        assert db.execute("SELECT kpi, value FROM observations").fetchall() == [("ok.n", 3.0)]
