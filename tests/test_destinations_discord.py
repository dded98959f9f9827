"""`discord` against its local webhook (its fake): the digest split into messages of 2000
characters and resumed after the parts sent, errors that say how to fix them; alerts escaped,
never pinging, cut to 2000 characters, waiting for a rate limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpi_collector.destinations import (
    Discord,
)
from kpi_collector.destinations.discord.fake import FakeDiscord
from kpi_collector.errors import DeliveryError
from tests.destinations import FIRED, MONDAY, TOKEN, make

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


@pytest.fixture
def hooks() -> Iterator[FakeDiscord]:
    with FakeDiscord.serve(TOKEN) as fake:
        yield fake


def test_split_discord_message_resumes_after_the_parts_sent(
    tmp_path: Path, hooks: FakeDiscord
) -> None:
    values = {f"kpi_{i:03d}": float(i) * 1000 for i in range(120)}
    discord = Discord(webhook_url=hooks.discord_url, every="day", retries=0)
    p = make(tmp_path, discord, values=values)
    hooks.discord_limit = (1, 120.0)  # one message, then 429 with retry_after 120s > 60s
    result = p.process(now=MONDAY)
    assert result.exit_code == 1 and "429" in result.delivery_errors["discord"]
    assert len(hooks.discord) == 1
    (record,) = p.delivery_engine().records()
    assert (record.status, record.progress) == ("pending", 1)
    hooks.discord_limit = (5, 2.0)
    outcomes = asyncio.run(p.delivery_engine().deliver_pending())
    assert [o.ok for o in outcomes] == [True]
    contents = [m["content"] for m in hooks.discord]
    assert len(contents) == 2 and len(set(contents)) == 2  # the second part, not the first again
    assert contents[0].startswith("**KPIs — 23 November 2026**")
    assert all(len(c) <= 2000 for c in contents)
    assert sum(c.count("**github.kpi\\_") for c in contents) == 120  # `_` escaped
    assert hooks.discord[0]["allowed_mentions"] == {"parse": []}


def test_discord_errors_say_how_to_fix(tmp_path: Path, hooks: FakeDiscord) -> None:
    wrong = Discord(webhook_url=hooks.discord_url.replace(TOKEN, "not-the-token"), every="day")
    result = make(tmp_path, wrong).process(now=MONDAY)
    message = result.delivery_errors["discord"]
    assert "401" in message and "copy the webhook URL again" in message
    assert "not-the-token" not in message


def test_discord_escapes_markup_never_pings_and_keeps_to_2000_characters(
    hooks: FakeDiscord,
) -> None:
    discord = Discord(webhook_url=hooks.discord_url)
    text = "🚨 Alert: @everyone *sales_total* is `low` — " + "x" * 2500
    asyncio.run(discord.send_text(text))
    [message] = hooks.discord
    assert len(message["content"]) == 2000 and message["content"].endswith("…")
    assert message["content"].startswith(
        "🚨 Alert: @\u200beveryone \\*sales\\_total\\* is \\`low\\` — xxx"
    )
    assert message["allowed_mentions"] == {"parse": []}


def test_discord_waits_for_a_rate_limit_and_sends_once(hooks: FakeDiscord) -> None:
    hooks.fail_next(
        429,
        {"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
        {"Retry-After": "1"},
    )
    asyncio.run(Discord(webhook_url=hooks.discord_url, retries=1).send_text(FIRED))
    assert [m["content"] for m in hooks.discord] == [FIRED]
    hooks.fail_next(429, {"message": "You are being rate limited.", "retry_after": 0.2})
    with pytest.raises(DeliveryError) as caught:  # no retries left: fails, transient
        asyncio.run(Discord(webhook_url=hooks.discord_url, retries=0).send_text(FIRED))
    assert caught.value.transient and "rate limited" in str(caught.value)


def test_discord_refusals_are_terminal_and_explained(hooks: FakeDiscord) -> None:
    wrong = hooks.discord_url.replace(TOKEN, "not-the-token")
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(Discord(webhook_url=wrong, retries=3).send_text(FIRED))
    assert not caught.value.transient and "copy the webhook URL again" in str(caught.value)
    assert hooks.discord == []
    assert TOKEN not in str(caught.value)


def test_a_long_discord_digest_is_paced_to_the_end_in_one_run(
    tmp_path: Path, hooks: FakeDiscord
) -> None:
    """issue 18 §5: 1,800 KPIs (29 parts here, `_` escaped) against Discord's 5 posts per 2 s: a 429 after
    parts went through is pacing (wait `retry_after`, go on), not a failed attempt."""
    values = {f"kpi_{i:04d}": float(i) * 1000 for i in range(1800)}
    discord = Discord(webhook_url=hooks.discord_url, every="day", retries=1)
    p = make(tmp_path, discord, values=values)
    result = p.process(now=MONDAY)
    assert result.delivery_errors == {}
    contents = [m["content"] for m in hooks.discord]
    assert len(contents) == 29 and len(set(contents)) == 29  # 5 per 2 s: 429s along the way
    assert sum(c.count("**github.kpi\\_") for c in contents) == 1800
    (record,) = p.delivery_engine().records()
    assert record.status == "done"


def test_a_split_digest_refused_at_part_3_is_retried_after_the_parts_sent(
    tmp_path: Path, hooks: FakeDiscord
) -> None:
    """issue 18: a digest of 3 messages whose third Discord refused for good (50035): the
    delivery is failed after 2 parts; `kpi deliver --retry PERIOD` (here its library call)
    sends part 3 alone, so the channel has each part once."""
    from kpi_collector.store import deliveries as ledger

    values = {f"kpi_{i:03d}": float(i) * 1000 for i in range(200)}
    p = make(
        tmp_path, Discord(webhook_url=hooks.discord_url, every="day", retries=0), values=values
    )
    invalid = {  # Discord's answer to a form it refuses (as its fake gives for > 2000)
        "code": 50035,
        "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "x"}]}},
        "message": "Invalid Form Body",
    }
    hooks.fail_next(400, invalid, after=2)
    result = p.process(now=MONDAY)
    assert "Discord refused the message's form" in result.delivery_errors["discord"]
    assert len(hooks.discord) == 2
    (record,) = p.delivery_engine().records()
    assert (record.status, record.progress) == ("failed", 2)
    assert p.store is not None
    assert ledger.retry_failed(p.store, "2026-11-23") == 1
    assert [o.ok for o in asyncio.run(p.delivery_engine().deliver_pending())] == [True]
    contents = [m["content"] for m in hooks.discord]
    assert len(contents) == 3 and len(set(contents)) == 3  # parts 1, 2, then 3: none twice
    lines = [line for c in contents for line in c.splitlines() if "github.kpi" in line]
    assert [line.split("**")[1] for line in lines] == [f"github.kpi\\_{i:03d}" for i in range(200)]


def test_a_200_without_the_message_is_not_a_delivery(tmp_path: Path, hooks: FakeDiscord) -> None:
    """With `?wait=true` Discord answers the message it created; a 200 without it (a
    proxy's sign-in page) was taken as delivered and the digest lost. It is an error and the
    delivery stays pending."""
    hooks.fail_next(200, "<html><body>Sign in to continue</body></html>")
    p = make(tmp_path, Discord(webhook_url=hooks.discord_url, every="day", retries=0))
    result = p.process(now=MONDAY)
    assert result.exit_code == 1 and "not the message" in result.delivery_errors["discord"]
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"
    assert [o.ok for o in asyncio.run(p.delivery_engine().deliver_pending())] == [True]
    assert len(hooks.discord) == 1


@pytest.mark.parametrize(
    ("username", "problem"),
    [
        ("Discord KPIs", "'discord'"),
        ("clyde-bot", "'clyde'"),
        ("x" * 81, "1 to 80"),
        ("  ", "1 to 80"),
    ],
)
def test_a_webhook_name_discord_refuses_is_a_config_error(
    tmp_path: Path, username: str, problem: str
) -> None:
    """Discord answers 400 (50035) to every message whose webhook name holds "discord" or
    "clyde" or is over 80 characters: each period's digest was refused for good. The config
    says so at load, naming the key."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n  - {name: app, type: command, command: [echo, '1'], metric: users}\n"
        "destinations:\n"
        f"  - {{type: discord, webhook_url: 'https://discord.example/api/webhooks/1/{TOKEN}', "
        f"username: '{username}'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "username" in str(caught.value) and problem in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert Discord(webhook_url=f"https://d.example/{TOKEN}", username=" KPI  bot ").username == (
        "KPI bot"
    )


