"""`type: discord` against a local Discord API."""

from __future__ import annotations

import pytest

from kpi_collector.errors import HttpError
from kpi_collector.sources.discord import Discord
from kpi_collector.sources.discord.fake import FakeDiscord, rate_limited
from tests.fakes.collect import collect


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
