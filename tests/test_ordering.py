"""One KPI order everywhere: the north star, then the ids of `kpis:`, then the sources' KPIs
in config order (disabled sources keep their place), then every other stored id by id.

Run result, deliveries, dashboard tiles, `kpi history`, the report's digest and
`kpi validate` all show the KPIs in this order (`config.models.display_order`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from kpi_collector.commands.core import describe
from kpi_collector.commands.history import history_document
from kpi_collector.config import load_config
from kpi_collector.pipeline import Pipeline
from kpi_collector.report.data import DashboardData
from kpi_collector.report.html import render_markdown
from kpi_collector.store import HistoryStore, StoredObservation

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)

CONFIG = """\
north_star: web.visits
sources:
  - name: web
    type: python
    function: "tests.test_ordering:web"
    metrics: {zeta: {}, alpha: {}, visits: {}}
  - name: old
    type: python
    function: "tests.test_ordering:old"
    enabled: false
    metrics: {b: {}, a: {}}
  - name: app
    type: python
    function: "tests.test_ordering:app"
    metrics: {users: {}, signups: {}}
destinations:
  - {type: jsonl, path: out.jsonl}
kpis:
  app.signups: {title: Sign-ups}
  app.rate: {formula: "app.signups / app.users"}
"""

#: every id, in the one order
EVERY = [
    "web.visits",  # the north star
    "app.signups",  # `kpis:` in their order
    "app.rate",
    "web.zeta",  # the sources' KPIs in config order
    "web.alpha",
    "old.b",  # a disabled source keeps its place
    "old.a",
    "app.users",
    "legacy.a",  # the rest by id
    "legacy.z",
]


def web() -> dict[str, float]:
    return {"alpha": 1, "visits": 2, "zeta": 3}


def old() -> dict[str, float]:
    return {"a": 1, "b": 2}


def app() -> dict[str, float]:
    return {"signups": 5, "users": 50}


def in_order(ids: list[str]) -> list[str]:
    """EVERY restricted to `ids` (which must all be in it)."""
    assert set(ids) <= set(EVERY), set(ids) - set(EVERY)
    return [k for k in EVERY if k in ids]


def test_every_view_orders_kpis_the_same(tmp_path: Path) -> None:
    path = tmp_path / "kpi.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    config = load_config(path)
    # values of the disabled source and of ids no longer in the config, from the past
    store = HistoryStore(config.store_url)
    day = NOW.timestamp() - 86400
    store.add_observations(
        [
            StoredObservation(kpi, day, 1.0, kpi.partition(".")[0])
            for kpi in ("legacy.z", "old.a", "legacy.a", "old.b")
        ]
    )
    store.close()

    assert config.order(reversed(EVERY)) == EVERY
    assert config.order(sorted(EVERY)) == EVERY

    pipeline = Pipeline.from_config(config)
    try:
        assert pipeline.order(sorted(EVERY)) == EVERY
        result = pipeline.process(now=NOW, deliver=False)
        collected = ["web.zeta", "web.alpha", "web.visits", "app.users", "app.signups", "app.rate"]
        assert sorted(result.values) == sorted(collected)
        assert list(result.values) == in_order(collected)
        engine = pipeline.delivery_engine()
        [destination] = pipeline.destinations
        delivery = engine.delivery_from_result(destination, result)
        assert delivery.order == in_order(collected)
        assert list(delivery.values) == in_order(collected)
        assert delivery.ordered == in_order(collected)
    finally:
        assert pipeline.store is not None
        pipeline.store.close()

    data = DashboardData(config, clock=NOW.timestamp)
    try:
        tiles = [t["id"] for t in data.overview("day")["kpis"]]
        assert tiles == EVERY
        assert data.order(sorted(EVERY)) == EVERY
    finally:
        data.close()

    history = history_document(config)
    assert list(history["kpis"]) == EVERY

    digest = render_markdown(config, period="day", now=NOW)
    shown = re.findall(r"^- \*\*(.+?)\*\*: ", digest, flags=re.MULTILINE)
    assert shown == [("Sign-ups" if k == "app.signups" else k) for k in EVERY], digest

    assert describe(config)["kpis"] == in_order(config.kpi_ids())
