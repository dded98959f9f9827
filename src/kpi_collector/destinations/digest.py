"""The KPI digest: the text every message destination sends (Discord, Slack, email, webhook)
and `kpi report --out FILE.md` writes. Written once here, rendered per medium.

    KPIs — week 48, 2026
    **GitHub Stargazers**: 1,647 ⬆ 1.67%
    **PyPI downloads (day)**: 12,374 ⬇ 3.10%

North star first, thousands separators and units from `kpi_collector.format`, a marker and the
percent change against the stored value `compare` days earlier, failing sources at the end.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kpi_collector.format import format_value, marker, percent_change
from kpi_collector.secrets import redact

if TYPE_CHECKING:
    from kpi_collector.config.models import KpiSpec
    from kpi_collector.destinations.base import Delivery
    from kpi_collector.store import HistoryStore

DISCORD_LIMIT = 2000  # characters per Discord message
SLACK_SECTION_LIMIT = 3000  # characters per Block Kit section text
SLACK_HEADER_LIMIT = 150
SLACK_MAX_BLOCKS = 50
FAILURE_LIMIT = 300  # a failure's message is cut to this in messages


@dataclass(frozen=True, slots=True)
class DigestLine:
    """One KPI: its title, value and the change against the value `compare` days earlier."""

    kpi: str
    title: str
    value: float
    unit: str | None = None
    previous: float | None = None

    @property
    def value_text(self) -> str:
        return format_value(self.value, self.unit)

    @property
    def marker(self) -> str:
        return marker(self.value, self.previous)

    @property
    def percent(self) -> float | None:
        return percent_change(self.value, self.previous)

    @property
    def change_text(self) -> str:
        """ "⬆ 1.67%", "➡ 0.00%", "⬆" (from zero), or "" with nothing to compare."""
        if self.previous is None:
            return ""
        pct = self.percent
        return self.marker if pct is None else f"{self.marker} {abs(pct):.2f}%"

    def render(self, bold: str = "**") -> str:
        text = f"{bold}{self.title}{bold}: {self.value_text}"
        change = self.change_text
        return f"{text} {change}" if change else text


@dataclass(frozen=True)
class Digest:
    """A titled list of KPI lines plus the sources that failed."""

    title: str
    lines: list[DigestLine]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source or KPI, message)
    compare_days: int | None = None

    # building -------------------------------------------------------------------------------

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> Digest:
        lines = [
            DigestLine(
                kpi,
                delivery.title(kpi),
                delivery.values[kpi],
                delivery.unit(kpi),
                delivery.previous.get(kpi) if delivery.compare_days else None,
            )
            for kpi in delivery.ordered
        ]
        local = delivery.now.astimezone(delivery.tz)
        return cls(
            title=digest_title(delivery.every, delivery.period_start, local),
            lines=lines,
            failures=list(delivery.errors),
            compare_days=delivery.compare_days,
        )

    @classmethod
    def from_store(
        cls,
        store: HistoryStore,
        *,
        kpis: Mapping[str, KpiSpec] | None = None,
        order: Sequence[str] | None = None,
        north_star: str | None = None,
        period: str = "week",
        compare_days: int | None = 14,
        tz: ZoneInfo | str = "UTC",
        now: datetime | None = None,
    ) -> Digest:
        """The digest of the newest stored values (for `kpi report --out FILE.md`).

        `order` fixes the KPI order (default: north star, configured KPIs, then the rest); the
        failures are those of the newest run.
        """
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        moment = now or datetime.now(UTC)
        specs = dict(kpis or {})
        latest = store.latest(None, before=moment.timestamp())
        ids = list(order) if order is not None else rank_kpis(latest, specs, north_star)
        ids = [k for k in ids if k in latest]
        previous: dict[str, float] = {}
        if compare_days:
            before = moment.timestamp() - compare_days * 86400
            previous = {k: r.value for k, r in store.latest(ids, before=before).items()}
        runs = store.runs(1)
        failures = [(e.kpi or e.source, e.message) for e in (runs[0].errors if runs else [])]
        lines = [
            DigestLine(k, _title(k, specs), latest[k].value, _unit(k, specs), previous.get(k))
            for k in ids
        ]
        from kpi_collector.store.periods import period_start

        local = moment.astimezone(zone)
        start = period_start(local.date(), period) if period != "run" else local.date()
        return cls(digest_title(period, start, local), lines, failures, compare_days)

    # rendering ------------------------------------------------------------------------------

    @property
    def comparison(self) -> str:
        if not self.compare_days:
            return ""
        return f"Changes against {self.compare_days} days earlier."

    def failure_lines(self, limit: int | None = FAILURE_LIMIT) -> list[str]:
        out = []
        for where, message in self.failures:
            text = " ".join(redact(message).split())
            if limit is not None and len(text) > limit:
                text = text[: limit - 1] + "…"
            out.append(f"{where}: {text}")
        return out

    def text(self) -> str:
        """Plain text (email text part, Slack fallback)."""
        parts = [self.title, "", *(line.render(bold="") for line in self.lines)]
        if not self.lines:
            parts.append("No values this time.")
        if self.failures:
            parts += ["", "Failing sources:", *(f"- {f}" for f in self.failure_lines())]
        if self.comparison:
            parts += ["", self.comparison]
        return "\n".join(parts)

    def markdown(self) -> str:
        """A Markdown document: heading, a bullet per KPI, failing sources."""
        parts = [f"# {self.title}", ""]
        parts += [f"- {line.render()}" for line in self.lines] or ["No values this time."]
        if self.failures:
            parts += ["", "## Failing sources", ""]
            parts += [f"- {_md_escape(f)}" for f in self.failure_lines(limit=None)]
        if self.comparison:
            parts += ["", f"_{self.comparison}_"]
        return "\n".join(parts) + "\n"

    def discord_messages(self, limit: int = DISCORD_LIMIT) -> list[str]:
        """The Discord message: bold title, one line per KPI, failures; split to `limit` chars."""
        lines = [f"**{self.title}**", *(line.render() for line in self.lines)]
        if self.failures:
            lines += [
                "",
                "⚠️ **Failing sources**",
                *(f"- {_md_escape(f)}" for f in self.failure_lines()),
            ]
        return split_lines(lines, limit)

    def slack_text(self) -> str:
        """The notification / fallback text of a Slack message (mrkdwn)."""
        lines = [f"*{_slack_escape(self.title)}*"]
        lines += [_slack_escape(line.render(bold="*")) for line in self.lines]
        if self.failures:
            lines += [
                "",
                "Failing sources:",
                *(f"• {_slack_escape(f)}" for f in self.failure_lines()),
            ]
        return "\n".join(lines)

    def slack_blocks(self) -> list[dict[str, Any]]:
        """Block Kit: a header, the KPI lines in sections (≤ 3000 chars each), failures, context."""
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _cut(self.title, SLACK_HEADER_LIMIT),
                    "emoji": True,
                },
            }
        ]
        kpi_lines = [_slack_escape(line.render(bold="*")) for line in self.lines] or [
            "No values this time."
        ]
        for chunk in split_lines(kpi_lines, SLACK_SECTION_LIMIT):
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
        if self.failures:
            failures = [
                "*Failing sources*",
                *(f"• {_slack_escape(f)}" for f in self.failure_lines()),
            ]
            blocks.append({"type": "divider"})
            for chunk in split_lines(failures, SLACK_SECTION_LIMIT):
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
        if self.comparison:
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": self.comparison}]}
            )
        if len(blocks) > SLACK_MAX_BLOCKS:  # keep the header, the first sections and say so
            blocks = [
                *blocks[: SLACK_MAX_BLOCKS - 1],
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": "(cut: too many KPIs)"}],
                },
            ]
        return blocks

    def html(self) -> str:
        """A small HTML document with inline styles (the email's HTML part)."""
        rows = []
        for line in self.lines:
            colour = {"⬆": "#1a7f37", "⬇": "#cf222e"}.get(line.marker, "#57606a")
            rows.append(
                "<tr>"
                f'<td style="padding:4px 12px 4px 0"><b>{html.escape(line.title)}</b></td>'
                f'<td style="padding:4px 12px;text-align:right">{html.escape(line.value_text)}</td>'
                f'<td style="padding:4px 0 4px 12px;color:{colour}">{html.escape(line.change_text)}</td>'
                "</tr>"
            )
        body = [f'<h2 style="margin:0 0 12px">{html.escape(self.title)}</h2>']
        if rows:
            body.append('<table style="border-collapse:collapse">' + "".join(rows) + "</table>")
        else:
            body.append("<p>No values this time.</p>")
        if self.failures:
            items = "".join(f"<li>{html.escape(f)}</li>" for f in self.failure_lines())
            body.append(f'<h3 style="margin:16px 0 4px">Failing sources</h3><ul>{items}</ul>')
        if self.comparison:
            body.append(
                f'<p style="color:#57606a;font-size:12px">{html.escape(self.comparison)}</p>'
            )
        return (
            '<!doctype html><html><body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,'
            'sans-serif;font-size:14px">' + "".join(body) + "</body></html>"
        )


def digest_title(every: str, start: date, local: datetime) -> str:
    """ "KPIs — week 48, 2026", "KPIs — 29 November 2026", "KPIs — November 2026"."""
    if every == "week":
        year, week, _ = start.isocalendar()
        return f"KPIs — week {week}, {year}"
    if every == "month":
        return f"KPIs — {start:%B %Y}"
    if every == "day":
        return f"KPIs — {start.day} {start:%B %Y}"
    return f"KPIs — {local.day} {local:%B %Y, %H:%M}"


def rank_kpis(ids: Iterable[str], kpis: Mapping[str, Any], north_star: str | None) -> list[str]:
    """KPI ids in display order, for a digest built without a config."""
    from kpi_collector.config.models import display_order

    return display_order(ids, kpis=kpis, north_star=north_star)


def split_lines(lines: Sequence[str], limit: int) -> list[str]:
    """Join lines into texts of at most `limit` characters, breaking only between lines
    (a single longer line is cut)."""
    texts: list[str] = []
    current = ""
    for raw in lines:
        line = _cut(raw, limit)
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


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _title(kpi: str, specs: Mapping[str, KpiSpec]) -> str:
    spec = specs.get(kpi)
    return spec.title if spec is not None and spec.title else kpi


def _unit(kpi: str, specs: Mapping[str, KpiSpec]) -> str | None:
    spec = specs.get(kpi)
    return spec.unit if spec is not None else None


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_escape(text: str) -> str:
    # a failure message is user data: keep it from turning into mentions, links or markup
    return text.replace("@", "@\u200b").replace("`", "'").replace("*", "\\*").replace("_", "\\_")
