"""`segment` against the local Tracking API (its fake): one event per period, a stable
`messageId`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
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


def test_a_split_delivery_taken_over_by_a_later_run_that_splits_otherwise_loses_no_kpi(
    tmp_path: Path, hooks: FakeSegment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The day's split delivery went out in batches; Segment took the first batch but
    answered after the timeout. The next run of the day took the pending delivery over with
    its own values, split otherwise (fewer KPIs). Each event's `messageId` was its position
    ("#1", "#2"), so Segment dropped the new events as repeats of the old ones holding
    other KPIs, and the KPIs the old unsent batch held never arrived. An event's messageId
    names the KPIs it holds: the same event is dropped as a repeat, another one is not."""
    import kpi_collector.destinations.segment as segment_module

    monkeypatch.setattr(segment_module, "BATCH_LIMIT", 70 * 1024)  # two events per batch
    values = {f"metric_with_a_longer_name_{i:04d}": float(i) for i in range(2000)}

    def segment() -> Segment:  # each run a process of its own
        return Segment(write_key=TOKEN, api_url=hooks.url, every="day", timeout=0.5, retries=0)

    hooks.answer_late(1.5)
    first = make(tmp_path, segment(), values=dict(values)).process(now=MONDAY)
    assert "timed out" in first.delivery_errors["segment"]
    assert hooks.batches == 1 and len(hooks.segment) == 2  # taken: parts 1 and 2 of 4
    later = {k: v + 0.5 for k, v in values.items() if int(k[-4:]) >= 300}
    p = make(tmp_path, segment(), values=later)
    assert p.process(now=MONDAY + timedelta(hours=2)).delivery_errors == {}
    arrived = {k for e in hooks.segment for k in e["properties"] if k.startswith("github.")}
    assert arrived >= {f"github.{k}" for k in later}
    (record,) = p.delivery_engine().records()
    assert record.status == "done"
    # the same events again (a retry after a timeout): Segment drops them all
    delivery = p.delivery_engine().delivery_from_result(
        segment(), p.process(now=MONDAY + timedelta(hours=3), deliver=False)
    )
    ids = [e["messageId"] for e in segment().tracks(delivery)]
    assert len(set(ids)) == len(ids) and set(ids) <= hooks.message_ids
