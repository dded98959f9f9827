"""`type: github` against a local GitHub API: metrics, counting through Link headers, traffic,
errors, rate limits (primary reset, secondary Retry-After) and stars-over-time backfill."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from aiohttp import web

from kpi_collector.errors import ExtractError, HttpError
from kpi_collector.sources._fake import BackgroundServer, respond
from kpi_collector.sources.github import GitHub
from kpi_collector.sources.github.fake import FakeGitHub, Repo
from tests.conftest import Waits
from tests.fakes.collect import backfill, collect, outcome

TOKEN = "ghp_fakeTokenValue1234567890abcdef"
PUSH_TOKEN = "ghp_pushTokenValue0987654321fedcba"
DOCS = "https://docs.github.com/rest"
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def make_fake() -> FakeGitHub:
    fake = FakeGitHub(tokens={TOKEN, PUSH_TOKEN}, push_tokens={PUSH_TOKEN})
    start = datetime(2026, 1, 1, 8, tzinfo=UTC)
    fake.add(
        Repo(
            "acme",
            "rocket",
            starred_at=[start + timedelta(hours=7 * i) for i in range(250)],
            forks=31,
            watchers=12,
            open_issues=40,
            open_prs=57,
            contributors=263,
            release_assets=[[10, 5]] * 130,
            views=(1400, 380),
            clones=(90, 41),
        )
    )
    fake.add(Repo("acme", "secret", private=True, starred_at=[start], forks=1))
    return fake


@pytest.fixture
def github():
    fake = make_fake()
    with fake.serve():
        yield fake


def source(fake: FakeGitHub, **kwargs) -> GitHub:
    return GitHub(repo=kwargs.pop("repo", "acme/rocket"), api_url=fake.url, **kwargs)


def test_public_metrics_count_through_link_headers(github: FakeGitHub) -> None:
    values = collect(source(github))
    assert values == {
        "stars": 250.0,
        "forks": 31.0,
        "watchers": 12.0,
        "open_issues": 40.0,  # GitHub's open_issues_count (97) less the open pull requests
        "open_prs": 57.0,
        "contributors": 263.0,
        "releases_downloads": 130 * 15.0,
    }
    # counting reads one item per page and the last page's number, never every page
    assert github.hits["/repos/acme/rocket/contributors"] == 1
    assert github.hits["/repos/acme/rocket/pulls"] == 1
    pulls = next(r for r in github.requests if r.path.endswith("/pulls"))
    assert pulls.query["per_page"] == "1" and pulls.query["state"] == "open"
    # 130 releases at 100 a page: the Link "next" (GitHub names the repository by its id
    # there) is followed once
    repo_id = github.repos["acme/rocket"].id
    assert github.hits["/repos/acme/rocket/releases"] == 1
    assert github.hits[f"/repositories/{repo_id}/releases"] == 1


def test_subset_of_metrics_costs_only_its_calls(github: FakeGitHub) -> None:
    values = collect(source(github, metrics=["stars", "contributors"]))
    assert values == {"stars": 250.0, "contributors": 263.0}
    assert github.calls("/pulls") == 0 and github.calls("/releases") == 0


def test_traffic_when_asked_with_a_push_token(github: FakeGitHub) -> None:
    assert "views" not in collect(source(github, token=PUSH_TOKEN))  # never a default
    traffic = ["views", "unique_views", "clones", "unique_clones"]
    values = collect(source(github, token=PUSH_TOKEN, metrics=traffic))
    assert values["views"] == 1400 and values["unique_views"] == 380
    assert values["clones"] == 90 and values["unique_clones"] == 41
    auth = {r.headers.get("Authorization") for r in github.requests}
    assert auth == {f"Bearer {PUSH_TOKEN}"}


def test_traffic_without_a_token_says_which_variable(github: FakeGitHub) -> None:
    result = outcome(source(github, metrics=["stars", "views"]))
    assert result.values == {}
    ((_, message, transient),) = result.errors
    assert "views need a token" in message and "${GITHUB_TOKEN}" in message and not transient


def test_traffic_refused_fails_only_traffic(github: FakeGitHub) -> None:
    result = outcome(source(github, token=TOKEN, metrics=["stars", "views", "unique_views"]))
    assert result.values == {"stars": 250.0}
    errors = {metric: message for metric, message, _ in result.errors}
    assert set(errors) == {"views", "unique_views"}
    assert "push access" in errors["views"] and "Administration" in errors["views"]


def test_bad_token_names_the_key_and_variable_and_never_the_token(github: FakeGitHub) -> None:
    wrong = "ghp_wrongTokenValue_abcdefghijklmnop"
    result = outcome(source(github, token=wrong))
    ((_, message, transient),) = result.errors
    assert "GitHub refused the credentials (HTTP 401: Bad credentials)" in message
    assert "`token`" in message and "${GITHUB_TOKEN}" in message and "'github'" in message
    assert wrong not in message and not transient


def test_unknown_repo_is_named(github: FakeGitHub) -> None:
    with pytest.raises(HttpError) as caught:
        collect(source(github, repo="acme/nope", metrics=["stars"]))
    assert caught.value.status == 404
    assert "'acme/nope' not found" in str(caught.value) and "`repo:`" in str(caught.value)


def test_private_repo_without_token_suggests_one(github: FakeGitHub) -> None:
    with pytest.raises(HttpError, match="private repository needs `token:`"):
        collect(source(github, repo="acme/secret", metrics=["forks"]))
    assert collect(source(github, repo="acme/secret", metrics=["forks"], token=TOKEN)) == {
        "forks": 1.0
    }


def test_spent_quota_waits_for_a_near_reset(github: FakeGitHub, waits: Waits) -> None:
    github.spend_quota(remaining=0, reset_in=1.0)
    github.rate_window = 3600
    waits.real = True  # the fake's quota resets on the wall clock
    assert collect(source(github, metrics=["forks"])) == {"forks": 31.0}
    assert len(waits.asked) == 1 and 0 < waits.asked[0] <= 2.25  # the reset is whole seconds
    assert github.hits["/repos/acme/rocket"] == 2  # refused once, then answered after the reset


def test_spent_quota_with_a_far_reset_fails_at_once_saying_when(
    github: FakeGitHub, waits: Waits
) -> None:
    github.spend_quota(remaining=0, reset_in=1800)
    with pytest.raises(HttpError) as caught:
        collect(source(github, metrics=["forks"]))
    assert waits.asked == []
    message = str(caught.value)
    assert "GitHub rate limit reached (API rate limit exceeded" in message
    assert "resets at" in message and "UTC (in 30 min)" in message
    assert caught.value.transient
    assert github.hits["/repos/acme/rocket"] == 1


def test_secondary_limit_honours_retry_after(github: FakeGitHub, waits: Waits) -> None:
    github.inject(
        403,
        {
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
            "before you try again.",
            "documentation_url": "https://docs.github.com/rest",
        },
        headers={"Retry-After": "1"},
        path="/repos/acme/rocket",
    )
    assert collect(source(github, metrics=["forks"])) == {"forks": 31.0}
    assert len(waits.asked) == 1 and waits.asked[0] >= 1.0


def test_429_with_retry_after_then_success(github: FakeGitHub) -> None:
    github.inject(429, {"message": "Too many requests"}, headers={"Retry-After": "1"})
    assert collect(source(github, metrics=["watchers"])) == {"watchers": 12.0}
    assert github.hits["/repos/acme/rocket"] == 2


def test_server_error_is_retried(github: FakeGitHub) -> None:
    github.inject(502, "<html><body>Bad gateway</body></html>", path="/repos/acme/rocket", times=2)
    assert collect(source(github, metrics=["forks"])) == {"forks": 31.0}
    assert github.hits["/repos/acme/rocket"] == 3


def test_server_error_that_stays_is_transient(github: FakeGitHub) -> None:
    github.inject(503, {"message": "Service unavailable"}, times=5)
    result = outcome(source(github, metrics=["forks"]), retries=1)
    ((_, message, transient),) = result.errors
    assert "HTTP 503" in message and transient


def test_backfill_stars_per_day_reads_only_the_recent_pages(github: FakeGitHub) -> None:
    # 250 stars, one every 7 hours from 2026-01-01 08:00 UTC: 3 pages of 100
    since = date(2026, 3, 1)
    points = backfill(source(github), since, now=NOW)
    by_day = {p.ts.date(): p.value for p in points}
    assert min(by_day) == since and max(by_day) == date(2026, 3, 9)  # up to yesterday
    assert all(p.metric == "stars" for p in points)
    starts = [datetime(2026, 1, 1, 8, tzinfo=UTC) + timedelta(hours=7 * i) for i in range(250)]
    for day, value in by_day.items():
        end = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
        assert value == sum(1 for s in starts if s <= end)
    # page 1 (to learn the last page), then the last page, whose first star is before `since`
    pages = [r.query.get("page") for r in github.requests if r.path.endswith("/stargazers")]
    assert pages == ["1", "3"]
    assert all(
        "star+json" in r.headers["Accept"]
        for r in github.requests
        if r.path.endswith("/stargazers")
    )


def test_backfill_from_before_the_first_star_starts_at_the_first_star(github: FakeGitHub) -> None:
    limits: list[str] = []
    points = backfill(source(github), date(2025, 6, 1), now=NOW, tz="Europe/Berlin", limits=limits)
    assert limits == ["the first star of acme/rocket came on 2026-01-01"]
    assert (
        points[0].ts.date() == date(2026, 1, 1) and points[0].value == 3
    )  # 08:00, 15:00, 22:00 UTC
    march_9_end = datetime(2026, 3, 9, 22, 59, 59, tzinfo=UTC)  # 23:59:59 in Berlin
    first = datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert points[-1].value == sum(
        1 for i in range(250) if first + timedelta(hours=7 * i) <= march_9_end
    )
    assert all(b.value >= a.value for a, b in itertools.pairwise(points))


@pytest.mark.parametrize("answer", ["empty", "422"])
def test_backfill_past_the_page_limit_says_why(github: FakeGitHub, answer: str) -> None:
    """GitHub answers pages past its cap with `200 []` (or, before, 422): 250 stars listed 100
    a page with a cap of 2 pages must not become "200 stars every day"."""
    github.max_star_pages = 2
    github.star_cap = answer
    with pytest.raises(ExtractError) as caught:
        backfill(source(github), date(2026, 3, 1), now=NOW)
    reason = "came back empty" if answer == "empty" else "refused"
    assert str(caught.value) == (
        f"GitHub lists only the first 200 stargazers of a repository this large (page 3 {reason}): "
        "stars over time cannot be backfilled for 'acme/rocket'"
    )


def test_metrics_subset_is_checked_at_load() -> None:
    from kpi_collector.config.loader import parse_config
    from kpi_collector.errors import ConfigError

    text = "sources:\n  - {name: gh, type: github, repo: a/b, metrics: [stars, stargazers]}\n"
    with pytest.raises(ConfigError, match=r"unknown metric 'stargazers'.*known: stars, forks"):
        parse_config(text, env={})
    config = parse_config(
        "sources:\n  - {type: github, repo: a/b, token: '${GITHUB_TOKEN:-}'}\n", env={}
    )
    (gh,) = config.sources
    assert (
        gh.token is None
        and "github.views" not in gh.kpi_ids()
        and "github.open_prs" in gh.kpi_ids()
    )
    config = parse_config(
        "sources:\n  - {type: github, repo: a/b, token: '${GITHUB_TOKEN}'}\n",
        env={"GITHUB_TOKEN": TOKEN},
    )
    assert "github.unique_clones" not in config.sources[0].kpi_ids()  # traffic: only when asked
    assert TOKEN not in repr(config.sources[0])


def test_a_link_to_another_host_is_not_followed_with_the_token(github: FakeGitHub) -> None:
    """The token never goes to the link's host: the link's page is asked of `api_url`."""
    github.inject(
        200,
        [{"id": 1, "assets": [{"download_count": 1}]}],
        path="/releases",
        headers={"Link": '<http://evil.example:9/steal?per_page=100&page=2>; rel="next"'},
    )
    values = collect(source(github, token=TOKEN, metrics=["releases_downloads"]))
    # page 1 the injected one (1 download), page 2 the repository's second page (30 releases)
    assert values == {"releases_downloads": 1 + 30 * 15.0}
    second = github.requests[-1]
    assert second.path == "/repos/acme/rocket/releases" and second.query["page"] == "2"


def test_enterprise_links_to_its_own_hostname_are_asked_of_api_url(github: FakeGitHub) -> None:
    """GitHub Enterprise writes its Link headers with its configured hostname, which a proxy
    in front of it hides: every release page is still read, from `api_url`."""
    github.link_base = "https://github.example.com/api/v3"
    github.repos["acme/rocket"].release_assets = [[10, 5]] * 250  # three pages
    values = collect(source(github, token=TOKEN, metrics=["releases_downloads"]))
    assert values == {"releases_downloads": 250 * 15.0}
    pages = [r.query.get("page") for r in github.requests if r.path.endswith("/releases")]
    assert pages == [None, "2", "3"], pages


def test_a_relative_link_is_read_against_the_answer(github: FakeGitHub) -> None:
    github.inject(
        200,
        [{"id": 1, "assets": [{"download_count": 1}]}],
        path="/releases",
        headers={"Link": '</repos/acme/rocket/releases?per_page=100&page=2>; rel="next"'},
    )
    values = collect(source(github, metrics=["releases_downloads"]))
    assert values == {"releases_downloads": 1 + 30 * 15.0}


def test_a_missing_list_endpoint_is_not_called_a_missing_repo(github: FakeGitHub) -> None:
    github.inject(
        404,
        {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
        path="/contributors",
    )
    result = outcome(source(github, metrics=["stars", "contributors"]))
    assert result.values == {"stars": 250.0}
    ((metric, message, _),) = result.errors
    assert metric == "contributors" and "404 for /repos/acme/rocket/contributors" in message
    assert "not found: check `repo:`" not in message


SECONDARY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
    "try again. If you reach out to GitHub Support for help, please include the request ID "
    "E198:4063:33BD6:375FF:652AAB04.",
    "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/using-the-rest-api/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits",
}
QUOTA_LEFT = {
    "x-ratelimit-limit": "5000",
    "x-ratelimit-remaining": "4990",
    "x-ratelimit-used": "10",
}


def test_secondary_limit_without_retry_after_is_transient_not_a_permission(
    github: FakeGitHub, waits: Waits
) -> None:
    """A 403 secondary limit with no Retry-After and quota left: wait at least a minute; a
    source whose timeout cannot wait that long fails as transient, never as a permission."""
    github.inject(403, SECONDARY, headers=QUOTA_LEFT, path="/repos/acme/rocket")
    result = outcome(source(github, metrics=["forks"]), timeout=20)
    ((_, message, transient),) = result.errors
    assert transient and waits.asked == []
    assert message.startswith("GitHub rate limit reached (You have exceeded a secondary rate limit")
    assert "it asks to wait, at least until" in message and "(in 60s)" in message
    assert "permission" not in message and "credentials" not in message


def test_the_fakes_own_secondary_limit_fails_the_run_as_transient(
    github: FakeGitHub, waits: Waits
) -> None:
    """The fake's secondary limit (not an injected answer): a 403 with `retry-after` for the
    rest of the minute, longer than a 20-second source may wait: transient, saying when."""
    github.secondary_limit = 0
    result = outcome(source(github, metrics=["forks"], token=TOKEN), timeout=20)
    ((_, message, transient),) = result.errors
    assert transient and waits.asked == []
    assert message.startswith("GitHub rate limit reached (You have exceeded a secondary rate limit")
    assert "; it resets at " in message and "permission" not in message
    github.secondary_limit = 900
    assert collect(source(github, metrics=["forks"], token=TOKEN)) == {"forks": 31.0}


def test_secondary_limit_waits_a_minute_within_the_budget(github: FakeGitHub, waits: Waits) -> None:
    github.inject(403, SECONDARY, headers=QUOTA_LEFT, path="/repos/acme/rocket")
    assert collect(source(github, metrics=["forks"]), timeout=90) == {"forks": 31.0}
    assert waits.asked == [60.0]
    github.inject(403, SECONDARY, headers=QUOTA_LEFT, path="/repos/acme/rocket", times=2)
    result = outcome(source(github, metrics=["forks"]), timeout=90)  # then 120 s: too long
    ((_, message, transient),) = result.errors
    assert transient and "(in 2 min)" in message and waits.asked == [60.0, 60.0]


def test_a_403_that_is_no_rate_limit_still_names_the_permission(github: FakeGitHub) -> None:
    github.inject(
        403,
        {"message": "Resource not accessible by personal access token"},
        headers=QUOTA_LEFT,
        path="/repos/acme/rocket",
    )
    result = outcome(source(github, metrics=["forks"], token=TOKEN))
    ((_, message, transient),) = result.errors
    assert "lack a permission" in message and not transient


def test_a_spent_quota_without_a_reset_header_backs_off(github: FakeGitHub, waits: Waits) -> None:
    """`x-ratelimit-remaining: 0` with no `x-ratelimit-reset` (a proxy that drops it): no
    reset time to wait for, so the 403 that says "rate limit" backs off as GitHub documents for
    secondary limits, at least a minute: longer than a run waits, so it fails at once saying
    when, as a transient error the next run retries."""
    github.inject(
        403,
        {"message": "API rate limit exceeded for 127.0.0.1.", "documentation_url": DOCS},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-limit": "60"},
        path="/repos/acme/rocket",
    )
    with pytest.raises(HttpError) as caught:
        collect(source(github, metrics=["forks"]))
    message = str(caught.value)
    assert message.startswith("GitHub rate limit reached (API rate limit exceeded for 127.0.0.1.)")
    assert "(in 60s); the next run will try again" in message
    assert caught.value.transient
    assert waits.asked == []
    assert github.hits["/repos/acme/rocket"] == 1
    assert collect(source(github, metrics=["forks"])) == {"forks": 31.0}  # the next run


def test_a_refusal_on_the_last_call_of_the_quota_is_no_rate_limit(github: FakeGitHub) -> None:
    # The request that spends the last call of the hour is answered as any other, with
    # `x-ratelimit-remaining: 0`; only "403 or 429 ... and the x-ratelimit-remaining header
    # will be 0" *with* GitHub's rate-limit message is the limit ("API rate limit exceeded
    # for ...", docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api). Here the
    # traffic refusal is the permission error (before: "GitHub rate limit reached (Must have
    # push access to repository); it resets at ... (in 60 min)", transient).
    github.spend_quota(remaining=1)
    result = outcome(source(github, token=TOKEN, metrics=["views"]))
    ((_, message, transient),) = result.errors
    assert "push access" in message and "Administration" in message, message
    assert "rate limit" not in message and not transient


def test_a_default_run_costs_four_calls_with_a_token_too(github: FakeGitHub) -> None:
    # as the connector's README says: traffic is never a default, a token adds no call
    # (a repository with up to 100 releases; acme/rocket has 130, a second page)
    collect(source(github, repo="acme/secret", token=PUSH_TOKEN))
    assert sum(github.hits.values()) == 4 and github.calls("/traffic") == 0
    github.hits.clear()
    collect(
        source(github, repo="acme/secret", token=PUSH_TOKEN, metrics=["stars", "views", "clones"])
    )
    assert github.calls("/traffic") == 2


def test_a_token_without_pull_requests_read_fails_only_issues_and_prs(
    github: FakeGitHub,
) -> None:
    """A fine-grained token with Metadata but not Pull requests read, on a private
    repository: GitHub answers the pull list 403, naming the permission it wants. Stars,
    forks and watchers still count; open_issues (which takes the pull requests off) and
    open_prs fail, naming the permission."""
    github.inject(
        403,
        {
            "message": "Resource not accessible by personal access token",
            "documentation_url": DOCS + "/pulls/pulls#list-pull-requests",
            "status": "403",
        },
        headers={**QUOTA_LEFT, "x-accepted-github-permissions": "pull_requests=read"},
        path="/pulls",
    )
    source_ = source(
        github,
        repo="acme/secret",
        token=TOKEN,
        metrics=["stars", "forks", "open_issues", "open_prs"],
    )
    result = outcome(source_)
    assert result.values == {"stars": 1.0, "forks": 1.0}
    errors = {metric: message for metric, message, _ in result.errors}
    assert set(errors) == {"open_issues", "open_prs"}
    assert all("pull_requests=read" in m for m in errors.values()), errors


def test_a_count_whose_links_name_no_last_page_reads_every_page(github: FakeGitHub) -> None:
    """A list paginated by cursor names a next page and no last one: its count was the one
    item of the first page (`per_page=1`); now every page is read."""
    github.inject(
        200,
        [{"number": 57, "state": "open"}],
        path="/pulls",
        headers={
            "Link": f'<{github.url}/repos/acme/rocket/pulls?per_page=1&after=Y3Vyc29y>; rel="next"'
        },
    )
    assert collect(source(github, metrics=["open_prs"])) == {"open_prs": 57.0}
    sizes = [r.query["per_page"] for r in github.requests if r.path.endswith("/pulls")]
    assert sizes == ["1", "100"]


def test_a_renamed_repository_is_followed_to_its_new_name(github: FakeGitHub) -> None:
    """GitHub answers a repository's former name with 301 to `/repositories/{id}`."""
    github.renamed["acme/old-rocket"] = "acme/rocket"
    values = collect(source(github, repo="acme/old-rocket", token=TOKEN))
    assert values["stars"] == 250.0 and values["open_prs"] == 57.0
    assert values["releases_downloads"] == 130 * 15.0 and values["contributors"] == 263.0
    moved = [r for r in github.requests if r.path.startswith("/repositories/")]
    assert moved and all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in moved)


