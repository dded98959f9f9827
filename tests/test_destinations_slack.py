"""`slack` against its local webhook and `chat.postMessage` (its fake): refusals are terminal
and explained; alerts are the text alone, escaped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kpi_collector.cli import group
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
    lines = _kpi_lines(parts)
    assert lines == [f"github.kpi_{i:04d}: {i * 1000:,}" for i in range(1800)]  # all, in order
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


N = 900  # KPIs: a Slack digest of 3 parts (50 blocks, 12,000 characters of text each)


def _split_digest_config(tmp_path: Path, url: str, kpis: str = "", *, bot: bool = False) -> Path:
    """kpi.yaml: N KPIs (`github.kpi_0000`..) from a Python source, to the Slack webhook
    at `url` (`bot`: chat.postMessage of the fake at `url`) without retries; `kpis` is an
    optional `kpis:` block."""
    values = {f"kpi_{i:04d}": float(i) for i in range(N)}
    (tmp_path / "v.json").write_text(json.dumps(values))
    (tmp_path / "split_digest_kpis.py").write_text(
        f"import json\ndef github():\n    return json.load(open({str(tmp_path / 'v.json')!r}))\n"
    )
    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        '  - {name: github, type: python, function: "split_digest_kpis:github"}\n'
        "destinations:\n"
        + (
            f'  - {{name: slack, type: slack, token: "{TOKEN}", channel: C0123456789, '
            f'api_url: "{url}/api", retries: 0}}\n'
            if bot
            else f'  - {{name: slack, type: slack, webhook_url: "{url}", retries: 0}}\n'
        )
        + kpis
    )
    return config


def _parts(hooks: FakeSlack) -> list[str]:
    """The headers of the messages the fake took, in order."""
    return [m["blocks"][0]["text"]["text"] for m in hooks.slack]


def _kpi_lines(messages: list[dict[str, Any]]) -> list[str]:
    """The lines of the messages' rich text blocks (the KPI lines), as Slack shows them."""
    from kpi_collector.destinations.slack import block_texts

    texts = [
        t for m in messages for b in m["blocks"] if b["type"] == "rich_text" for t in block_texts(b)
    ]
    return [line for text in texts for line in text.splitlines()]


def _lines(hooks: FakeSlack) -> list[str]:
    return _kpi_lines(hooks.slack)


