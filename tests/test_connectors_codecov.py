"""`type: codecov` against a local Codecov API v2."""

from __future__ import annotations

import pytest

from kpi_collector.errors import HttpError
from kpi_collector.sources.codecov import Codecov
from kpi_collector.sources.codecov.fake import FakeCodecov
from tests.fakes.collect import collect, outcome

TOKEN = "6c1f0b7e-codecov-token-4b1d-9c3e"


@pytest.fixture
def codecov():
    fake = FakeCodecov(tokens={TOKEN}, private={"acme/secret"})
    fake.reports[("github", "acme/rocket", None)] = {
        "files": 40,
        "lines": 2000,
        "hits": 1700,
        "misses": 250,
        "partials": 50,
    }
    fake.reports[("github", "acme/rocket", "develop")] = {"files": 41, "lines": 2100, "hits": 1600}
    fake.reports[("gitlab", "acme/rocket", None)] = {"files": 1, "lines": 10, "hits": 9}
    fake.reports[("github", "acme/secret", None)] = {"files": 1, "lines": 10, "hits": 5}
    with fake.serve():
        yield fake


def test_coverage_of_the_default_branch(codecov: FakeCodecov) -> None:
    assert collect(Codecov(repo="acme/rocket", token=TOKEN, api_url=codecov.url)) == {
        "coverage": 85.0
    }
    (request,) = codecov.requests
    assert request.path == "/api/v2/github/acme/repos/rocket/totals/"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_line_counts_branch_and_service(codecov: FakeCodecov) -> None:
    source = Codecov(
        repo="acme/rocket",
        token=TOKEN,
        branch="develop",
        api_url=codecov.url,
        metrics=["coverage", "lines", "hits", "files"],
    )
    assert collect(source) == {"coverage": 76.19, "lines": 2100, "hits": 1600, "files": 41}
    gitlab = Codecov(repo="acme/rocket", service="gitlab", token=TOKEN, api_url=codecov.url)
    assert collect(gitlab) == {"coverage": 90.0}


def test_bad_token_names_the_variable(codecov: FakeCodecov) -> None:
    wrong = "00000000-wrong-token-0000-000000"
    result = outcome(Codecov(repo="acme/rocket", token=wrong, api_url=codecov.url))
    ((_, message, _),) = result.errors
    assert "Codecov refused the credentials (HTTP 401: Invalid token.)" in message
    assert "`token`" in message and "${CODECOV_TOKEN}" in message and wrong not in message


def test_unknown_repo_and_private_without_token(codecov: FakeCodecov) -> None:
    with pytest.raises(HttpError, match="no coverage for github repository 'acme/nope'"):
        collect(Codecov(repo="acme/nope", token=TOKEN, api_url=codecov.url))
    with pytest.raises(
        HttpError, match=r"branch 'main' of github repository 'acme/rocket'.*`branch:`"
    ):
        collect(Codecov(repo="acme/rocket", token=TOKEN, branch="main", api_url=codecov.url))
    with pytest.raises(HttpError, match="private repository needs `token:`"):
        collect(Codecov(repo="acme/secret", api_url=codecov.url))


def test_rate_limit_then_success(codecov: FakeCodecov) -> None:
    codecov.inject(
        429,
        {"detail": "Request was throttled. Expected available in 1 second."},
        headers={"Retry-After": "1"},
    )
    assert collect(Codecov(repo="acme/rocket", token=TOKEN, api_url=codecov.url)) == {
        "coverage": 85.0
    }


def test_unknown_metric_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown metric 'branches'"):
        Codecov(repo="acme/rocket", metrics=["branches"])


def test_a_private_repo_the_token_cannot_see_says_so(codecov: FakeCodecov) -> None:
    """Codecov answers 404 to a token whose user cannot see a private repository: the message
    only said to check `repo:`, `service:`, though they were right."""
    other = "0000aaaa-codecov-other-token-0001"
    codecov.tokens.add(other)
    codecov.readers["acme/secret"] = {TOKEN}
    result = outcome(Codecov(repo="acme/secret", token=other, api_url=codecov.url))
    ((_, message, _),) = result.errors
    assert "check `repo:` and `service:`" in message and other not in message
    assert "or it is private and the token's user cannot see it on Codecov" in message


def test_a_head_commit_without_a_report_says_so_not_to_check_the_name(
    codecov: FakeCodecov,
) -> None:
    """Codecov answers 404 "No coverage report found for commit ..." when the repository is
    there but its head commit has no upload (a CI run that skipped coverage): the message
    told to check `repo:` and `service:`, which were right. It says what Codecov said now."""
    codecov.reports[("github", "acme/rocket", None)] = None
    result = outcome(Codecov(repo="acme/rocket", token=TOKEN, api_url=codecov.url))
    ((_, message, _),) = result.errors
    assert "no coverage report for the head commit of the default branch" in message
    assert "No coverage report found for commit 3f5a9c2d" in message
    assert "check `repo:`" not in message
    # an unknown repository still names the keys to check
    unknown = outcome(Codecov(repo="acme/nothing", token=TOKEN, api_url=codecov.url))
    ((_, message, _),) = unknown.errors
    assert "check `repo:`" in message and "report" not in message
