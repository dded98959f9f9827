"""The text of messages, shared by the message destinations and the Markdown report: cutting
and splitting to a service's limits, escaping for each medium (Markdown, Slack mrkdwn, HTML),
a KPI line of the digest; and `send_now`, how `send_text` (alerts) sends one short message.

`send_now`: `kpi_collector.alerts.engine` calls `send_text` after the run's deliveries, once
per message; a failure it sees is retried on the next run. Within the call, a transient
failure (connection, 5xx, 429) is retried like a delivery: up to the destination's `retries`,
with backoff and jitter, waiting at least a `Retry-After` (a longer one than
`MAX_RETRY_AFTER` fails now).
"""

from __future__ import annotations

import dataclasses
import html
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from kpi_collector.destinations.base import PooledHttp

if TYPE_CHECKING:
    from kpi_collector.collect.http import HttpClient
    from kpi_collector.destinations.base import Destination
    from kpi_collector.destinations.digest import Digest, DigestLine


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` - 1 characters and "…" when it is longer than `limit`."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_lines(lines: Sequence[str], limit: int) -> list[str]:
    """Join lines into texts of at most `limit` characters, breaking only between lines
    (a single longer line is cut); blank texts are dropped."""
    texts: list[str] = []
    current = ""
    for raw in lines:
        line = cut(raw, limit)
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current.strip():
            texts.append(current)
        current = line
    if current.strip():
        texts.append(current)
    return texts


#: what formats, links or mentions anywhere in Markdown and Discord text: bold and italics,
#: underline, strike, code, spoilers, `<@id>` mentions, `<t:…>` stamps, `[text](url)` links
_MARKUP = re.compile(r"([\\`*_~|<>\[\]])")
#: what formats at the start of a line only: headings, quotes, lists
_LINE_MARKUP = re.compile(r"(?m)^(\s*)([#+-]|\d+(?=[.)]))")


def escape_markdown(text: str) -> str:
    """User data (a title, a failure message, an alert) in Markdown and Discord messages, shown
    as written: every markup character gets a backslash (the escape of Discord and CommonMark),
    so nothing turns into bold, italics, code, a spoiler, a link, a heading, a quote or a
    list, and `@` gets a zero-width space, so `@everyone` never pings."""
    text = _MARKUP.sub(r"\\\1", text).replace("@", "@\u200b")
    return _LINE_MARKUP.sub(_escape_line_start, text)


def escape_markdown_inline(text: str) -> str:
    """`escape_markdown` for text inside a line (a value with its unit, after the title): the
    markup characters and `@`, not the marks that only start a line (`-5` stays `-5`)."""
    return _MARKUP.sub(r"\\\1", text).replace("@", "@\u200b")


def _escape_line_start(found: re.Match[str]) -> str:
    indent, mark = found.group(1), found.group(2)
    return f"{indent}\\{mark}" if not mark[0].isdigit() else f"{indent}{mark}\\"


def escape_slack(text: str) -> str:
    """Text in Slack mrkdwn: `&`, `<` and `>` escaped, so nothing becomes a link, a mention or
    `@channel` (Slack API docs, "Formatting text for app surfaces": escaping text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_html(text: str) -> str:
    """Text in HTML content or a quoted attribute (`&`, `<`, `>`, `"`, `'` as references)."""
    return html.escape(text)


#: the explicit bidi formatting characters (UAX #9: embeddings, overrides, isolates)
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
#: the bidi classes that lay out right to left: Hebrew, Arabic letters, Arabic digits
_RIGHT_TO_LEFT = frozenset({"R", "AL", "AN"})
FSI, PDI = "\u2068", "\u2069"


def isolate(text: str) -> str:
    """User text (a title, a unit, a note, an error) beside numbers in a plain-text or Markdown
    message, laid out on its own: when it holds right-to-left letters (Hebrew, Arabic) it goes
    between FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE (U+2068, U+2069), so the bidi
    algorithm never moves the numbers after it (`משתמשים: 1,647 ⬆ 1.67%` kept the value
    and change on the title's side, reversed); its own bidi controls are dropped (an RLO
    reversed the rest of the line, a PDI closed the isolate early). Other text as it is."""
    text = _BIDI_CONTROLS.sub("", text)
    if any(unicodedata.bidirectional(c) in _RIGHT_TO_LEFT for c in text):
        return f"{FSI}{text}{PDI}"
    return text


def kpi_line(
    line: DigestLine,
    strong: str = "",
    escape: Callable[[str], str] = str,
    escape_value: Callable[[str], str] = str,
) -> str:
    """ "GitHub Stargazers: 1,647 ⬆ 1.67%", the title between `strong` marks ("**" in Markdown)
    and through `escape` (the medium's, for text a user wrote); the value ("-5" or "12.5" as
    this project spelled it, with the unit a user wrote) through `escape_value`, the medium's
    escape inside a line; no change part with nothing to compare. Title and value are
    `isolate`d (right-to-left text never moves the numbers)."""
    value = isolate(escape_value(line.formatted))
    text = f"{strong}{isolate(escape(line.title))}{strong}: {value}"
    change = line.change_text
    return f"{text} {change}" if change else text


def kpi_line_within(
    line: DigestLine,
    limit: int,
    strong: str = "",
    escape: Callable[[str], str] = str,
    escape_value: Callable[[str], str] = str,
) -> str:
    """`kpi_line(line, strong, escape, escape_value)`, its title cut ("…") so that the line
    keeps within `limit` characters: a title too long for one message never costs the value."""
    text = kpi_line(line, strong, escape, escape_value)
    title = line.title
    while len(text) > limit and title:
        over = len(text) - limit
        title = title[: max(0, len(title) - over - 1)]
        shorter = dataclasses.replace(line, title=title + "…")
        text = kpi_line(shorter, strong, escape, escape_value)
    return text


def grouped_lines(
    digest: Digest,
    line: Callable[[DigestLine], str],
    heading: Callable[[str], Sequence[str]],
) -> list[str]:
    """The digest's KPI lines rendered by `line`, each group preceded by `heading(name)`
    (lines); without any `group:`, just the lines. KPIs without a group come last, as "Other"."""
    if not digest.grouped:
        return [line(item) for item in digest.lines]
    out: list[str] = []
    for group, items in digest.sections():
        out += heading(group or "Other")
        out += [line(item) for item in items]
    return out


class Outbox(PooledHttp):
    """What the posting helpers need from a `Delivery` (`http()`), for a message sent outside
    one: sessions on a pool that lives as long as the message."""

    def __init__(self, client: HttpClient) -> None:
        self.http_client = client


async def send_now(destination: Destination, attempt: Callable[[Outbox], Awaitable[None]]) -> None:
    """Run `attempt` until it succeeds, fails for good or runs out of `destination.retries`;
    the last DeliveryError propagates (already redacted by the destination's mapping)."""
    from kpi_collector.collect.http import HttpClient
    from kpi_collector.collect.retry import retrying

    async with HttpClient() as client:
        outbox = Outbox(client)
        await retrying(lambda: attempt(outbox), retries=destination.retries)
