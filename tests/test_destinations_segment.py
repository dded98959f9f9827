"""`segment` against the local Tracking API (its fake): one event per period, a stable
`messageId`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kpi_collector.destinations import (
    Segment,
)
from kpi_collector.destinations.segment.fake import FakeSegment
from tests.destinations import MONDAY, TOKEN, make

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


@pytest.fixture
def hooks() -> Iterator[FakeSegment]:
    with FakeSegment.serve(TOKEN) as fake:
        yield fake


def test_segment_message_id_is_stable_per_period(tmp_path: Path, hooks: FakeSegment) -> None:
    segment = Segment(write_key=TOKEN, api_url=hooks.url, every="run")
    p = make(tmp_path, segment)
    p.process(now=MONDAY)
    p.process(now=MONDAY)
    first, second = hooks.segment
    assert first["event"] == "KPIs Collected" and first["properties"]["github.stars"] == 1.0
    assert first["messageId"] != second["messageId"]  # two periods (runs): two events
    delivery = p.delivery_engine().delivery_from_result(
        segment, p.process(now=MONDAY, deliver=False)
    )
    assert segment.track(delivery)["messageId"] == segment.track(delivery)["messageId"]
