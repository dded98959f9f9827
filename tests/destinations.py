"""What the tests of single destinations share: pipelines with one `github` source whose
values the test sets, delivering to the history store and the destinations under test."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kpi_collector import Pipeline
from kpi_collector.destinations import Store
from kpi_collector.destinations.base import Destination
from kpi_collector.sources.python import Function

DAY = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # a Monday, ISO week 49
MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # ISO week 48
TOKEN = "hook-token-0123456789"  # the secret part of webhook URLs, bot tokens, write keys
FIRED = "🚨 Alert: app.dau below 100 — Daily active users is 80, below 100"


def pipeline(tmp_path: Path, destination: Destination, state: dict[str, float]) -> Pipeline:
    """`github.<metric>` from `state` (changes show in the next run), titled KPIs, UTC."""
    return Pipeline(
        sources=[Function(lambda: dict(state), name="github")],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), destination],
        kpis={"github.stars": {"title": "GitHub Stargazers"}},
        base_dir=tmp_path,
    )


def make(tmp_path: Path, *destinations: object, values: dict[str, float] | None = None) -> Pipeline:
    """`github.<metric>` from `values` (default stars 1), untitled, periods in Berlin time."""
    state = values if values is not None else {"stars": 1.0}
    return Pipeline(
        sources=[Function(lambda: dict(state), name="github")],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), *destinations],  # type: ignore[list-item]
        timezone="Europe/Berlin",
        base_dir=tmp_path,
    )
