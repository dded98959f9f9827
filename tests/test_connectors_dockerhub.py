"""`type: dockerhub` against a local Docker Hub API."""

from __future__ import annotations

import time

import pytest

from kpi_collector.errors import HttpError
from kpi_collector.sources.dockerhub import DockerHub
from kpi_collector.sources.dockerhub.fake import FakeDockerHub
from tests.fakes.collect import collect, outcome


@pytest.fixture
def hub():
    fake = FakeDockerHub(
        repos={"zenmldocker/zenml": (1_234_567, 89), "library/nginx": (10**9, 20_000)}
    )
    with fake.serve():
        yield fake


def test_pulls_and_stars(hub: FakeDockerHub) -> None:
    assert collect(DockerHub(repo="zenmldocker/zenml", api_url=hub.url)) == {
        "pulls": 1_234_567,
        "stars": 89,
    }
    assert hub.hits == {"/v2/repositories/zenmldocker/zenml/": 1}


def test_official_image_lives_in_library(hub: FakeDockerHub) -> None:
    source = DockerHub(repo="nginx", api_url=hub.url, metrics=["pulls"])
    assert source.repo == "library/nginx"
    assert collect(source) == {"pulls": 10**9}


def test_unknown_repo_is_named(hub: FakeDockerHub) -> None:
    with pytest.raises(HttpError, match="Docker Hub has no repository 'acme/nothing'"):
        collect(DockerHub(repo="acme/nothing", api_url=hub.url))


def test_rate_limit_with_retry_after_then_success(hub: FakeDockerHub) -> None:
    hub.inject(
        429,
        {"message": "Too Many Requests"},
        headers={"Retry-After": "1", "X-RateLimit-Remaining": "0"},
    )
    assert collect(DockerHub(repo="zenmldocker/zenml", api_url=hub.url, metrics=["stars"])) == {
        "stars": 89
    }


def test_long_retry_after_fails_saying_when(hub: FakeDockerHub) -> None:
    hub.inject(429, {"message": "Too Many Requests"}, headers={"Retry-After": "600"})
    result = outcome(DockerHub(repo="zenmldocker/zenml", api_url=hub.url))
    ((_, message, transient),) = result.errors
    assert (
        "Docker Hub rate limit reached (Too Many Requests); it resets at" in message
        and "in 10 min" in message
    )
    assert transient


def test_server_errors_then_success(hub: FakeDockerHub) -> None:
    hub.inject(503, "<html>upstream connect error</html>", times=2)
    assert collect(DockerHub(repo="zenmldocker/zenml", api_url=hub.url))["pulls"] == 1_234_567


PAT = "dckr_pat_FakePersonalAccessToken123"


def test_a_private_repo_with_a_personal_access_token(hub: FakeDockerHub) -> None:
    hub.repos["acme/internal"] = (321, 2)
    hub.private.add("acme/internal")
    hub.accounts["acmebot"] = PAT
    with pytest.raises(HttpError, match=r"a private one needs `username:` and `token:`"):
        collect(DockerHub(repo="acme/internal", api_url=hub.url))
    source = DockerHub(repo="acme/internal", api_url=hub.url, username="acmebot", token=PAT)
    assert collect(source) == {"pulls": 321, "stars": 2}
    login, repo = hub.requests[-2:]
    assert login.path == "/v2/auth/token" and login.method == "POST"
    assert repo.headers["Authorization"] == f"Bearer {next(iter(hub.issued))}"


def test_a_wrong_token_names_the_variable_and_never_the_token(hub: FakeDockerHub) -> None:
    hub.accounts["acmebot"] = PAT
    wrong = "dckr_pat_WrongWrongWrong000000"
    result = outcome(
        DockerHub(repo="zenmldocker/zenml", api_url=hub.url, username="acmebot", token=wrong)
    )
    ((_, message, transient),) = result.errors
    assert "Docker Hub refused the credentials (HTTP 401: Incorrect authentication" in message
    assert "${DOCKERHUB_TOKEN}" in message and wrong not in message and not transient


def test_a_token_of_another_docker_id_names_username_too(hub: FakeDockerHub) -> None:
    """Docker Hub refuses a personal access token given with another Docker ID as it refuses
    a wrong token: the message named only `token`, though the token was right."""
    hub.accounts["acmebot"] = PAT
    result = outcome(
        DockerHub(repo="zenmldocker/zenml", api_url=hub.url, username="acme-bot", token=PAT)
    )
    ((_, message, _),) = result.errors
    assert "Docker Hub refused the credentials (HTTP 401" in message
    assert "`username: acme-bot` is not the Docker ID that token belongs to" in message
    assert PAT not in message


def test_a_token_needs_a_username() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="token needs username"):
        DockerHub(repo="acme/internal", token=PAT)


def test_a_bare_organisation_name_is_told_it_reads_as_an_official_image(hub: FakeDockerHub) -> None:
    # Docker Hub keeps pull counts per repository (`pull_count` of
    # /v2/repositories/{namespace}/{name}/); a bare name is an official image, `library/NAME`.
    # `repo: zenmldocker` (the organisation) is no official image: the error says how the
    # name was read and what to write (before: only "no repository 'library/zenmldocker'").
    with pytest.raises(HttpError) as caught:
        collect(DockerHub(repo="zenmldocker", api_url=hub.url))
    message = str(caught.value)
    assert "'library/zenmldocker'" in message
    assert "official image" in message and "zenmldocker/NAME" in message


@pytest.mark.parametrize(
    "headers",
    [
        # seconds, not a Unix time (the IETF draft's RateLimit-Reset, some APIs' x-ratelimit-reset)
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "600"},
        {"RateLimit-Remaining": "0", "RateLimit-Reset": "600"},  # GitLab, IETF draft
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "600"},  # Discord
        {"RateLimit-Remaining": "0;w=21600", "RateLimit-Reset": "600;w=21600"},  # Docker
    ],
)
def test_a_spent_quota_resetting_in_seconds_is_waited_for_as_seconds(
    hub: FakeDockerHub, headers: dict[str, str]
) -> None:
    """A reset given in seconds was read as a Unix time long past: asked again at once, then
    failed saying it "resets in 0s"; now it says when, ten minutes on."""
    hub.inject(429, {"message": "Too Many Requests"}, headers=headers, times=3)
    result = outcome(DockerHub(repo="zenmldocker/zenml", api_url=hub.url))
    ((_, message, transient),) = result.errors
    assert "it resets at" in message and "in 10 min" in message and transient
    assert hub.calls("/v2/repositories") == 1  # not asked again in vain


def test_a_spent_quota_with_a_unix_reset_still_waits_until_then(hub: FakeDockerHub) -> None:
    reset = int(time.time()) + 1
    hub.inject(
        429,
        {"message": "Too Many Requests"},
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
    )
    assert collect(DockerHub(repo="zenmldocker/zenml", api_url=hub.url, metrics=["stars"])) == {
        "stars": 89
    }


def test_a_private_repo_the_docker_id_cannot_read_says_so(hub: FakeDockerHub) -> None:
    hub.repos["acme/internal"] = (321, 2)
    hub.private.add("acme/internal")
    hub.readers["acme/internal"] = {"acmebot"}
    hub.accounts["outsider"] = PAT
    result = outcome(
        DockerHub(repo="acme/internal", api_url=hub.url, username="outsider", token=PAT)
    )
    ((_, message, _),) = result.errors
    assert "Docker Hub has no repository 'acme/internal'" in message and PAT not in message
    assert "or it is private and the Docker ID 'outsider' cannot read it" in message
