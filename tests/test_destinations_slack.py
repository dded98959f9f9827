"""`slack` against its local webhook and `chat.postMessage` (its fake): refusals are terminal
and explained; alerts are the text alone, escaped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpi_collector.destinations import (
    Slack,
)
from kpi_collector.destinations.slack.fake import FakeSlack
from kpi_collector.errors import DeliveryError
from tests.destinations import FIRED, MONDAY, TOKEN, make

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


@pytest.fixture
def hooks() -> Iterator[FakeSlack]:
    with FakeSlack.serve(TOKEN) as fake:
        yield fake


def test_slack_archived_channel_is_terminal(tmp_path: Path, hooks: FakeSlack) -> None:
    from kpi_collector.destinations import Slack

    hooks.archived = True
    p = make(tmp_path, Slack(webhook_url=hooks.slack_url, every="day"))
    result = p.process(now=MONDAY)
    assert "HTTP 410 (channel_is_archived)" in result.delivery_errors["slack"]
    assert p.delivery_engine().records()[0].attempts == 1


def test_slack_bot_errors(tmp_path: Path, hooks: FakeSlack) -> None:
    from kpi_collector.destinations import Slack

    p = make(tmp_path, Slack(token=TOKEN, channel="#nope", api_url=f"{hooks.url}/api", every="day"))
    result = p.process(now=MONDAY)
    assert "channel_not_found" in result.delivery_errors["slack"]
    with pytest.raises(ValueError, match="either webhook_url, or token and channel"):
        Slack(every="day")


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_slack_sends_the_text_alone_escaped(mode: str, hooks: FakeSlack) -> None:
    slack = (
        Slack(webhook_url=hooks.slack_url)
        if mode == "webhook"
        else Slack(token=TOKEN, channel="#kpis", api_url=f"{hooks.url}/api")
    )
    asyncio.run(slack.send_text("🚨 Alert: <!channel> R&D spend > 5"))
    [body] = hooks.slack
    assert body["text"] == "🚨 Alert: &lt;!channel&gt; R&amp;D spend &gt; 5"
    assert "blocks" not in body


def test_slack_refusals_are_terminal_and_explained(hooks: FakeSlack) -> None:
    hooks.archived = True
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(Slack(webhook_url=hooks.slack_url, retries=3).send_text(FIRED))
    assert not caught.value.transient and "channel_is_archived" in str(caught.value)
    bot = Slack(token=TOKEN, channel="#nope", api_url=f"{hooks.url}/api", retries=3)
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(bot.send_text(FIRED))
    assert not caught.value.transient and "channel_not_found" in str(caught.value)
    assert hooks.slack == []
    assert TOKEN not in str(caught.value)
