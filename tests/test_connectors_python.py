"""`type: python`: a function returning `{name: number}`, sync or async, given or imported."""

from __future__ import annotations

import json
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


STUCK_MODULE = """
import threading
from pathlib import Path


def stuck(marker):
    Path(marker).write_text("called")
    threading.Event().wait()  # a blocking call that never returns (a socket without timeout)


def fine():
    return {"users": 5}
"""


def test_a_function_that_never_returns_fails_at_its_timeout_and_kpi_run_exits(
    tmp_path: Path,
) -> None:
    """A sync function stuck in a blocking call was reported as "timed out after 1s" with the
    other values stored, and then `kpi run` never exited: the function's pool thread was one
    that `asyncio.run` waits for at its end. Ctrl-C waited for it too."""
    (tmp_path / "acme_stuck.py").write_text(STUCK_MODULE)
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        "  - {name: stuck, type: python, function: 'acme_stuck:stuck', timeout: 1, retries: 0,\n"
        f"     kwargs: {{marker: {str(tmp_path / 'called')!r}}}}}\n"
        "  - {name: app, type: python, function: 'acme_stuck:fine'}\n"
    )
    try:
        done = subprocess.run(
            [str(KPI), "run"], cwd=tmp_path, capture_output=True, text=True, timeout=90
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("`kpi run` never exited after the source timed out") from None
    assert (tmp_path / "called").exists()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed stuck: timed out after 1s" in done.stdout
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        stored = db.execute("SELECT kpi, value FROM observations").fetchall()
        status = db.execute("SELECT status FROM runs").fetchall()
    assert stored == [("app.users", 5.0)]
    assert status == [("partial",)]


def test_what_a_function_prints_leaves_run_format_json_valid(tmp_path: Path) -> None:
    """A function that prints while it works (a debug `print`, a library's progress, a
    program it starts) wrote into `kpi run --format json`'s standard output, before the
    document: `kpi run --format json | jq` failed. What the run prints goes to stderr."""
    (tmp_path / "chatty.py").write_text(
        "import os, sys\n"
        "def stats():\n"
        "    print('fetching stats...')\n"
        "    sys.stdout.write('more\\n')\n"
        "    os.system('echo from a child')\n"
        "    return {'users': 5}\n"
    )
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n  - {name: app, type: python, function: 'chatty:stats'}\n"
    )
    done = subprocess.run(
        [str(KPI), "run", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [(v["kpi"], v["value"]) for v in document["values"]] == [("app.users", 5.0)]
    for line in ("fetching stats...", "more", "from a child"):
        assert line in done.stderr.splitlines()
    table = subprocess.run(
        [str(KPI), "run"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert table.returncode == 0 and "app.users" in table.stdout


def test_validate_finds_a_function_module_that_does_not_exist(tmp_path: Path) -> None:
    """`function: acme_metrcs:stats` (a typo) passed `kpi validate` ("ok") and failed only at
    `kpi run`. validate looks for the module (beside kpi.yaml, then installed) without
    running it: a config error naming the source and the module."""
    (tmp_path / "acme_metrics.py").write_text(
        "raise SystemExit('validate must not run this module')\ndef stats(): return {}\n"
    )
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        "  - {name: ok, type: python, function: 'acme_metrics:stats'}\n"
        "  - {name: typo, type: python, function: 'acme_metrcs:stats'}\n"
    )
    done = subprocess.run(
        [str(KPI), "validate"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert "source 'typo'" in line and "no module 'acme_metrcs'" in line
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n  - {name: ok, type: python, function: 'acme_metrics:stats'}\n"
        "  - {name: std, type: python, function: 'json:loads'}\n"
    )
    fine = subprocess.run(
        [str(KPI), "validate"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert fine.returncode == 0, fine.stdout + fine.stderr


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


def test_keys_that_are_not_metric_names_are_errors_never_merged() -> None:
    """A function's keys are metric names: `{1: 5, "1": 6}` stored one of the two under
    `1` (whichever came last), `{None: 3}` a KPI named `None`, and a `metrics:` entry `1`
    was reported missing though the function returned the key 1. Now a key that is not
    text is an error of the source naming it: what the function meant is unknown."""

    def int_and_text() -> dict[object, int]:
        return {1: 5, "1": 6}

    def none_key() -> dict[object, int]:
        return {None: 3, "ok": 4}

    def tuple_key() -> dict[object, int]:
        return {("a", "b"): 1}

    def numpy_key() -> dict[object, int]:
        import numpy

        return {numpy.int64(7): 1, "fine": 2}

    result = run(int_and_text, none_key, tuple_key, numpy_key)
    assert result.values == {}
    assert "not a metric name" in result.errors["int_and_text"]
    assert "1 (int)" in result.errors["int_and_text"]
    assert "None (NoneType)" in result.errors["none_key"]
    assert "('a', 'b') (tuple)" in result.errors["tuple_key"]
    assert "7 (int64)" in result.errors["numpy_key"]


def test_a_credential_given_in_kwargs_is_masked_where_the_function_echoes_it() -> None:
    """`kwargs: {api_key: ..., auth: {password: ...}}` written in the file: a function
    that failed with `invalid key <key>` put it into the error, the log and the store
    (only `${VAR}` values were masked). Values under credential names are now secret;
    other arguments still show."""

    def login(api_key: str, auth: dict[str, str], region: str) -> dict[str, int]:
        raise PermissionError(f"invalid key {api_key} for {auth['password']} in {region}")

    result = run(
        Function(
            login,
            kwargs={
                "api_key": "k-88f1e2d3c4b5",
                "auth": {"user": "kpi", "password": "pw-9911aa22bb"},
                "region": "eu-central-1",
            },
        )
    )
    error = result.errors["login"]
    assert "k-88f1e2d3c4b5" not in error and "pw-9911aa22bb" not in error
    assert "eu-central-1" in error and error.startswith("PermissionError: invalid key ***")


ASYNC_STUCK_MODULE = """
import asyncio
import threading
from pathlib import Path


async def stuck(marker):
    Path(marker).write_text("called")
    threading.Event().wait()  # a blocking call in an async function: no await ever yields


async def fine():
    await asyncio.sleep(0)
    return {"users": 5}


async def awaits():
    await asyncio.sleep(3600)  # waits politely: cancelled at the timeout
"""


def test_an_async_function_that_blocks_fails_at_its_timeout_and_stalls_nothing(
    tmp_path: Path,
) -> None:
    """An async function that makes a blocking call (a sync client inside `async def`) ran
    on the run's event loop and held it: no other source went on, no timeout fired, and
    `kpi run` never ended. Now it runs on a loop of its own, in a thread, and fails at its
    timeout as a sync function does; one that awaits is still cancelled at its timeout."""
    (tmp_path / "acme_async.py").write_text(ASYNC_STUCK_MODULE)
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        "  - {name: stuck, type: python, function: 'acme_async:stuck', timeout: 1, retries: 0,\n"
        f"     kwargs: {{marker: {str(tmp_path / 'called')!r}}}}}\n"
        "  - {name: awaits, type: python, function: 'acme_async:awaits', timeout: 1, retries: 0}\n"
        "  - {name: app, type: python, function: 'acme_async:fine'}\n"
    )
    try:
        done = subprocess.run(
            [str(KPI), "run"], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("`kpi run` never ended: the blocked loop ran nothing") from None
    assert (tmp_path / "called").exists()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed stuck: timed out after 1s" in done.stdout
    assert "failed awaits: timed out after 1s" in done.stdout
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        stored = db.execute("SELECT kpi, value FROM observations").fetchall()
    assert stored == [("app.users", 5.0)]


def test_numpy_floats_are_stored_as_the_number_they_print() -> None:
    """A function that returned numpy's float32 0.1 stored 0.10000000149011612 (the float32's
    binary value widened to a double), a number no one wrote; float16 likewise. Each is now
    stored as the shortest decimal that is that value in its own precision, as numpy prints
    it; a float64 is a double already, and an integer past 2**53 stays an error."""
    import numpy

    def floats() -> dict[str, object]:
        return {
            "f32": numpy.float32(0.1),
            "f16": numpy.float16(0.1),
            "f64": numpy.float64(0.1),
            "big32": numpy.float32(16777217),  # float32 holds 16777216
            "neg": numpy.float32(-2.5e-3),
        }

    def too_large() -> dict[str, object]:
        return {"i": numpy.int64(2**53 + 1)}

    result = run(floats, too_large)
    assert result.values == {
        "floats.f32": 0.1,
        "floats.f16": 0.1,
        "floats.f64": 0.1,
        "floats.big32": 16777216.0,
        "floats.neg": -0.0025,
    }
    assert "cannot be stored exactly" in result.errors["too_large.i"]