def test_a_renamed_repository_on_github_enterprise_is_followed_at_api_url(
    github: FakeGitHub,
) -> None:
    """GitHub Enterprise writes the 301 of a renamed repository with its own hostname (its
    Link headers too), which a proxy in front of it hides or kpi reaches by another name:
    the new address is asked of `api_url`, as on github.com, and the token goes nowhere
    else (aiohttp followed it to a host kpi cannot reach, without the token)."""
    github.link_base = "https://github.example.com/api/v3"
    github.renamed["acme/old-rocket"] = "acme/rocket"
    values = collect(source(github, repo="acme/old-rocket", token=TOKEN))
    assert values["stars"] == 250.0 and values["open_prs"] == 57.0
    assert values["releases_downloads"] == 130 * 15.0 and values["contributors"] == 263.0
    moved = [r for r in github.requests if r.path.startswith("/repositories/")]
    assert moved and all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in moved)


def test_a_redirect_to_another_server_is_followed_without_the_token(github: FakeGitHub) -> None:
    """A 301 to another host that is not GitHub Enterprise's own address (no `/api/v3`):
    followed as before, without the token; one to `/api/v3` of a host asked of `api_url`."""
    from aiohttp import web

    from kpi_collector.demo.server import BackgroundServer

    seen: list[tuple[str, str | None]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Authorization")))
        return web.json_response({"stargazers_count": 7})

    app = web.Application()
    app.router.add_get("/{tail:.*}", elsewhere)
    with BackgroundServer(app) as other:
        other = other.replace("127.0.0.1", "localhost")
        github.inject(301, {"message": "Moved"}, path="", headers={"Location": f"{other}/x"})
        assert collect(source(github, token=TOKEN, metrics=["stars"])) == {"stars": 7.0}
        assert seen == [("/x", None)]
        moved = f"{other}/api/v3/repositories/{github.repos['acme/rocket'].id}"
        github.inject(301, {}, path="", headers={"Location": moved})
        assert collect(source(github, token=TOKEN, metrics=["stars"])) == {"stars": 250.0}
        assert seen == [("/x", None)]
    assert github.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_refusal_in_a_legacy_charset_is_shown_as_written(github: FakeGitHub) -> None:
    """A refusal whose body is in the charset its `Content-Type` names (a proxy in front of
    GitHub Enterprise in Latin-1, a Shift_JIS JSON): its message was read as UTF-8."""
    latin1 = {"Content-Type": "text/plain; charset=ISO-8859-1"}
    github.inject(403, "Zugriff für diese Adresse gesperrt".encode("latin-1"), headers=latin1)
    ((_, message, _),) = outcome(source(github, metrics=["stars"])).errors
    assert message == (
        f"GitHub refused {github.url}/repos/acme/rocket (HTTP 403: Zugriff für diese Adresse "
        "gesperrt); source 'github' sends no credentials"
    )
    sjis = {"Content-Type": "application/json; charset=Shift_JIS"}
    body = '{"message": "検証に失敗しました"}'.encode("shift_jis")
    github.inject(422, body, headers=sjis)
    ((_, message, _),) = outcome(source(github, metrics=["stars"])).errors
    assert message == "GitHub refused the request (HTTP 422): 検証に失敗しました"


def test_a_refusal_after_a_redirect_to_another_host_does_not_blame_the_token(
    github: FakeGitHub,
) -> None:
    """A 301 to another host (not GitHub Enterprise's own address), which answers 401: the
    token was never sent there, so the line says so instead of calling it wrong."""
    from aiohttp import web

    from kpi_collector.demo.server import BackgroundServer

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"message": "Requires authentication"}, status=401)

    app = web.Application()
    app.router.add_get("/{tail:.*}", refuse)
    with BackgroundServer(app) as other:
        other = other.replace("127.0.0.1", "localhost")
        github.inject(301, {}, path="", headers={"Location": f"{other}/repos/acme/rocket"})
        ((_, message, transient),) = outcome(source(github, token=TOKEN, metrics=["stars"])).errors
    assert not transient
    assert message == (
        f"GitHub answered HTTP 401 at {other}/repos/acme/rocket, where {github.url}/repos/acme/"
        "rocket redirected, on another host than `api_url`: the credentials of source "
        "'github' are not sent there; if it is the service's own address, set `api_url:` to it"
    )


