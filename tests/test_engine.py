"""The fan-in engine (`run.engine.collect_all`): every source once, at most `concurrency` at
once, outcomes in the order of the sources whatever order they finish in."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field

from kpi_collector.collect.http import HttpClient
from kpi_collector.config import parse_config
from kpi_collector.config.models import Defaults
from kpi_collector.errors import MetricErrors
from kpi_collector.run.engine import SourceOutcome, collect_all, collect_one
from kpi_collector.sources.base import Source

RUNNING: list[int] = []
PEAK: list[int] = [0]
STARTED: list[int] = []


async def reading(i: int) -> dict[str, float]:
    """Source i: takes longer the lower its number, so they finish out of order."""
    STARTED.append(i)
    RUNNING.append(i)
    PEAK[0] = max(PEAK[0], len(RUNNING))
    await asyncio.sleep(0.002 * (30 - i))
    RUNNING.remove(i)
    return {"v": float(i)}


def test_every_source_once_at_most_concurrency_at_once_in_source_order(tmp_path: Path) -> None:
    config = parse_config(
        "defaults: {concurrency: 4}\n"
        "sources:\n"
        + "".join(
            f"  - {{name: s{i:02d}, type: python, function: 'tests.test_engine:reading',"
            f" kwargs: {{i: {i}}}}}\n"
            for i in range(30)
        )
    )
    RUNNING.clear()
    STARTED.clear()
    PEAK[0] = 0
    done: list[str] = []

    def on_done(outcome: SourceOutcome) -> None:
        done.append(outcome.source)

    outcomes = asyncio.run(
        collect_all(
            config.sources,
            defaults=config.settings.defaults,
            tz=ZoneInfo("UTC"),
            base_dir=tmp_path,
            now=datetime(2026, 11, 30, 7, tzinfo=UTC),
            on_done=on_done,
        )
    )
    names = [f"s{i:02d}" for i in range(30)]
    assert [o.source for o in outcomes] == names
    assert [o.values for o in outcomes] == [{"v": float(i)} for i in range(30)]
    assert sorted(STARTED) == list(range(30))  # each once
    assert PEAK[0] == 4  # the limit, reached: 30 sources, 4 at a time
    assert sorted(done) == names and done != names  # each reported, as it finished


class _Partial(Source):
    """A plugin with `metrics:` in its config whose `collect` answers what it has, unchecked."""

    type: ClassVar[str] = "partial_test"
    metrics: list[str]
    got: dict[str, float]
    failing: dict[str, str] = Field(default_factory=dict)

    async def collect(self, ctx: Any) -> dict[str, float]:
        if self.failing:
            raise MetricErrors(dict(self.got), dict(self.failing))
        return dict(self.got)


def _outcome(source: Source) -> SourceOutcome:
    async def go() -> SourceOutcome:
        async with HttpClient() as client:
            return await collect_one(
                source,
                client,
                defaults=Defaults(timeout=2, retries=0),
                tz=ZoneInfo("UTC"),
                base_dir=Path.cwd(),
                now=datetime(2026, 11, 30, 7, tzinfo=UTC),
            )

    return asyncio.run(go())


def test_a_configured_metric_the_source_leaves_out_is_an_error_saying_so() -> None:
    """`metrics: [users, revenue]`, and `collect` answered users only: revenue was silently
    absent from the run (no value, no error); now it is that metric's error."""
    result = _outcome(_Partial(name="p", metrics=["users", "revenue"], got={"users": 3.0}))
    assert result.values == {"users": 3.0}
    ((metric, message, transient),) = result.errors
    assert metric == "revenue" and not transient
    assert "revenue: source type 'partial_test' gave no value and no error for it" in message


def test_a_metric_left_out_beside_others_that_failed_is_named_too() -> None:
    source = _Partial(
        name="p",
        metrics=["a", "b", "c"],
        got={"a": 1.0},
        failing={"b": "b: the page has no number"},
    )
    result = _outcome(source)
    assert result.values == {"a": 1.0}
    assert [(m, t.split(":")[0]) for m, t, _ in result.errors] == [("b", "b"), ("c", "c")]


def test_nothing_is_called_missing_when_the_names_come_from_the_answer(tmp_path: Path) -> None:
    """A program printing JSON without `metrics:` names its own metrics (the config's
    `value` is a guess); a whole failed source says why for every metric in one error."""
    script = tmp_path / "stats.py"
    script.write_text('print(\'{"signups": 4, "orders": 2}\')\n')
    config = parse_config(
        "sources:\n"
        f"  - {{name: cmd, type: command, command: [{sys.executable}, {script}]}}\n"
        f"  - {{name: bad, type: command, command: [{sys.executable}, -c, 'raise SystemExit(3)']}}\n"
    )
    good, bad = (_outcome(s) for s in config.sources)
    assert good.values == {"signups": 4.0, "orders": 2.0} and good.errors == []
    ((metric, message, _),) = bad.errors
    assert metric is None and "exited with 3" in message
