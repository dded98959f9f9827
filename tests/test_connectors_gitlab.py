"""`type: gitlab` against a local copy of the GitLab REST API v4."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.errors import ExtractError
from kpi_collector.sources.gitlab import GitLab
from kpi_collector.sources.gitlab.fake import FakeGitLab, Project
from tests.cli import observations, run_and_backfill_twice, store_dump
from tests.fakes.collect import backfill, collect, outcome
from tests.fakes.data import NOW, TODAY

TOKEN = "glpat-test-token-00000000000001"


def at(days_ago: int, hour: int = 12) -> datetime:
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


#: 250 stars: 3 pages of 100; 200 before the last five days, then 10 a day
STARS = [at(30)] * 200 + [at(n) for n in (5, 4, 3, 2, 1) for _ in range(10)]


@pytest.fixture
def gitlab():
    fake = FakeGitLab(
        tokens={TOKEN},
        projects=[
            Project(13083, "gitlab-org/gitlab-runner", 4200, 1770, 312, STARS),
            Project(42, "acme/secret", 1, 2, 3, [at(2)], private=True),
            Project(43, "acme/no-issues", 0, None, 0),
        ],
    )
    with fake.serve():
        yield fake


def test_a_projects_numbers(gitlab: FakeGitLab) -> None:
    values = collect(GitLab(project="gitlab-org/gitlab-runner", api_url=gitlab.url))
    assert values == {
        "stars": 250.0,
        "forks": 4200.0,
        "open_issues": 1770.0,
        "open_merge_requests": 312.0,
    }
    paths = sorted(r.raw_path for r in gitlab.requests)
    assert paths[0] == "/api/v4/projects/gitlab-org%2Fgitlab-runner"
    assert paths[1].startswith("/api/v4/projects/gitlab-org%2Fgitlab-runner/merge_requests?")
    assert "PRIVATE-TOKEN" not in gitlab.requests[0].headers


def test_subset_and_numeric_id(gitlab: FakeGitLab) -> None:
    source = GitLab(project="13083", api_url=gitlab.url, metrics=["open_merge_requests"])
    assert collect(source) == {"open_merge_requests": 312.0}
    assert gitlab.calls() == 1


def test_unknown_metric_and_bad_project_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'watchers' for type 'gitlab'"):
        GitLab(project="a/b", metrics=["watchers"])
    with pytest.raises(ValidationError, match="not a project path"):
        GitLab(project="just-a-name")


def test_private_project_needs_the_token(gitlab: FakeGitLab) -> None:
    result = outcome(GitLab(project="acme/secret", api_url=gitlab.url))
    ((_, message, transient),) = result.errors
    assert "no project 'acme/secret'" in message and "`project:`" in message
    assert "needs `token:`" in message and not transient
    source = GitLab(project="acme/secret", token=TOKEN, api_url=gitlab.url)
    assert collect(source)["open_merge_requests"] == 3.0
    assert gitlab.requests[-1].headers["PRIVATE-TOKEN"] == TOKEN


def test_wrong_token_names_the_key(gitlab: FakeGitLab) -> None:
    wrong = "glpat-wrong-token-0000000000009"
    result = outcome(GitLab(project="acme/secret", token=wrong, api_url=gitlab.url))
    ((_, message, transient),) = result.errors
    assert "401 Unauthorized" in message and "`token`" in message
    assert wrong not in message and not transient


def test_issues_turned_off_fails_only_that_metric(gitlab: FakeGitLab) -> None:
    result = outcome(GitLab(project="acme/no-issues", api_url=gitlab.url))
    assert result.values == {"stars": 0.0, "forks": 0.0, "open_merge_requests": 0.0}
    ((metric, message, _),) = result.errors
    assert metric == "open_issues"
    assert "issues turned off" in message and "`metrics:`" in message


def test_issues_for_members_only_say_so_and_count_with_a_members_token(
    gitlab: FakeGitLab,
) -> None:
    """A project that shows its issues to members only answers without `open_issues_count`
    to anyone else, as one with issues turned off: the error said they were turned off. It
    now says who may see them, and a member's token counts them."""
    gitlab.projects.append(Project(44, "acme/inner", 2, 17, 1, issues_members_only=True))
    result = outcome(GitLab(project="acme/inner", api_url=gitlab.url))
    assert result.values == {"stars": 0.0, "forks": 2.0, "open_merge_requests": 1.0}
    ((metric, message, _),) = result.errors
    assert metric == "open_issues" and "turned off" not in message
    assert "shows its issues to project members only" in message
    assert "no `token:`" in message and "`metrics:`" in message
    member = GitLab(project="acme/inner", token=TOKEN, api_url=gitlab.url)
    assert collect(member)["open_issues"] == 17.0


