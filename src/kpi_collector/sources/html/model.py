"""The model of `type: html`: `render` and `wait_for` beside `HttpSource`'s fields, checked
when the config is read; its behaviour is `PlainHTML`, which a run from the config cache uses
without pydantic."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect.extract import check_css
from kpi_collector.sources._http_model import HttpSource
from kpi_collector.sources.html import PlainHTML

__all__ = ["HTML"]


class HTML(PlainHTML, HttpSource):
    """A page read with CSS or XPath. `render: true` loads it in headless Chromium (through
    Playwright) and reads the DOM its scripts built, once `wait_for` (a CSS selector) is in
    the page, or, without it, once the network is idle; `login:` is then filled in the
    browser."""

    render: bool = Field(
        default=False, description="load the page in headless Chromium and read the rendered DOM"
    )
    wait_for: str | None = Field(
        default=None,
        description="with `render`: a CSS selector to wait for (default: the network goes idle)",
    )

    @field_validator("wait_for")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            check_css(value)
        return value

    @model_validator(mode="after")
    def _render_options(self) -> HTML:
        if self.wait_for is not None and not self.render:
            raise ValueError("`wait_for:` waits in the browser: add `render: true`")
        if self.render and (self.method != "GET" or self.body is not None):
            raise ValueError(
                "`render: true` loads the page as a browser does, with GET: drop `method:` "
                "and `body:`"
            )
        return self