def test_an_answer_still_being_computed_is_asked_again_never_counted_0(
    github: FakeGitHub, waits: Waits
) -> None:
    """202 Accepted with an empty body: GitHub still gathering the answer. It was counted as
    an empty list, 0 contributors; now it is asked again, and a 202 that stays is transient."""
    github.inject(202, None, path="/contributors")
    assert collect(source(github, metrics=["contributors"])) == {"contributors": 263.0}
    assert waits.asked == [1.0]
    github.inject(202, None, path="/contributors", times=3)
    result = outcome(source(github, metrics=["contributors"]))
    ((_, message, transient),) = result.errors
    assert "GitHub is still computing" in message and "HTTP 202" in message and transient


def test_more_releases_than_github_lists_is_an_error_not_a_partial_sum(
    github: FakeGitHub,
) -> None:
    github.repos["acme/rocket"].release_assets = [[10, 5]] * 1030
    result = outcome(source(github, metrics=["stars", "releases_downloads"]))
    assert result.values == {"stars": 250.0}
    ((metric, message, transient),) = result.errors
    assert metric == "releases_downloads" and not transient
    assert "GitHub lists only the first 1,000 releases of 'acme/rocket'" in message
    assert "Only the first 1000 results are available" in message
    assert "leave `releases_downloads` out of `metrics:`" in message