@pytest.mark.parametrize("page_headers", [True, False])
@pytest.mark.parametrize("count", [10_000, 10_001, 123_456])
def test_more_than_10000_merge_requests_are_counted(
    gitlab: FakeGitLab, count: int, page_headers: bool
) -> None:
    """GitLab counts no list above 10,000 items (no x-total, no rel="last"): the open merge
    requests were an error there; GitLab's GraphQL API counts them, by path or by id."""
    gitlab.page_headers = page_headers
    gitlab.projects.append(Project(44, "acme/busy", open_merge_requests=count))
    for project in ("acme/busy", "44"):
        source = GitLab(project=project, api_url=gitlab.url, metrics=["open_merge_requests"])
        assert collect(source) == {"open_merge_requests": float(count)}
    assert gitlab.calls("/api/graphql") == (0 if count <= 10_000 else 2)


def test_a_private_projects_count_above_10000_goes_with_the_token(gitlab: FakeGitLab) -> None:
    gitlab.projects.append(Project(45, "acme/big", open_merge_requests=20_000, private=True))
    source = GitLab(
        project="acme/big", token=TOKEN, api_url=gitlab.url, metrics=["open_merge_requests"]
    )
    assert collect(source) == {"open_merge_requests": 20_000.0}
    graphql = [r for r in gitlab.requests if r.path == "/api/graphql"]
    assert [r.headers.get("PRIVATE-TOKEN") for r in graphql] == [TOKEN]


def test_a_count_graphql_does_not_give_is_an_error_not_a_number(gitlab: FakeGitLab) -> None:
    gitlab.projects.append(Project(44, "acme/busy", open_merge_requests=10_001))
    source = GitLab(project="acme/busy", api_url=gitlab.url, metrics=["open_merge_requests"])
    gitlab.inject(200, {"errors": [{"message": "Query timeout"}]}, path="/api/graphql")
    result = outcome(source)
    assert result.values == {}
    ((_, message, _),) = result.errors
    assert "no x-total header" in message and "above 10,000" in message
    assert "GraphQL API gave no count (Query timeout)" in message
    gitlab.inject(404, {"message": "404 Not Found"}, path="/api/graphql")
    result = outcome(source)
    assert result.values == {}
    ((_, message, _),) = result.errors
    assert "no GraphQL API (/api/graphql, turned off?)" in message
    assert "leave `open_merge_requests` out of `metrics:`" in message


@pytest.mark.parametrize("path", ["group/a.b", "org/.github", "x/.y", "a.b/c.d", "g/sub/..y"])
def test_project_paths_with_dots_reach_their_project(gitlab: FakeGitLab, path: str) -> None:
    """A namespaced path goes as one URL-encoded segment (group%2Fproject), its dots as they
    are: every request of the run and the backfill reaches the project it names."""
    gitlab.projects.append(Project(46, path, 3, 4, 5, [at(3), at(2)]))
    values = collect(GitLab(project=path, api_url=gitlab.url))
    assert values == {"stars": 2.0, "forks": 3.0, "open_issues": 4.0, "open_merge_requests": 5.0}
    points = backfill(GitLab(project=path, api_url=gitlab.url), TODAY - timedelta(days=3), now=NOW)
    assert [p.value for p in points] == [1.0, 2.0, 2.0]
    encoded = path.replace("/", "%2F")
    assert {r.raw_path.split("?")[0] for r in gitlab.requests} == {
        f"/api/v4/projects/{encoded}",
        f"/api/v4/projects/{encoded}/merge_requests",
        f"/api/v4/projects/{encoded}/starrers",
    }


