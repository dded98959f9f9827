"""`HttpSource`, the model `http_json` and `html` share: a URL, auth, an optional login form
and metrics, checked when the config is read. Its behaviour is in
`sources._http.PlainHttpSource`, which a run from the config cache uses without pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from kpi_collector.collect.auth import Auth, LoginForm
from kpi_collector.collect.extract import coerce_metric
from kpi_collector.collect.http import check_http_url, remember_trimmed
from kpi_collector.collect.metric import Metric
from kpi_collector.secrets import remember_url_credentials, remember_values
from kpi_collector.sources._http import PlainHttpSource
from kpi_collector.sources.model import Source

__all__ = ["HttpSource"]


class HttpSource(PlainHttpSource, Source):
    """A page or API at `url`, read once per run; each metric is read from the same answer."""

    url: str
    method: str = Field(default="GET", pattern="^(GET|POST)$")
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    auth: Auth | None = None
    login: LoginForm | None = None
    metrics: dict[str, Metric]

    @field_validator("metrics", mode="before")
    @classmethod
    def _short_metrics(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: coerce_metric(v, cls.default_extractor) for k, v in value.items()}
        return value

    @field_validator("metrics")
    @classmethod
    def _some_metrics(cls, value: dict[str, Metric]) -> dict[str, Metric]:
        if not value:
            raise ValueError("give at least one metric")
        return value

    @field_validator("params", "headers")
    @classmethod
    def _secret_values(cls, value: dict[str, str]) -> dict[str, str]:
        remember_values(value)
        remember_trimmed(v for v in value.values() if isinstance(v, str))
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        check_http_url(value)
        remember_url_credentials(value)  # `?key=...`: a server may echo the key alone
        return value
