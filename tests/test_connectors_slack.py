"""`type: slack` against a local Slack Web API."""

from __future__ import annotations

import pytest

from kpi_collector.sources.slack import Slack
from kpi_collector.sources.slack.fake import FakeSlack, Member
from tests.fakes.collect import collect, outcome

BOT_TOKEN = "xoxb-1111-2222-fakebottoken"
ADMIN_TOKEN = "xoxp-3333-4444-fakeadmintoken"


@pytest.fixture
def slack():
    members = [Member(f"U{i:08d}", f"person{i}", billing_active=i % 3 != 0) for i in range(430)]
    members += [Member(f"U9{i:07d}", f"gone{i}", deleted=True) for i in range(10)]
    members += [Member(f"B{i:08d}", f"bot{i}", is_bot=True) for i in range(5)]
    # an app's bot user is `is_bot` (what `is_app_user` means: see the last test)
    members += [Member("UAPP00001", "app", is_bot=True), Member("USLACKBOT", "slackbot")]
    fake = FakeSlack(
        members=members, tokens={BOT_TOKEN: {"users:read"}, ADMIN_TOKEN: {"users:read", "admin"}}
    )
    with fake.serve():
        yield fake


def test_members_follow_the_cursor(slack: FakeSlack) -> None:
    assert collect(Slack(token=BOT_TOKEN, api_url=slack.url)) == {"members": 430}
    cursors = [r.query.get("cursor") for r in slack.requests]
    assert len(cursors) == 3 and cursors[0] is None and all(cursors[1:])  # 447 members, 200 a page
    assert all(r.query["limit"] == "200" for r in slack.requests)


def test_active_members_with_an_admin_token(slack: FakeSlack) -> None:
    values = collect(
        Slack(token=ADMIN_TOKEN, api_url=slack.url, metrics=["members", "active_members"])
    )
    assert values == {"members": 430, "active_members": sum(1 for i in range(430) if i % 3 != 0)}


def test_active_members_without_the_scope_fails_alone(slack: FakeSlack) -> None:
    result = outcome(
        Slack(token=BOT_TOKEN, api_url=slack.url, metrics=["members", "active_members"])
    )
    assert result.values == {"members": 430}
    ((metric, message, _),) = result.errors
    assert (
        metric == "active_members"
        and "lacks the scope admin" in message
        and "users:read" in message
    )


def test_invalid_token_names_the_variable(slack: FakeSlack) -> None:
    wrong = "xoxb-9999-wrong-token-value"
    result = outcome(Slack(token=wrong, api_url=slack.url))
    ((_, message, transient),) = result.errors
    assert "Slack refused the token (invalid_auth)" in message and "${SLACK_TOKEN}" in message
    assert wrong not in message and not transient


def test_rate_limited_then_answers(slack: FakeSlack) -> None:
    slack.inject(
        429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}, path="users.list"
    )
    assert collect(Slack(token=BOT_TOKEN, api_url=slack.url)) == {"members": 430}


def test_token_is_required_and_not_empty() -> None:
    with pytest.raises(ValueError, match="token is empty: set SLACK_TOKEN"):
        Slack(token="")
    with pytest.raises(ValueError, match="token"):
        Slack()


def test_a_pending_invitation_is_not_a_member() -> None:
    """Three people joined and one was invited: members 3, not 4 (guests count as members)."""
    fake = FakeSlack(
        members=[
            Member("U00000001", "ada"),
            Member("U00000002", "grace"),
            Member("U00000003", "linus", guest="single"),
            Member("U00000004", "invitee", invited=True),
            Member("U00000005", "guest-invitee", invited=True, guest="multi"),
            Member("B00000001", "flow", is_workflow_bot=True),
            Member("USLACKBOT", "slackbot"),
        ],
        tokens={BOT_TOKEN: {"users:read"}, ADMIN_TOKEN: {"users:read", "admin"}},
    )
    with fake.serve():
        values = collect(
            Slack(
                token=ADMIN_TOKEN, api_url=fake.url, metrics=["members", "guests", "active_members"]
            )
        )
    assert values == {"members": 3, "guests": 1, "active_members": 3}


