"""`type: conda`: a conda package's total downloads, summed over every file (each version,
platform and build) of each channel given, and its number of versions, from the anaconda.org
package API (`GET /package/{channel}/{package}`, its `files[].ndownloads`; the API
anaconda-client reads). The totals are all-time counts with no dates: no backfill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.http import Response
from kpi_collector.errors import ExtractError
from kpi_collector.sources._service import ServiceClient, ServiceSource
from kpi_collector.sources.base import SourceContext

_NAME = re.compile(r"^[A-Za-z0-9_][\w.+-]*$")


class Conda(ServiceSource):
    type: ClassVar[str] = "conda"
    service_name: ClassVar[str] = "anaconda.org"
    json_not_found: ClassVar[bool] = True  # its 404s are JSON; a web page is not it
    known_metrics: ClassVar[tuple[str, ...]] = ("downloads", "versions")
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics

    package: str = Field(description="the package's name, e.g. numpy")
    channels: list[str] = Field(
        default_factory=lambda: ["conda-forge"],
        description="the channels whose downloads are summed; default [conda-forge]",
    )
    api_url: str = "https://api.anaconda.org"

    @field_validator("package")
    @classmethod
    def _package_name(cls, value: str) -> str:
        if not _NAME.match(value.strip()):
            raise ValueError(f"{value!r} is not a conda package name like numpy")
        return value.strip()

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one channel, e.g. [conda-forge]")
        for channel in value:
            if not _NAME.match(channel):
                raise ValueError(f"{channel!r} is not a channel name like conda-forge")
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    def not_found(self, response: Response) -> str:
        channel = next((c for c in self.channels if f"/package/{c}/" in response.url), "?")
        return (
            f"anaconda.org has no package {self.package!r} in channel {channel!r}: check "
            f"`package:` and `channels:` of source {self.name!r}"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """One call per channel; `downloads` sums `ndownloads` of every file, `versions`
        counts the distinct versions of all channels together."""
        client = self.client(ctx)
        downloads = 0
        versions: set[str] = set()
        for channel in self.channels:
            data = await self._package(client, channel)
            for item in data["files"]:
                count = item.get("ndownloads") if isinstance(item, dict) else None
                if isinstance(count, bool) or not isinstance(count, int):
                    raise ExtractError(
                        f"anaconda.org: a file of {channel}/{self.package} has no `ndownloads`"
                    )
                downloads += count
            versions.update(str(v) for v in data.get("versions") or [])
        values = {"downloads": float(downloads), "versions": float(len(versions))}
        return {m: values[m] for m in self.wanted()}

    async def _package(self, client: ServiceClient, channel: str) -> dict[str, Any]:
        data = await client.json(f"/package/{channel}/{self.package}")
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise ExtractError(
                f"anaconda.org: the answer for {channel}/{self.package} has no `files` list"
            )
        return data
