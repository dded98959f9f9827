"""`pushgateway` against the real Prometheus Pushgateway (tests/fakes/pushgateway.py starts
the binary): basic auth, infinities as Prometheus spells them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kpi_collector.destinations import (
    Pushgateway,
)
from tests.destinations import MONDAY, TOKEN, pipeline
from tests.fakes.pushgateway import gauge, pushgateway

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


def test_pushgateway_basic_auth(tmp_path: Path) -> None:
    with pushgateway(users={"kpi": TOKEN}) as url:
        right = Pushgateway(url=url, username="kpi", password=TOKEN, retries=0)
        result = pipeline(tmp_path, right, {"stars": 1647.0}).process(now=MONDAY)
        assert result.delivery_errors == {}
        assert gauge(url, "github.stars", auth=("kpi", TOKEN)) == 1647
        wrong = Pushgateway(url=url, username="kpi", password="wrong-" + TOKEN, retries=0)
        error = pipeline(tmp_path / "2", wrong, {"stars": 1647.0}).process(now=MONDAY)
        message = error.delivery_errors["pushgateway"]
        assert "401" in message and "check username and password" in message
        assert TOKEN not in message


def test_pushgateway_writes_infinities_as_prometheus_spells_them(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from kpi_collector.collect.http import HttpClient
    from kpi_collector.destinations.base import Delivery
    from kpi_collector.destinations.pushgateway import exposition

    values = {"up.inf": float("inf"), "down.inf": float("-inf"), "no.nan": float("nan")}
    delivery = Delivery(
        period="2026-11-23",
        period_start=MONDAY.date(),
        run_id=1,
        values=values,
        timestamps=dict.fromkeys(values, MONDAY.timestamp()),
        kpis={},
        order=list(values),
        tz=ZoneInfo("UTC"),
        now=MONDAY,
        destination="pushgateway",
    )
    text = exposition(delivery)
    assert 'kpi_value{kpi="up.inf",title="up.inf"} +Inf' in text
    assert 'kpi_value{kpi="down.inf",title="down.inf"} -Inf' in text
    assert 'kpi_value{kpi="no.nan",title="no.nan"} NaN' in text

    async def push(url: str) -> None:
        async with HttpClient() as client:
            delivery.http_client = client
            await Pushgateway(url=url).deliver(delivery)

    with pushgateway() as url:
        asyncio.run(push(url))
        assert gauge(url, "up.inf") == float("inf") and gauge(url, "down.inf") == float("-inf")