def test_a_private_repo_the_token_cannot_see_says_so(github: FakeGitHub) -> None:
    """GitHub answers 404, not 403, for a private repository the token has no access to: the
    message only said to check `repo:`, though the name was right."""
    github.repos["acme/secret"].readers = {PUSH_TOKEN}
    with pytest.raises(HttpError) as caught:
        collect(source(github, repo="acme/secret", token=TOKEN, metrics=["stars"]))
    message = str(caught.value)
    assert "'acme/secret' not found: check `repo:`" in message
    assert "or it is private and the token cannot see it" in message and TOKEN not in message
    assert collect(source(github, repo="acme/secret", token=PUSH_TOKEN, metrics=["forks"])) == {
        "forks": 1.0
    }


def test_a_next_page_that_was_already_read_stops_the_list(github: FakeGitHub) -> None:
    """A cache in front of the API that ignores the query answers every page with the first
    one, whose Link names page 2 again: each was summed again, up to 10,000 pages."""
    page = [{"id": 1, "assets": [{"download_count": 5}]}]
    link = {"Link": f'<{github.url}/repos/acme/rocket/releases?per_page=100&page=2>; rel="next"'}
    github.inject(200, page, path="/releases", headers=link, times=3)
    result = outcome(source(github, metrics=["stars", "releases_downloads"]))
    assert result.values == {"stars": 250.0}
    ((metric, message, _),) = result.errors
    assert metric == "releases_downloads" and "named a page already read" in message
    assert github.calls("/releases") == 3