def test_rate_limit_with_retry_after_is_waited_out(gitlab: FakeGitLab) -> None:
    gitlab.inject(429, "Retry later", headers={"Retry-After": "0", "RateLimit-Remaining": "0"})
    source = GitLab(project="gitlab-org/gitlab-runner", api_url=gitlab.url, metrics=["forks"])
    assert collect(source) == {"forks": 4200.0}
    assert gitlab.calls() == 2


def test_backfill_counts_back_from_todays_stars_over_every_page(gitlab: FakeGitLab) -> None:
    source = GitLab(project="gitlab-org/gitlab-runner", api_url=gitlab.url)
    points = backfill(source, TODAY - timedelta(days=6), now=NOW)
    by_day = {p.ts.date(): p.value for p in points if p.metric == "stars"}
    # end of day 6 ago: 200; then 10 more each day up to yesterday's 250
    assert by_day == {TODAY - timedelta(days=n): 250.0 - 10 * (n - 1) for n in range(6, 0, -1)}
    assert by_day[TODAY - timedelta(days=6)] == 200.0
    assert gitlab.calls("/starrers") == 3  # 250 starrers, 100 a page


def test_backfill_says_where_the_stars_start(gitlab: FakeGitLab) -> None:
    limits: list[str] = []
    source = GitLab(project="acme/secret", token=TOKEN, api_url=gitlab.url)
    points = backfill(source, TODAY - timedelta(days=5), now=NOW, limits=limits)
    assert [(p.ts.date(), p.value) for p in points] == [
        (TODAY - timedelta(days=2), 1.0),
        (TODAY - timedelta(days=1), 1.0),
    ]
    assert limits == [f"the first star of acme/secret came on {TODAY - timedelta(days=2)}"]


def test_kpi_run_and_backfill_end_to_end(tmp_path: Path) -> None:
    """`kpi run` then `kpi backfill` twice (subprocesses) into SQLite: the second adds nothing
    and the token never reaches output or the store."""
    today = datetime.now(UTC).date()
    stars = [
        datetime(d.year, d.month, d.day, 9, tzinfo=UTC)
        for d in (today - timedelta(days=n) for n in (4, 3, 3, 2))
    ]
    fake = FakeGitLab(tokens={TOKEN}, projects=[Project(7, "acme/tool", 5, 6, 7, stars)])
    with fake.serve():
        (tmp_path / "kpi.yaml").write_text(
            "timezone: UTC\nsources:\n"
            f'  - {{name: gl, type: gitlab, project: acme/tool, token: "${{GITLAB_TOKEN}}", '
            f'api_url: "{fake.url}"}}\n'
        )
        (tmp_path / ".env").write_text(f"GITLAB_TOKEN={TOKEN}\n")
        since = (today - timedelta(days=5)).isoformat()
        ran, first, second = run_and_backfill_twice(tmp_path, since, source="gl")
    rows, dump = observations(tmp_path), store_dump(tmp_path)
    assert [v for k, v, b in rows if k == "gl.stars" and b] == [1.0, 3.0, 4.0, 4.0]
    assert ("gl.open_merge_requests", 7.0, 0) in rows
    for text in (ran.stdout, ran.stderr, first.stdout, second.stdout, dump):
        assert TOKEN not in text


def test_backfill_pages_by_x_next_page_when_links_name_another_host(gitlab: FakeGitLab) -> None:
    """GitLab writes its Link header with its configured host (`external_url`), not the one
    the request reached: a self-managed instance read at an internal address links to a host
    kpi must not send the token to. `x-next-page` asked of `api_url` itself reads every page."""
    gitlab.external_host = "gitlab.example.com"
    source = GitLab(project="gitlab-org/gitlab-runner", token=TOKEN, api_url=gitlab.url)
    points = backfill(source, TODAY - timedelta(days=6), now=NOW)
    by_day = {p.ts.date(): p.value for p in points if p.metric == "stars"}
    assert by_day == {TODAY - timedelta(days=n): 250.0 - 10 * (n - 1) for n in range(6, 0, -1)}
    assert gitlab.calls("/starrers") == 3