def test_a_person_who_authorized_the_app_is_a_member() -> None:
    # `is_app_user`: "Indicates whether the user is an authorized user of the calling app"
    # (Slack's user object, docs.slack.dev/reference/objects/user-object): a person, not an app
    # (apps' bot users are `is_bot`). The admin who installed the app and one colleague who
    # authorized it are members: 3 (before: 1); both are billable and active too.
    fake = FakeSlack(
        members=[
            Member("U00000001", "ada"),
            Member("U00000002", "installer", is_app_user=True),
            Member("U00000003", "colleague", is_app_user=True, guest="multi"),
            Member("B00000001", "the-app", is_bot=True),
        ],
        tokens={ADMIN_TOKEN: {"users:read", "admin"}},
    )
    with fake.serve():
        values = collect(
            Slack(
                token=ADMIN_TOKEN, api_url=fake.url, metrics=["members", "guests", "active_members"]
            )
        )
    assert values == {"members": 3, "guests": 1, "active_members": 3}


def test_a_cursor_given_twice_stops_the_list(slack: FakeSlack) -> None:
    """A next cursor Slack gave before names a page already read: its members counted again."""
    page = {"ok": True, "members": [], "response_metadata": {"next_cursor": "dXNlcjpVMDAw"}}
    slack.inject(200, {**page, "members": [{"id": "U1", "name": "a"}]}, times=2)
    result = outcome(Slack(token=BOT_TOKEN, api_url=slack.url))
    ((_, message, _),) = result.errors
    assert "gave a next cursor it had given before" in message and result.values == {}


def test_a_transient_slack_error_inside_a_200_is_asked_again(slack: FakeSlack) -> None:
    """Slack says it failed for now with HTTP 200 and `ok: false` (`internal_error`): the
    source failed for good, where a 5xx would have been asked again. Now the page is asked
    again and the members counted."""
    slack.inject(200, {"ok": False, "error": "internal_error"}, path="users.list", times=2)
    assert collect(Slack(token=BOT_TOKEN, api_url=slack.url), retries=2) == {"members": 430}
    assert slack.calls("users.list") == 5  # 2 refused + the 3 pages


def test_a_transient_slack_error_that_lasts_is_transient(slack: FakeSlack) -> None:
    slack.inject(200, {"ok": False, "error": "service_unavailable"}, path="users.list", times=5)
    result = outcome(Slack(token=BOT_TOKEN, api_url=slack.url), retries=1)
    ((_, message, transient),) = result.errors
    assert "Slack users.list answered service_unavailable" in message and transient
    assert "the next run will try again" in message
    assert slack.calls("users.list") == 2


def test_a_request_error_is_not_asked_again(slack: FakeSlack) -> None:
    slack.inject(200, {"ok": False, "error": "invalid_arguments"}, path="users.list", times=5)
    result = outcome(Slack(token=BOT_TOKEN, api_url=slack.url))
    ((_, message, transient),) = result.errors
    assert message == "Slack users.list answered invalid_arguments" and not transient
    assert slack.calls("users.list") == 1


def test_an_org_token_without_a_workspace_names_team_id(slack: FakeSlack) -> None:
    slack.inject(200, {"ok": False, "error": "missing_argument"}, path="users.list")
    result = outcome(Slack(token=BOT_TOKEN, api_url=slack.url))
    ((_, message, _),) = result.errors
    assert "set `team_id:` of source 'slack'" in message


def test_a_bot_token_for_active_members_names_the_token_it_needs(slack: FakeSlack) -> None:
    """team.billableInfo "cannot be called by a bot user" (`user_is_bot`): the message said
    only that; it now says which token it needs. Members are still counted."""
    slack.inject(200, {"ok": False, "error": "user_is_bot"}, path="team.billableInfo")
    result = outcome(
        Slack(token=ADMIN_TOKEN, api_url=slack.url, metrics=["members", "active_members"])
    )
    assert result.values == {"members": 430}
    ((metric, message, _),) = result.errors
    assert metric == "active_members"
    assert "not a bot token (xoxb-)" in message and "a user token (xoxp-)" in message
    assert "admin (a workspace admin's user token)" in message


def test_an_ok_answer_without_its_list_is_an_error_not_0(slack: FakeSlack) -> None:
    """`{"ok": true}` without `members` counted as an empty page: members 0, stored."""
    slack.inject(200, {"ok": True, "response_metadata": {"next_cursor": ""}}, path="users.list")
    result = outcome(Slack(token=BOT_TOKEN, api_url=slack.url))
    assert result.values == {}
    ((_, message, _),) = result.errors
    assert message == "Slack users.list answered ok without `members`"
