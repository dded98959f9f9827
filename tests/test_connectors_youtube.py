"""`type: youtube` against a local copy of the YouTube Data API v3 `channels.list`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.sources.youtube import YouTube
from kpi_collector.sources.youtube.fake import Channel, FakeYouTube
from tests.cli import run_kpi, store_dump, stored_values
from tests.fakes.collect import collect, outcome

KEY = "AIzaSyTest-youtube-key-000000000000001"
CHANNEL = "UC_x5XG1OV2P6uZZ5FSM9Ttw"


@pytest.fixture
def youtube():
    fake = FakeYouTube(
        keys={KEY},
        channels=[
            Channel(CHANNEL, "@GoogleDevelopers", 2_390_000, 248_734_112, 6_512),
            Channel("UCxxxxxxxxxxxxxxxxxxxxxx", "@quiet", 0, 1_000, 7, hidden_subscribers=True),
        ],
    )
    with fake.serve():
        yield fake


def test_a_channels_statistics_by_id(youtube: FakeYouTube) -> None:
    values = collect(YouTube(channel=CHANNEL, api_key=KEY, api_url=youtube.url))
    assert values == {"subscribers": 2_390_000.0, "views": 248_734_112.0, "videos": 6_512.0}
    (request,) = youtube.requests
    assert request.query["part"] == "statistics" and request.query["id"] == CHANNEL
    assert request.query["key"] == KEY


def test_a_handle_and_a_subset(youtube: FakeYouTube) -> None:
    source = YouTube(
        channel="@GoogleDevelopers", api_key=KEY, api_url=youtube.url, metrics=["videos"]
    )
    assert collect(source) == {"videos": 6_512.0}
    assert youtube.requests[0].query["forHandle"] == "@GoogleDevelopers"


def test_unknown_metric_and_bad_channel_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'likes' for type 'youtube'"):
        YouTube(channel=CHANNEL, api_key=KEY, metrics=["likes"])
    with pytest.raises(ValidationError, match=r"'https://youtube\.com/c/x' is neither a channel"):
        YouTube(channel="https://youtube.com/c/x", api_key=KEY)


def test_unknown_channel_names_the_key(youtube: FakeYouTube) -> None:
    result = outcome(YouTube(channel="@nobody-here", api_key=KEY, api_url=youtube.url))
    ((_, message, transient),) = result.errors
    assert "no channel with the handle '@nobody-here'" in message and "`channel:`" in message
    assert not transient


def test_hidden_subscriber_count_fails_only_that_metric(youtube: FakeYouTube) -> None:
    result = outcome(YouTube(channel="@quiet", api_key=KEY, api_url=youtube.url))
    assert result.values == {"views": 1_000.0, "videos": 7.0}
    ((metric, message, _),) = result.errors
    assert metric == "subscribers" and "hides its subscriber count" in message


def test_wrong_key_names_the_key_and_never_shows_it(youtube: FakeYouTube) -> None:
    wrong = "AIzaSyWrong-youtube-key-00000000000009"
    result = outcome(YouTube(channel=CHANNEL, api_key=wrong, api_url=youtube.url))
    ((_, message, transient),) = result.errors
    assert "API key not valid" in message and "`api_key`" in message
    assert wrong not in message and not transient


def test_spent_quota_is_transient_and_says_when_it_resets(youtube: FakeYouTube) -> None:
    youtube.quota = 1
    source = YouTube(channel=CHANNEL, api_key=KEY, api_url=youtube.url)
    assert collect(source)["videos"] == 6_512.0
    result = outcome(source)
    ((_, message, transient),) = result.errors
    assert "quota exceeded" in message and "midnight Pacific Time" in message
    assert transient and KEY not in message
    assert youtube.calls() == 2  # a spent quota is not retried within the run


def test_kpi_run_end_to_end(youtube: FakeYouTube, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(
        "timezone: UTC\nsources:\n"
        f'  - {{name: yt, type: youtube, channel: "{CHANNEL}", api_key: "${{YOUTUBE_API_KEY}}", '
        f'api_url: "{youtube.url}"}}\n'
    )
    (tmp_path / ".env").write_text(f"YOUTUBE_API_KEY={KEY}\n")
    ran = run_kpi(tmp_path, "run", "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    dump = store_dump(tmp_path)
    assert stored_values(tmp_path) == {
        "yt.subscribers": 2_390_000.0,
        "yt.views": 248_734_112.0,
        "yt.videos": 6_512.0,
    }
    for text in (ran.stdout, ran.stderr, dump):
        assert KEY not in text


def test_a_redirect_to_another_host_that_copies_the_key_gets_no_key(youtube: FakeYouTube) -> None:
    """A front server that redirects to another host and writes the request's query (the
    API key with it) into its `Location`: the key stays with `api_url`'s host, the rest of
    the query goes on."""
    from aiohttp import web

    from kpi_collector.demo.server import BackgroundServer

    seen: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"items": [{"statistics": {"videoCount": "7"}}]})

    app = web.Application()
    app.router.add_get("/{tail:.*}", elsewhere)
    with BackgroundServer(app) as other:
        other = other.replace("127.0.0.1", "localhost")
        location = f"{other}/youtube/v3/channels?part=statistics&key={KEY}&id={CHANNEL}"
        youtube.inject(302, None, headers={"Location": location})
        source = YouTube(channel=CHANNEL, api_key=KEY, api_url=youtube.url, metrics=["videos"])
        assert collect(source) == {"videos": 7.0}
    assert seen == [{"part": "statistics", "id": CHANNEL}]


@pytest.mark.parametrize(
    ("given", "channel"),
    [
        ("https://www.youtube.com/@GoogleDevelopers", "@GoogleDevelopers"),
        ("youtube.com/@GoogleDevelopers/videos", "@GoogleDevelopers"),
        ("https://m.youtube.com/@GoogleDevelopers?si=abc", "@GoogleDevelopers"),
        (f"https://www.youtube.com/channel/{CHANNEL}/featured", CHANNEL),
        (CHANNEL, CHANNEL),
    ],
)
def test_a_channels_address_is_reduced_to_its_id_or_handle(given: str, channel: str) -> None:
    """A channel's address pasted from the browser was refused; it names the channel."""
    assert YouTube(channel=given, api_key=KEY).channel == channel