def test_backfill_by_link_alone_to_another_host_asks_api_url(gitlab: FakeGitLab) -> None:
    """Without `x-next-page` (keyset pagination, a proxy passing no x- headers) the `Link` to
    the configured host was followed, or refused: its page is now asked of `api_url`."""
    gitlab.external_host = "gitlab.example.com"
    gitlab.page_headers = False
    source = GitLab(project="gitlab-org/gitlab-runner", token=TOKEN, api_url=gitlab.url)
    points = backfill(source, TODAY - timedelta(days=6), now=NOW)
    by_day = {p.ts.date(): p.value for p in points if p.metric == "stars"}
    assert by_day == {TODAY - timedelta(days=n): 250.0 - 10 * (n - 1) for n in range(6, 0, -1)}
    assert gitlab.calls("/starrers") == 3


def test_a_private_project_the_token_cannot_see_says_so(gitlab: FakeGitLab) -> None:
    """GitLab answers 404 to a token whose user is no member of a private project: the
    message only said to check `project:` and `api_url:`, though they were right."""
    other = "glpat-other-user-token-000000002"
    gitlab.tokens.add(other)
    secret = next(p for p in gitlab.projects if p.path == "acme/secret")
    secret.members = {TOKEN}
    result = outcome(GitLab(project="acme/secret", token=other, api_url=gitlab.url))
    ((_, message, _),) = result.errors
    assert "has no project 'acme/secret'" in message and other not in message
    assert "or it is private and the token cannot see it" in message
    assert collect(GitLab(project="acme/secret", token=TOKEN, api_url=gitlab.url))["forks"] == 1


@pytest.mark.parametrize("opened", [0, 1, 7])
def test_open_merge_requests_counted_from_the_link_when_x_headers_are_dropped(
    gitlab: FakeGitLab, opened: int
) -> None:
    """A proxy in front of a self-managed GitLab that passes no x- headers: the open merge
    requests were an error blaming GitLab's 10,000 cap; the Link header's last page counts
    them (one a page), an empty first page is 0."""
    gitlab.page_headers = False
    project = next(p for p in gitlab.projects if p.path == "gitlab-org/gitlab-runner")
    project.open_merge_requests = opened
    source = GitLab(project=project.path, api_url=gitlab.url, metrics=["open_merge_requests"])
    assert collect(source) == {"open_merge_requests": float(opened)}


def test_a_next_page_already_read_stops_the_starrers(gitlab: FakeGitLab) -> None:
    """`x-next-page` naming a page already read (a cache that ignores the query) counted its
    stars again, pushing every past day's stars down."""
    starrer = {"starred_since": "2026-03-01T10:00:00.000Z", "user": {"id": 1, "username": "a"}}
    gitlab.inject(200, [starrer], path="/starrers", headers={"x-next-page": "2"}, times=3)
    source = GitLab(project="gitlab-org/gitlab-runner", token=TOKEN, api_url=gitlab.url)
    with pytest.raises(ExtractError, match="named a page already read"):
        backfill(source, TODAY - timedelta(days=6), now=NOW)


def test_an_api_url_ending_in_api_v4_names_api_url_not_the_project(gitlab: FakeGitLab) -> None:
    """`api_url: https://HOST/api/v4` asks /api/v4/api/v4/projects/..., which GitLab answers
    404 "404 Not Found" (no such route), and a web server's address answers its 404 page: the
    error told to check `project:`, which was right. It names `api_url:` now."""
    for api_url in (f"{gitlab.url}/api/v4", f"{gitlab.url}/gitlab"):
        result = outcome(GitLab(project="gitlab-org/gitlab-runner", api_url=api_url))
        ((_, message, _),) = result.errors
        assert "has no REST API v4 route" in message and "check `api_url:`" in message
        assert "without /api/v4" in message and "`project:`" not in message
    # a project GitLab does not show still names `project:`
    ((_, message, _),) = outcome(GitLab(project="acme/nope", api_url=gitlab.url)).errors
    assert "no project 'acme/nope'" in message and "`project:`" in message