def test_retrying_a_split_digest_refused_at_part_3_sends_each_part_once(
    tmp_path: Path, hooks: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 18: a digest split in 3 whose part 3 Slack refused for good (the delivery is
    failed after parts 1-2 went out); `kpi deliver --retry PERIOD` goes on after them, so
    the channel gets each part exactly once."""
    monkeypatch.syspath_prepend(str(tmp_path))
    hooks.slack_limit = (100, 1.0)  # no pacing here
    config = _split_digest_config(tmp_path, hooks.slack_url)
    runner = CliRunner()
    hooks.fail_next(400, "invalid_blocks", after=2)  # parts 1 and 2 go through, 3 is refused
    first = runner.invoke(group, ["-c", str(config), "run"], catch_exceptions=False)
    assert first.exit_code == 1 and "refused for good" in first.output, first.output
    date = _parts(hooks)[0].removeprefix("KPIs — ").removesuffix(" (1/3)")
    assert _parts(hooks) == [f"KPIs — {date} (1/3)", f"KPIs — {date} (2/3)"]
    listing = runner.invoke(group, ["-c", str(config), "deliver", "--list", "--format", "json"])
    assert [(r["period"], r["status"]) for r in json.loads(listing.output)] == [("run:1", "failed")]
    monkeypatch.setenv("COLUMNS", "200")  # the table's cells on one line each
    table = runner.invoke(group, ["-c", str(config), "deliver", "--list"]).output
    assert "failed (2/3 parts sent)" in table, table

    retried = runner.invoke(group, ["-c", str(config), "deliver", "--retry", "run:1"])
    assert retried.exit_code == 0, retried.output
    assert "delivered slack run:1" in retried.output
    assert _parts(hooks) == [f"KPIs — {date} ({i}/3)" for i in (1, 2, 3)]  # each once
    assert _lines(hooks) == [f"github.kpi_{i:04d}: {i:,}" for i in range(N)]


def test_a_retry_after_the_config_changed_the_split_asks_before_resending(
    tmp_path: Path, hooks: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts 1-2 went out, then a title changed in `kpis:`: the parts are not the ones sent
    any more, so resuming after part 2 would skip the new title and resending all would
    repeat parts. The retry refuses in one line naming `--from-start`, sends nothing, and the
    delivery stays failed; `--retry PERIOD --from-start` then sends all three parts again."""
    monkeypatch.syspath_prepend(str(tmp_path))
    hooks.slack_limit = (100, 1.0)
    config = _split_digest_config(tmp_path, hooks.slack_url)
    runner = CliRunner()
    hooks.fail_next(400, "invalid_blocks", after=2)
    assert runner.invoke(group, ["-c", str(config), "run"]).exit_code == 1
    assert len(hooks.slack) == 2
    _split_digest_config(tmp_path, hooks.slack_url, "kpis:\n  github.kpi_0000: {title: Zero}\n")

    refused = runner.invoke(group, ["-c", str(config), "deliver", "--retry", "run:1"])
    assert refused.exit_code == 1
    [line] = [x for x in refused.stderr.splitlines() if "run:1" in x]
    assert line == (
        "delivery failed slack run:1: slack: 2 parts of this run:1 delivery went out, but it "
        "now splits differently (3 parts; the config changed since?): restore the config and "
        "retry, or `kpi deliver --retry run:1 --from-start` to send all of it again"
    )
    assert len(hooks.slack) == 2  # nothing more went out
    listing = runner.invoke(group, ["-c", str(config), "deliver", "--list", "--format", "json"])
    assert [r["status"] for r in json.loads(listing.output)] == ["failed"]

    alone = runner.invoke(group, ["-c", str(config), "deliver", "--from-start"])
    assert alone.exit_code == 2 and "--from-start goes with --retry PERIOD" in alone.output
    again = runner.invoke(group, ["-c", str(config), "deliver", "--retry", "run:1", "--from-start"])
    assert again.exit_code == 0, again.output
    resent = hooks.slack[2:]
    assert [m["blocks"][0]["text"]["text"][-5:] for m in resent] == ["(1/3)", "(2/3)", "(3/3)"]
    lines = _kpi_lines(resent)
    assert lines == ["Zero: 0"] + [f"github.kpi_{i:04d}: {i:,}" for i in range(1, N)]


def test_deliver_list_and_the_runs_page_say_how_many_parts_of_a_split_digest_went_out(
    tmp_path: Path, hooks: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A digest split in 3 whose part 3 failed (Slack down: the delivery stays pending) shows
    "2/3 parts sent" in `kpi deliver --list` (table and JSON) and on the dashboard's runs
    page; once `kpi deliver` sent part 3, the delivery is done and says nothing of parts."""
    from starlette.testclient import TestClient

    from kpi_collector.config import load_config
    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.web import create_app

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    hooks.slack_limit = (100, 1.0)
    config = _split_digest_config(tmp_path, hooks.slack_url)
    runner = CliRunner()
    hooks.fail_next(503, "down", after=2)  # parts 1 and 2 go through, 3 meets an outage
    first = runner.invoke(group, ["-c", str(config), "run"], catch_exceptions=False)
    assert first.exit_code == 1 and len(hooks.slack) == 2, first.output

    def listed() -> tuple[str, list[dict[str, object]]]:
        table = runner.invoke(group, ["-c", str(config), "deliver", "--list"])
        doc = runner.invoke(group, ["-c", str(config), "deliver", "--list", "--format", "json"])
        return table.output, json.loads(doc.output)

    table, doc = listed()
    [row] = [line for line in table.splitlines() if "run:1" in line]
    assert "pending (2/3 parts sent)" in row, table
    assert [(r["status"], r["parts_sent"], r["parts"]) for r in doc] == [("pending", 2, 3)]

    data = DashboardData(load_config(config))
    try:
        with TestClient(create_app(data.config, data=data), base_url="http://127.0.0.1") as c:
            [pending] = c.get("/api/runs").json()["deliveries"]
            assert (pending["status"], pending["parts_sent"]) == ("pending", "2/3 parts sent")
            assert "<td>pending (2/3 parts sent)</td>" in c.get("/runs").text
    finally:
        data.close()

    sent = runner.invoke(group, ["-c", str(config), "deliver"])
    assert sent.exit_code == 0, sent.output
    assert [m["blocks"][0]["text"]["text"][-5:] for m in hooks.slack] == [
        "(1/3)",
        "(2/3)",
        "(3/3)",
    ]
    table, doc = listed()
    [row] = [line for line in table.splitlines() if "run:1" in line]
    assert "done" in row and "parts" not in row, table
    assert [(r["status"], r["parts_sent"], r["parts"]) for r in doc] == [("done", 3, 3)]


@pytest.mark.parametrize("channel", ["id", "#kpis"])
@pytest.mark.parametrize("retries", [2, 0], ids=["in-the-run", "next-run"])
def test_a_message_slack_took_but_answered_too_late_is_not_posted_again(
    tmp_path: Path, hooks: FakeSlack, retries: int, channel: str
) -> None:
    """Slack took the digest but answered after the timeout: the retry (in the run, or the
    pending delivery in the next run) posted it a second time. A bot's message carries its
    key in Slack's message metadata, and a retry first looks for it in the channel's history
    (a channel given by name found by `conversations.list`): found, it counts as sent."""
    from kpi_collector.destinations.slack.fake import SLACK_CHANNEL_ID

    bot = Slack(
        token=TOKEN,
        channel=SLACK_CHANNEL_ID if channel == "id" else channel,
        api_url=f"{hooks.url}/api",
        every="day",
        timeout=0.5,
        retries=retries,
    )
    p = make(tmp_path, bot)
    hooks.answer_late(1.5)
    result = p.process(now=MONDAY)
    if retries == 0:
        assert result.exit_code == 1 and "timed out" in result.delivery_errors["slack"]
        assert [o.ok for o in asyncio.run(p.delivery_engine().deliver_pending())] == [True]
    else:
        assert result.delivery_errors == {}
    assert len(hooks.slack) == 1 and hooks.history_calls >= 1
    assert hooks.slack[0]["metadata"]["event_type"] == "kpi_collector_message"
    (record,) = p.delivery_engine().records()
    assert record.status == "done"


@pytest.mark.parametrize("every", ["day", "week", "month"])
def test_a_late_answered_message_is_found_when_a_later_run_of_its_period_retries_it(
    tmp_path: Path, hooks: FakeSlack, every: str
) -> None:
    """The period's message timed out unanswered in the first run (Slack had taken it); the
    next run of the period took the pending delivery over (not begun: it goes out with the
    newer run's values) and looked for the message in the history only since its own
    start, after the message's time: it was posted a second time. The lookup goes back to
    when the period became due."""
    from kpi_collector.destinations.slack.fake import SLACK_CHANNEL_ID

    began = time.monotonic()
    hooks.clock = lambda: MONDAY.timestamp() + (time.monotonic() - began)  # Slack's clock

    def bot() -> Slack:  # each run a process of its own, as cron's `kpi run`
        return Slack(
            token=TOKEN,
            channel=SLACK_CHANNEL_ID,
            api_url=f"{hooks.url}/api",
            every=every,  # type: ignore[arg-type]
            timeout=0.5,
            retries=0,
        )

    hooks.answer_late(1.5)
    first = make(tmp_path, bot(), values={"stars": 1.0}).process(now=MONDAY)
    assert first.exit_code == 1 and "timed out" in first.delivery_errors["slack"]
    p = make(tmp_path, bot(), values={"stars": 2.0})
    later = p.process(now=MONDAY + timedelta(hours=2))  # the same day, week and month
    assert later.delivery_errors == {}
    assert len(hooks.slack) == 1 and hooks.history_calls >= 1
    (record,) = p.delivery_engine().records()
    assert record.status == "done" and record.run_id == 2


def test_without_the_history_scope_a_late_answer_means_posting_again(
    tmp_path: Path, hooks: FakeSlack
) -> None:
    """A bot without `channels:history` cannot look: the message goes out again (a repeat
    rather than a digest lost), and the delivery is done."""
    from kpi_collector.destinations.slack.fake import SLACK_CHANNEL_ID

    hooks.history_scope = False
    bot = Slack(
        token=TOKEN, channel=SLACK_CHANNEL_ID, api_url=f"{hooks.url}/api", every="day", timeout=0.5
    )
    p = make(tmp_path, bot)
    hooks.answer_late(1.5)
    assert p.process(now=MONDAY).delivery_errors == {}
    assert len(hooks.slack) == 2


@pytest.mark.parametrize(
    "answer",
    [
        "<html><body>Sign in to continue</body></html>",  # a proxy's or portal's page
        {"ok": False, "error": "invalid_workflow_input"},  # a workflow trigger refusing
    ],
    ids=["html-page", "ok-false"],
)
def test_a_200_that_is_not_slacks_ok_is_not_a_delivery(
    tmp_path: Path, hooks: FakeSlack, answer: object
) -> None:
    """A Slack incoming webhook answers exactly `ok`; a 200 with anything else (a proxy's
    sign-in page, a workflow trigger's `{"ok": false}`) was taken as delivered and the digest
    was lost. It is an error that names what came, and the delivery stays pending."""
    hooks.fail_next(200, answer)
    p = make(tmp_path, Slack(webhook_url=hooks.slack_url, every="day", retries=0))
    result = p.process(now=MONDAY)
    assert result.exit_code == 1
    message = result.delivery_errors["slack"]
    assert "not Slack's `ok`" in message and TOKEN not in message
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"
    assert [o.ok for o in asyncio.run(p.delivery_engine().deliver_pending())] == [True]
    assert len(hooks.slack) == 1


@pytest.mark.parametrize(
    ("answer", "came"),
    [
        (["ok"], "no JSON object"),  # JSON, but no object: `.get` of it was an AttributeError
        ('"ok"', "no JSON object"),
        ("<html><body>Sign in</body></html>", "an HTML page"),
    ],
    ids=["list", "string", "html"],
)
def test_a_bots_200_that_is_no_json_object_is_not_a_post(
    tmp_path: Path, hooks: FakeSlack, answer: object, came: str
) -> None:
    """chat.postMessage answered with JSON that is no object failed as "AttributeError: 'list'
    object has no attribute 'get'"; it is an error saying what came, the delivery pending."""
    from kpi_collector.destinations.slack.fake import SLACK_CHANNEL_ID

    hooks.fail_next(200, answer)
    bot = Slack(token=TOKEN, channel=SLACK_CHANNEL_ID, api_url=f"{hooks.url}/api", retries=0)
    p = make(tmp_path, bot)
    message = p.process(now=MONDAY).delivery_errors["slack"]
    assert f"Slack answered chat.postMessage with {came}" in message, message
    assert "AttributeError" not in message and TOKEN not in message
    (record,) = p.delivery_engine().records()
    assert record.status == "pending"
    assert [o.ok for o in asyncio.run(p.delivery_engine().deliver_pending())] == [True]
    assert len(hooks.slack) == 1


def test_a_bots_retry_from_the_start_posts_every_part_of_the_new_split(
    tmp_path: Path, hooks: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a bot, a retry after earlier attempts first looks in the channel for the part it
    is about to post; `--retry PERIOD --from-start` after the config changed the split found
    the old part 1 (the same key) and skipped the new one, so the KPIs that moved into it
    were never posted. From the start, every part of the new split goes out."""
    monkeypatch.syspath_prepend(str(tmp_path))
    hooks.slack_limit = (100, 1.0)
    config = _split_digest_config(tmp_path, hooks.url, bot=True)
    runner = CliRunner()
    hooks.fail_next(200, {"ok": False, "error": "invalid_blocks"}, after=2)
    assert runner.invoke(group, ["-c", str(config), "run"]).exit_code == 1
    assert len(hooks.slack) == 2
    kpis = "kpis:\n  github.kpi_0000: {title: Zero}\n"
    _split_digest_config(tmp_path, hooks.url, kpis, bot=True)
    again = runner.invoke(group, ["-c", str(config), "deliver", "--retry", "run:1", "--from-start"])
    assert again.exit_code == 0, again.output
    resent = hooks.slack[2:]
    assert [m["blocks"][0]["text"]["text"][-5:] for m in resent] == ["(1/3)", "(2/3)", "(3/3)"]
    lines = _kpi_lines(resent)
    assert lines == ["Zero: 0"] + [f"github.kpi_{i:04d}: {i:,}" for i in range(1, N)]


def test_a_split_digest_taken_over_by_a_later_run_loses_no_kpi(
    tmp_path: Path, hooks: FakeSlack
) -> None:
    """The first part of a split digest timed out unanswered (Slack took it); the next run of
    the day took the delivery over with its own values, split elsewhere (shorter values:
    more KPIs a part). The retry found the old first part under the part's key, went on
    after it with the new split's second part, and the KPIs the new first part held beyond
    the old one's were never posted. A part is found again only as it was sent: the new
    split goes out whole (its first part a repeat rather than a loss)."""
    from kpi_collector.destinations.slack.fake import SLACK_CHANNEL_ID

    began = time.monotonic()
    hooks.clock = lambda: MONDAY.timestamp() + (time.monotonic() - began)
    hooks.slack_limit = (100, 1.0)

    def bot() -> Slack:  # each run a process of its own
        return Slack(
            token=TOKEN,
            channel=SLACK_CHANNEL_ID,
            api_url=f"{hooks.url}/api",
            every="day",
            timeout=0.5,
            retries=0,
        )

    long_values = {f"kpi_{i:04d}": 1_234_567_890.0 + i for i in range(N)}
    hooks.answer_late(1.5)
    first = make(tmp_path, bot(), values=long_values).process(now=MONDAY)
    assert "timed out" in first.delivery_errors["slack"]
    assert len(hooks.slack) == 1 and _parts(hooks)[0].endswith("(1/4)")
    short_values = {f"kpi_{i:04d}": float(i % 10) for i in range(N)}
    later = make(tmp_path, bot(), values=short_values).process(now=MONDAY + timedelta(hours=2))
    assert later.delivery_errors == {}
    shown = {line.split(":")[0] for line in _kpi_lines(hooks.slack[1:])}
    assert shown == {f"github.kpi_{i:04d}" for i in range(N)}
    assert [p[-5:] for p in _parts(hooks)[1:]] == ["(1/2)", "(2/2)"]
