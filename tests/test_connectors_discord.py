"""`type: discord` against a local Discord API."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpi_collector.errors import HttpError
from kpi_collector.sources.discord import Discord
from kpi_collector.sources.discord.fake import Bot, FakeDiscord, Member, rate_limited
from tests.cli import run_kpi, store_dump, stored_values
from tests.fakes.collect import collect, outcome


@pytest.fixture
def discord():
    fake = FakeDiscord(invites={"rocket": (3876, 712)})
    with fake.serve():
        yield fake


def test_members_and_online(discord: FakeDiscord) -> None:
    assert collect(Discord(invite="rocket", api_url=discord.url)) == {
        "members": 3876,
        "online": 712,
    }
    (request,) = discord.requests
    assert request.query["with_counts"] == "true"


@pytest.mark.parametrize(
    "link", ["https://discord.gg/rocket", "discord.com/invite/rocket/", "rocket"]
)
def test_invite_links_are_reduced_to_their_code(link: str) -> None:
    assert Discord(invite=link).invite == "rocket"


def test_unknown_invite_is_named(discord: FakeDiscord) -> None:
    with pytest.raises(HttpError, match="Discord knows no invite 'expired1'"):
        collect(Discord(invite="expired1", api_url=discord.url))


def test_rate_limit_honours_retry_after(discord: FakeDiscord) -> None:
    status, body, headers = rate_limited(0.5)
    discord.inject(status, body, headers=headers)
    assert collect(Discord(invite="rocket", api_url=discord.url, metrics=["members"])) == {
        "members": 3876
    }
    assert discord.calls() == 2


GUILD = "197038439483310086"
BOT_TOKEN = "MTk4NjIyNDgzNDcxOTI1MjQ4.Gfake0.bot-token-for-tests-000000000"


@pytest.fixture
def server():
    """A server of 2,345 people and 7 bots (ids interleaved), 12 people still in membership
    screening, 410 online; the bot of BOT_TOKEN is in it."""
    members = [Member(10**17 + 3 * i, f"person{i}", pending=i < 12) for i in range(2345)]
    members += [Member(10**17 + 3 * i + 1, f"bot{i}", bot=True) for i in range(7)]
    fake = FakeDiscord(guilds={GUILD: members}, online={GUILD: 410}, bots={BOT_TOKEN: Bot({GUILD})})
    with fake.serve():
        yield fake


def bot_source(fake: FakeDiscord, **kwargs) -> Discord:
    return Discord(
        guild_id=kwargs.pop("guild_id", GUILD),
        bot_token=kwargs.pop("bot_token", BOT_TOKEN),
        api_url=fake.url,
        **kwargs,
    )


def test_people_and_bots_apart_with_a_bot(server: FakeDiscord) -> None:
    """`members` counts the server's bots too, and Discord's counts cannot leave them out:
    with a bot in the server, `humans` and `bots` read the whole member list (3 pages of at
    most 1,000, `after` the last user id); people still in screening are people."""
    values = collect(bot_source(server, metrics=["members", "online", "humans", "bots"]))
    assert values == {"members": 2352, "online": 410, "humans": 2345, "bots": 7}
    pages = [r for r in server.requests if r.path.endswith("/members")]
    assert [r.query["limit"] for r in pages] == ["1000"] * 3
    assert pages[0].query["after"] == "0" and int(pages[2].query["after"]) > int(
        pages[1].query["after"]
    )
    assert all(r.headers["Authorization"] == f"Bot {BOT_TOKEN}" for r in server.requests)


def test_without_the_members_intent_the_fix_is_named(server: FakeDiscord) -> None:
    server.bots[BOT_TOKEN].members_intent = False
    result = outcome(bot_source(server, metrics=["members", "humans"]))
    assert result.values == {"members": 2352}
    ((metric, message, _),) = result.errors
    assert metric == "humans" and "Server Members Intent" in message
    assert BOT_TOKEN not in message


def test_a_server_the_bot_is_not_in_is_named(server: FakeDiscord) -> None:
    result = outcome(bot_source(server, guild_id="123456789012345678", metrics=["humans"]))
    ((_, message, _),) = result.errors
    assert "no server 123456789012345678 the bot can see" in message


def test_a_wrong_bot_token_names_the_variable(server: FakeDiscord) -> None:
    wrong = "MTk4NjIyNDgzNDcxOTI1MjQ4.Gwrong.not-the-bot-token-000000000"
    result = outcome(bot_source(server, bot_token=wrong, metrics=["bots"]))
    ((_, message, transient),) = result.errors
    assert "Discord refused the credentials (HTTP 401" in message and "bot_token" in message
    assert wrong not in message and not transient


def test_a_way_in_is_required_and_humans_need_the_bot() -> None:
    with pytest.raises(ValueError, match="give `invite:`"):
        Discord()
    with pytest.raises(ValueError, match="humans reads the member list"):
        Discord(invite="rocket", metrics=["members", "humans"])
    with pytest.raises(ValueError, match="`guild_id:` needs `bot_token:`"):
        Discord(guild_id=GUILD)
    with pytest.raises(ValueError, match="`guild_id:` needs `bot_token:`"):
        Discord(guild_id=GUILD, bot_token="")  # ${DISCORD_BOT_TOKEN:-} unset
    with pytest.raises(ValueError, match="`bot_token:` needs `guild_id:`"):
        Discord(invite="rocket", bot_token=BOT_TOKEN)
    with pytest.raises(ValueError, match="not a server id"):
        Discord(guild_id="rocket", bot_token=BOT_TOKEN)


def test_kpi_run_with_a_bot_end_to_end(server: FakeDiscord, tmp_path: Path) -> None:
    """`kpi run` (a subprocess) with the bot token from .env: people and bots stored apart,
    the token nowhere in the output or the store."""
    (tmp_path / "kpi.yaml").write_text(
        "timezone: UTC\nsources:\n"
        f'  - {{name: chat, type: discord, guild_id: "{GUILD}", '
        f'bot_token: "${{DISCORD_BOT_TOKEN}}", api_url: "{server.url}", '
        "metrics: [members, humans, bots]}\n"
    )
    (tmp_path / ".env").write_text(f"DISCORD_BOT_TOKEN={BOT_TOKEN}\n")
    ran = run_kpi(tmp_path, "run", "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert stored_values(tmp_path) == {
        "chat.members": 2352.0,
        "chat.humans": 2345.0,
        "chat.bots": 7.0,
    }
    for text in (ran.stdout, ran.stderr, store_dump(tmp_path)):
        assert BOT_TOKEN not in text
