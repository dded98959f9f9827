"""Sources: each module is one config `type`; each returns `{metric: number}`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpi_collector.collect.extract import CSS, JMESPath, Metric, XPath
from kpi_collector.lazy import lazy_exports
from kpi_collector.sources.base import Observation, Source, SourceContext

if TYPE_CHECKING:
    from kpi_collector.sources.active_users import ActiveUsers
    from kpi_collector.sources.codecov import Codecov
    from kpi_collector.sources.command import Command
    from kpi_collector.sources.discord import Discord
    from kpi_collector.sources.dockerhub import DockerHub
    from kpi_collector.sources.github import GitHub
    from kpi_collector.sources.html import HTML
    from kpi_collector.sources.http_json import HttpJson
    from kpi_collector.sources.mixpanel import Mixpanel
    from kpi_collector.sources.npm import Npm
    from kpi_collector.sources.posthog import PostHog
    from kpi_collector.sources.pypi import PyPI
    from kpi_collector.sources.python import Function
    from kpi_collector.sources.slack import Slack
    from kpi_collector.sources.sql import SQL
    from kpi_collector.sources.stripe import Stripe

__all__ = [
    "CSS",
    "HTML",
    "SQL",
    "ActiveUsers",
    "Codecov",
    "Command",
    "Discord",
    "DockerHub",
    "Function",
    "GitHub",
    "HttpJson",
    "JMESPath",
    "Metric",
    "Mixpanel",
    "Npm",
    "Observation",
    "PostHog",
    "PyPI",
    "Slack",
    "Source",
    "SourceContext",
    "Stripe",
    "XPath",
]

_LAZY = {
    "ActiveUsers": "active_users",
    "Command": "command",
    "Function": "python",
    "GitHub": "github",
    "HTML": "html",
    "HttpJson": "http_json",
    "SQL": "sql",
    "PyPI": "pypi",
    "Npm": "npm",
    "DockerHub": "dockerhub",
    "Codecov": "codecov",
    "Discord": "discord",
    "Slack": "slack",
    "Stripe": "stripe",
    "PostHog": "posthog",
    "Mixpanel": "mixpanel",
}


__getattr__ = lazy_exports("kpi_collector.sources", _LAZY)