def test_an_api_url_answering_web_pages_names_api_url_not_the_repo() -> None:
    """GitHub Enterprise Server's web UI answers `api_url: https://HOST` (without /api/v3)
    with its HTML 404 page: the error said the repository was not found and to check
    `repo:`. The REST API answers every 404 with JSON: a web page now names `api_url:`."""

    async def page(request: web.Request) -> web.Response:
        return respond(404, "<!DOCTYPE html><html><title>Page not found · GitHub</title></html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    with BackgroundServer(app) as url:
        result = outcome(GitHub(repo="acme/rocket", api_url=url, metrics=["stars"]))
    ((_, message, _),) = result.errors
    assert "GitHub answered 404 with a web page" in message and "check `api_url:`" in message
    assert "GitHub Enterprise Server: https://HOST/api/v3" in message
    assert "`repo:`" not in message


def test_a_token_not_authorized_for_saml_sso_says_so_not_a_missing_permission(
    github: FakeGitHub,
) -> None:
    """An organization enforcing SAML SSO answers a token not authorized for it with 403 and
    `X-GitHub-SSO: required; url=...`: the error said the credentials lacked a permission.
    It now says to authorize the token for the organization's SSO, without the URL's
    one-time query."""
    github.sso["acme"] = set()
    result = outcome(source(github, token=TOKEN, metrics=["stars"]))
    ((_, message, transient),) = result.errors
    assert "Resource protected by organization SAML enforcement" in message
    assert "enforces SAML single sign-on" in message and "Configure SSO" in message
    assert "https://github.com/orgs/acme/sso" in message and "authorization_request" not in message
    assert "lack a permission" not in message and not transient
    github.sso["acme"] = {TOKEN}
    assert collect(source(github, token=TOKEN, metrics=["stars"])) == {"stars": 250.0}
