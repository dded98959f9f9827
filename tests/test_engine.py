"""The fan-in engine (`run.engine.collect_all`): every source once, at most `concurrency` at
once, outcomes in the order of the sources whatever order they finish in."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from kpi_collector.config import parse_config
from kpi_collector.run.engine import SourceOutcome, collect_all

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
