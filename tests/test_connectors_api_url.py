"""An `api_url` that is not the service's API: the registries' and code hosts' APIs answer
their 404s with JSON, so a 404 web page is another server, and the error names `api_url:`
rather than the package, crate or repository, which may well be right."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from kpi_collector.sources._fake import BackgroundServer, respond
from kpi_collector.sources.codecov import Codecov
from kpi_collector.sources.conda import Conda
from kpi_collector.sources.crates import Crates
from kpi_collector.sources.dockerhub import DockerHub
from kpi_collector.sources.github import GitHub
from kpi_collector.sources.npm import Npm
from tests.fakes.collect import outcome
from tests.fakes.data import NOW

_PAGE = (
    "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>"
)


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    """A web server answering every path with its HTML 404 page (a product's website, an
    instance's web UI)."""

    async def page(request: web.Request) -> web.Response:
        return respond(404, _PAGE)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    with BackgroundServer(app) as url:
        yield url


@pytest.mark.parametrize(
    ("cls", "config", "wrong_key"),
    [
        (GitHub, {"repo": "acme/rocket"}, "`repo:`"),
        (Npm, {"package": "express"}, "`package:`"),
        (Crates, {"crate": "serde"}, "`crate:`"),
        (DockerHub, {"repo": "zenmldocker/zenml"}, "`repo:`"),
        (Conda, {"package": "numpy"}, "`package:`"),
        (Codecov, {"repo": "acme/rocket", "token": "6c1f0b7e-codecov"}, "`repo:`"),
    ],
)
def test_a_404_web_page_names_api_url(
    web_server: str, cls: Any, config: dict[str, Any], wrong_key: str
) -> None:
    result = outcome(cls(api_url=web_server, **config), now=NOW)
    assert result.errors, result.values
    for _, message, transient in result.errors:
        assert "answered 404 with a web page, not its API's JSON" in message
        assert "check `api_url:`" in message and wrong_key not in message
        assert not transient and "<html" not in message.lower()