@pytest.mark.parametrize(
    ("avatar", "problem"),
    [
        ("cdn.example/kpi.png", "is not an http(s) URL"),  # no scheme
        ("ftp://cdn.example/kpi.png", "is not an http(s) URL"),
        ("https://cdn.example/kpi bot.png", "holds a space"),
    ],
)
def test_an_avatar_url_discord_refuses_is_a_config_error(
    tmp_path: Path, avatar: str, problem: str
) -> None:
    """Discord answers 400 (50035 "Not a well formed URL.") to every message whose avatar_url
    is no http(s) URL: each period's digest was refused for good (marked failed). The config
    says so at load, naming the key; a good one is taken as written."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n  - {name: app, type: command, command: [echo, '1'], metric: users}\n"
        "destinations:\n"
        f"  - {{type: discord, webhook_url: 'https://discord.example/api/webhooks/1/{TOKEN}', "
        f"avatar_url: '{avatar}'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "avatar_url" in str(caught.value) and problem in str(caught.value)
    assert TOKEN not in str(caught.value)
    good = "https://cdn.example/kpi.png"
    assert Discord(webhook_url=f"https://d.example/{TOKEN}", avatar_url=good).avatar_url == good


@pytest.mark.parametrize("thread", ["kpi-thread", "https://discord.com/channels/1/2", "12ab"])
def test_a_thread_id_that_is_no_number_is_a_config_error(tmp_path: Path, thread: str) -> None:
    """Discord answers 400 (50035, "is not snowflake") to every message for a thread_id that
    is no number: each period's digest was refused for good. The config says so at load."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n  - {name: app, type: command, command: [echo, '1'], metric: users}\n"
        "destinations:\n"
        f"  - {{type: discord, webhook_url: 'https://discord.example/api/webhooks/1/{TOKEN}', "
        f"thread_id: '{thread}'}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "thread_id" in str(caught.value) and "Copy Thread ID" in str(caught.value)
    hook = f"https://d.example/{TOKEN}"
    assert Discord(webhook_url=hook, thread_id="1234567890123456789").thread_id == (
        "1234567890123456789"
    )
