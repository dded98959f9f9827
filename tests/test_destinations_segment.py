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


def test_segment_over_32_kb_goes_out_in_parts_through_the_batch_endpoint(
    tmp_path: Path, hooks: FakeSegment
) -> None:
    """issue 18 §2: one track call for 900 KPIs is ~43 KB; Segment (and its fake) refuse a
    call over 32 KB with 400. Split, every KPI arrives once, each event under the limit."""
    import json

    from kpi_collector.destinations.segment import CALL_LIMIT

    values = {f"metric_with_a_longer_name_{i:04d}": float(i) for i in range(900)}
    segment = Segment(write_key=TOKEN, api_url=hooks.url, every="run", retries=0)
    p = make(tmp_path, segment, values=values)
    delivery = p.delivery_engine().delivery_from_result(
        segment, p.process(now=MONDAY, deliver=False)
    )
    assert len(json.dumps(segment.track(delivery))) > 40_000  # one call would be refused
    result = p.process(now=MONDAY)
    assert result.delivery_errors == {}
    assert hooks.batches == 1
    parts = hooks.segment
    assert [e["properties"]["part"] for e in parts] == [1, 2]
    assert all(e["properties"]["parts"] == 2 for e in parts)
    assert all(len(json.dumps(e, ensure_ascii=False).encode()) <= CALL_LIMIT for e in parts)
    got = {k: v for e in parts for k, v in e["properties"].items() if k.startswith("github.")}
    assert got == {f"github.{k}": v for k, v in values.items()}
    assert len({e["messageId"] for e in parts}) == 2
    values.clear()
    values.update(stars=1.0, forks=2.0, issues=3.0)  # a later, small period: one track call
    assert p.process(now=MONDAY).delivery_errors == {}
    assert hooks.segment[-1]["properties"]["github.forks"] == 2.0 and hooks.batches == 1


@pytest.mark.parametrize(
    "answer",
    ["<html><body>Sign in to continue</body></html>", {"success": False, "message": "boom"}],
    ids=["html-page", "success-false"],
)
def test_a_200_that_is_not_segments_success_is_not_a_delivery(
    tmp_path: Path, hooks: FakeSegment, answer: object
) -> None:
    """A 200 with a proxy's sign-in page (or `{"success": false}`) was taken as delivered and
    the period's values never reached Segment; it is an error and the delivery stays pending."""
    hooks.fail_next(200, answer)
    p = make(tmp_path, Segment(write_key=TOKEN, api_url=hooks.url, every="day", retries=0))
    result = p.process(now=MONDAY)
    assert result.exit_code == 1 and "not Segment's success" in result.delivery_errors["segment"]
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"
    assert p.deliver_pending()[0].ok and len(hooks.segment) == 1
