"""Every local message service on one server, for the tests that deliver to several at once;
each lives in its destination's folder (`kpi_collector.destinations.<type>.fake`)."""

from __future__ import annotations

from kpi_collector.destinations.discord.fake import FakeDiscord
from kpi_collector.destinations.segment.fake import FakeSegment
from kpi_collector.destinations.slack.fake import FakeSlack
from kpi_collector.destinations.webhook.fake import FakeReceiver


class FakeHooks(FakeDiscord, FakeSlack, FakeSegment, FakeReceiver):
    """Discord, Slack, Segment and a plain receiver; read back with `discord`, `slack`,
    `segment`, `hooks`."""
