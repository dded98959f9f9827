"""What `kpi run` does around its requests: the start (before the first one) and the end (after
the last answer), in this process, against a real local site and a real SQLite store."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from kpi_collector.cli import run_command
from kpi_collector.pipeline import run_sync
from tests.conftest import BLOG_LINKS

Site = tuple[str, web.Application]


@pytest.fixture
def gc_restored() -> Iterator[None]:
    """The cyclic garbage collector as it was before the test, whatever the test left."""
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def write_config(folder: Path, url: str) -> Path:
    config = folder / "kpi.yaml"
    config.write_text(
        f"store: sqlite:///{folder / 'kpi.db'}\n"
        "sources:\n"
        f"  - {{name: blog, type: html, url: {url}/blog,"
        ' metrics: {posts: {css: "a.anthrazit", count: true}}}\n'
    )
    return config


def stored_posts(folder: Path) -> list[float]:
    with sqlite3.connect(folder / "kpi.db") as conn:
        return [v for (v,) in conn.execute("SELECT value FROM observations WHERE kpi='blog.posts'")]


def test_run_turns_the_garbage_collector_back_on_unless_the_process_exits(
    site: Site, workdir: Path, gc_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = site
    config = str(write_config(workdir, url))
    gc.enable()
    assert run_command(["-c", config, "run", "--no-deliver"]) == 0
    assert gc.isenabled()  # a caller that lives on (tests, a notebook) gets it back
    assert run_command(["-c", config, "run", "--no-deliver"], exits=True) == 0
    assert not gc.isenabled()  # `kpi` exits next: its first collection would only cost
    # both runs stored their value and printed the table
    assert stored_posts(workdir) == [BLOG_LINKS, BLOG_LINKS]
    out = capsys.readouterr().out
    assert out.count("blog.posts") == 2


class _LoudRepr:
    """A result whose repr is counted: nothing on the way out of a run should format it."""

    reprs = 0

    def __repr__(self) -> str:
        type(self).reprs += 1
        return "<loud>"


def test_run_sync_returns_the_result_without_formatting_it() -> None:
    async def produce() -> _LoudRepr:
        await asyncio.sleep(0)
        return _LoudRepr()

    result = run_sync(produce())
    assert isinstance(result, _LoudRepr)
    # asyncio.run's end restores the SIGINT handler, and Python 3.11 formats the old one,
    # which holds the main task and so its result: a whole RunResult of a large run
    assert _LoudRepr.reprs == 0


def test_run_sync_passes_exceptions_through() -> None:
    async def fail() -> None:
        raise LookupError("inner")

    with pytest.raises(LookupError, match="inner"):
        run_sync(fail())


def test_previous_values_read_while_collecting_are_those_before_the_run(tmp_path: Path) -> None:
    """Each KPI's previous value is the newest one stored strictly before the run's start,
    whether the source declared the metric (read while the requests are out), did not
    (`type: python` without `metrics:`, read after the run is stored) or it is derived."""
    from kpi_collector.config.models import KpiSpec
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.sources.python import Function

    url = f"sqlite:///{tmp_path / 'kpi.db'}"
    counts = iter([(3, 10), (5, 20), (8, 40)])

    def numbers() -> dict[str, float]:
        a, b = next(counts)
        return {"a": a, "b": b}

    def pipeline(*, declared: bool) -> Pipeline:
        metrics = {"a": {}} if declared else {}  # `b` undeclared either way
        return Pipeline(
            sources=[Function(numbers, name="n", metrics=metrics)],
            store=url,
            kpis={"n.sum": KpiSpec(formula="n.a + n.b")},
        )

    first = pipeline(declared=True).process(deliver=False)
    assert first.previous == {}
    second = pipeline(declared=True).process(deliver=False)
    assert second.values == {"n.a": 5, "n.b": 20, "n.sum": 25}
    assert second.previous == {"n.a": 3, "n.b": 10, "n.sum": 13}
    third = pipeline(declared=False).process(deliver=False)
    assert third.values == {"n.a": 8, "n.b": 40, "n.sum": 48}
    assert third.previous == {"n.a": 5, "n.b": 20, "n.sum": 25}
