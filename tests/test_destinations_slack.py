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


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_a_long_slack_digest_is_split_within_block_kit_limits_and_paced_in_one_run(
    mode: str, tmp_path: Path, hooks: FakeSlack
) -> None:
    """issue 18 §2 and §5: 1,800 KPIs are far over one message's 50 blocks / 12,000 characters
    of block text: they go out as several messages the fake (which refuses what Slack
    refuses) accepts, none cut; Slack's one message per second answers 429s on the way,
    which are pacing (Retry-After), so the digest finishes in this one run."""
    hooks.slack_limit = (1, 1.0)
    values = {f"kpi_{i:04d}": float(i) * 1000 for i in range(1800)}
    slack = (
        Slack(webhook_url=hooks.slack_url, every="day", retries=1)
        if mode == "webhook"
        else Slack(token=TOKEN, channel="#kpis", api_url=f"{hooks.url}/api", every="day", retries=1)
    )
    p = make(tmp_path, slack, values=values)
    result = p.process(now=MONDAY)
    assert result.delivery_errors == {}
    parts = hooks.slack
    assert len(parts) > 1 and hooks.rate_limited >= 1  # several messages, paced by 429s
    texts = [b["text"]["text"] for m in parts for b in m["blocks"] if b["type"] == "section"]
    lines = [line for text in texts for line in text.splitlines()]
    assert lines == [f"*github.kpi_{i:04d}*: {i * 1000:,}" for i in range(1800)]  # all, in order
    headers = [m["blocks"][0]["text"]["text"] for m in parts]
    assert headers == [
        f"KPIs — 23 November 2026 ({i}/{len(parts)})" for i in range(1, len(parts) + 1)
    ]
    assert all(len(m["blocks"]) <= 50 for m in parts)
    (record,) = p.delivery_engine().records()
    assert (record.status, record.progress) == ("done", len(parts))


def test_pack_blocks_keeps_to_50_blocks_per_message() -> None:
    from kpi_collector.destinations.slack import pack_blocks

    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*k{i}*: 1"}} for i in range(120)
    ]
    groups = pack_blocks(blocks, 49, 10_000)
    assert [len(g) for g in groups] == [49, 49, 22]
    assert [b for g in groups for b in g] == blocks


@pytest.mark.parametrize("mode", ["webhook", "bot"])
def test_slack_refusal_of_too_many_blocks_names_the_rule_and_is_refused_for_good(
    mode: str, hooks: FakeSlack
) -> None:
    """What Slack answers to 51 blocks (its `invalid_blocks` and, for chat.postMessage, its own
    `errors` line) reaches the error; a payload refusal is `refused` (marked failed, later
    periods go on), not retried."""
    from kpi_collector.collect.http import HttpClient
    from kpi_collector.destinations.text import Outbox

    slack = (
        Slack(webhook_url=hooks.slack_url)
        if mode == "webhook"
        else Slack(token=TOKEN, channel="#kpis", api_url=f"{hooks.url}/api")
    )
    body = {"text": "x", "blocks": [{"type": "divider"}] * 51}

    async def post() -> None:
        async with HttpClient() as client:
            await slack.post(Outbox(client), body)

    with pytest.raises(DeliveryError) as caught:
        asyncio.run(post())
    error = caught.value
    assert error.refused and not error.transient
    if mode == "webhook":
        assert "HTTP 400 (invalid_blocks): Slack refused the message's blocks" in str(error)
    else:
        assert str(error) == (
            "Slack refused chat.postMessage (invalid_blocks): Slack refused the message's blocks"
            " — no more than 50 items allowed [json-pointer:/blocks]"
        )
    assert hooks.slack == []
