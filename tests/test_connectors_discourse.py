"""`type: discourse` against a local Discourse forum."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.sources.discourse import Discourse
from kpi_collector.sources.discourse.fake import FakeDiscourse
from tests.cli import run_kpi, store_dump, stored_values
from tests.fakes.collect import collect, outcome

KEY = "discourse-test-key-0000000000000000001"
STATS = {
    "topics_count": 4210,
    "topics_7_days": 35,
    "topics_30_days": 160,
    "posts_count": 31877,
    "posts_7_days": 300,
    "posts_30_days": 1250,
    "users_count": 9120,
    "users_7_days": 80,
    "users_30_days": 390,
    "active_users_7_days": 610,
    "active_users_30_days": 1840,
    "likes_count": 22150,
    "likes_7_days": 210,
    "likes_30_days": 900,
}
EXPECTED = {
    "users": 9120.0,
    "active_users_7_days": 610.0,
    "active_users_30_days": 1840.0,
    "topics": 4210.0,
    "posts": 31877.0,
    "likes": 22150.0,
}


@pytest.fixture
def forum():
    fake = FakeDiscourse(stats=dict(STATS), keys={KEY: {"system"}})
    with fake.serve():
        yield fake


def test_the_about_pages_stats(forum: FakeDiscourse) -> None:
    assert collect(Discourse(api_url=forum.url)) == EXPECTED
    assert forum.calls("/about.json") == 1 and forum.calls() == 1


def test_names_before_discourse_3_2_and_a_subset(forum: FakeDiscourse) -> None:
    forum.old_names = True
    source = Discourse(api_url=forum.url, metrics=["users", "likes"])
    assert collect(source) == {"users": 9120.0, "likes": 22150.0}


def test_hidden_about_stats_fall_back_to_site_statistics(forum: FakeDiscourse) -> None:
    forum.about_hides_stats = True
    assert collect(Discourse(api_url=forum.url)) == EXPECTED
    assert forum.calls("/site/statistics.json") == 1


def test_a_forum_that_shares_nothing_says_so(forum: FakeDiscourse) -> None:
    forum.about_hides_stats = True
    forum.shares_statistics = False
    ((_, message, _),) = outcome(Discourse(api_url=forum.url)).errors
    assert "shares no statistics" in message and "share_anonymized_statistics" in message


def test_config_mistakes_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'views' for type 'discourse'"):
        Discourse(api_url="https://forum.example.com", metrics=["views"])
    with pytest.raises(ValidationError, match="needs `api_username:`"):
        Discourse(api_url="https://forum.example.com", api_key=KEY)
    with pytest.raises(ValidationError, match="api_url"):
        Discourse()


def test_a_login_forum_needs_the_key(forum: FakeDiscourse) -> None:
    forum.login_required = True
    ((_, message, _),) = outcome(Discourse(api_url=forum.url)).errors
    assert "signed-in users" in message and "`api_key:" in message
    source = Discourse(api_url=forum.url, api_key=KEY, api_username="system")
    assert collect(source) == EXPECTED
    headers = forum.requests[-1].headers
    assert headers["Api-Key"] == KEY and headers["Api-Username"] == "system"


def test_wrong_key_or_user_names_both(forum: FakeDiscourse) -> None:
    source = Discourse(api_url=forum.url, api_key=KEY, api_username="alice")
    ((_, message, transient),) = outcome(source).errors
    assert "The API username or key is invalid" in message
    assert "`api_key` and `api_username`" in message and not transient
    assert KEY not in message


def test_rate_limit_is_waited_out(forum: FakeDiscourse) -> None:
    body = {
        "errors": ["You’ve performed this action too many times. Please wait 1 seconds."],
        "error_type": "rate_limit",
        "extras": {"wait_seconds": 0, "time_left": "0 seconds"},
    }
    forum.inject(429, body, headers={"Retry-After": "0"})
    assert collect(Discourse(api_url=forum.url, metrics=["posts"])) == {"posts": 31877.0}
    assert forum.calls() == 2


def test_kpi_run_end_to_end(forum: FakeDiscourse, tmp_path: Path) -> None:
    forum.login_required = True
    (tmp_path / "kpi.yaml").write_text(
        "timezone: UTC\nsources:\n"
        f'  - {{name: forum, type: discourse, api_url: "{forum.url}", '
        'api_key: "${DISCOURSE_API_KEY}", api_username: system, metrics: [users, posts]}\n'
    )
    (tmp_path / ".env").write_text(f"DISCOURSE_API_KEY={KEY}\n")
    ran = run_kpi(tmp_path, "run", "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    dump = store_dump(tmp_path)
    assert stored_values(tmp_path) == {"forum.users": 9120.0, "forum.posts": 31877.0}
    for text in (ran.stdout, ran.stderr, dump):
        assert KEY not in text


def test_a_stat_the_forum_does_not_count_fails_only_that_metric(forum: FakeDiscourse) -> None:
    """An older Discourse counts users, topics, posts and likes but not active users: the
    four it counts are stored, the two it does not are each an error naming `metrics:`."""
    forum.old_names = True
    forum.stats = {k: v for k, v in STATS.items() if not k.startswith("active_users")}
    result = outcome(Discourse(api_url=forum.url))
    assert result.values == {m: v for m, v in EXPECTED.items() if not m.startswith("active_users")}
    errors = {metric: message for metric, message, _ in result.errors}
    assert set(errors) == {"active_users_7_days", "active_users_30_days"}
    assert all("'active_users_" in m and "`metrics:`" in m for m in errors.values())
