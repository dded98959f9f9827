"""`type: discord`: a server's member and online counts, read through one of its invites.

`members` is Discord's `approximate_member_count`: every account in the server, its bots and
members who have not yet passed membership screening included (Discord's count cannot be
split without a bot reading the whole member list); `online` is `approximate_presence_count`
(https://discord.com/developers/docs/resources/invite#invite-object).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.http import Response
from kpi_collector.sources._service import ServiceSource, number
from kpi_collector.sources.base import SourceContext

_FIELDS = {"members": "approximate_member_count", "online": "approximate_presence_count"}


class Discord(ServiceSource):
    type: ClassVar[str] = "discord"
    service_name: ClassVar[str] = "Discord"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(_FIELDS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics

    invite: str = Field(description="an invite code that does not expire, or its discord.gg link")
    api_url: str = "https://discord.com"

    @field_validator("invite")
    @classmethod
    def _code(cls, value: str) -> str:
        code = re.sub(
            r"^(https?://)?(www\.)?(discord\.gg|discord(app)?\.com/invite)/", "", value.strip()
        ).strip("/")
        if not re.fullmatch(r"[A-Za-z0-9-]+", code):
            raise ValueError(
                f"{value!r} is not an invite code like AbCdEf or https://discord.gg/AbCdEf"
            )
        return code

    def not_found(self, response: Response) -> str:
        return (
            f"Discord knows no invite {self.invite!r} (expired or deleted?): give `invite:` of source "
            f"{self.name!r} an invite that never expires"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        data = await self.client(ctx).json(
            f"/api/v10/invites/{self.invite}", params={"with_counts": "true"}
        )
        return {
            metric: number(data, _FIELDS[metric], self.service_name) for metric in self.wanted()
        }
