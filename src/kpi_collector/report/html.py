"""`kpi report --out FILE.html`: one self-contained HTML file (data, charts, styles inline) that
opens offline and can be attached to an email; `--out FILE.md` writes the text digest.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from kpi_collector.format import format_change, plural

if TYPE_CHECKING:
    from kpi_collector.config import Config
    from kpi_collector.destinations.digest import Digest

#: how many periods each chart of the report covers
CHART_PERIODS = {"day": 90, "week": 26, "month": 24}


#: the longest comparison `--compare` takes: a hundred years (further back overflows dates)
MAX_COMPARE_DAYS = 36600


def parse_compare(compare: str | int | None) -> int | None:
    """'14d' -> 14; None or '0d' -> None (no comparison). ValueError for anything else, a
    negative number or more than MAX_COMPARE_DAYS days."""
    if compare is None:
        return None
    if isinstance(compare, int):
        days = compare
    else:
        text = compare.strip().lower()
        if not text.endswith("d") or not (text[:-1].isascii() and text[:-1].isdigit()):
            raise ValueError(f"compare {compare!r} is not a number of days like 14d")
        days = int(text[:-1])
    if days < 0:
        raise ValueError(f"compare {compare!r} is not a number of days like 14d")
    if days > MAX_COMPARE_DAYS:
        raise ValueError(
            f"compare {compare!r} reaches back more than a hundred years; "
            f"use at most {MAX_COMPARE_DAYS}d"
        )
    return days or None


def _config(config: Config | str | os.PathLike[str]) -> Config:
    from kpi_collector.config import Config, load_config

    return config if isinstance(config, Config) else load_config(config)


def _digest(config: Config, period: str, compare_days: int | None, now: datetime | None) -> Digest:
    from kpi_collector.destinations.digest import Digest
    from kpi_collector.store import HistoryStore

    store = HistoryStore(config.store_url)
    try:
        return Digest.from_store(
            store,
            kpis=config.kpis,
            north_star=config.settings.north_star,
            order=config.order(store.kpi_ids()),
            period=period,
            compare_days=compare_days,
            tz=config.tz,
            now=now,
            sources=[s.name for s in config.sources if s.enabled],
        )
    finally:
        store.close()


def render_markdown(
    config: Config | str | os.PathLike[str],
    *,
    period: str = "week",
    compare: str | int | None = "14d",
    now: datetime | None = None,
) -> str:
    """The Markdown digest, the same text the message destinations send."""
    from kpi_collector.report.markdown import digest_markdown

    return digest_markdown(_digest(_config(config), period, parse_compare(compare), now))


def render_html(
    config: Config | str | os.PathLike[str],
    *,
    period: str = "week",
    compare: str | int | None = "14d",
    now: datetime | None = None,
) -> str:
    """The HTML report: a table of every KPI against `compare` days earlier, a chart per KPI."""
    from kpi_collector.report import pages
    from kpi_collector.report.data import DashboardData, shift_periods

    cfg = _config(config)
    compare_days = parse_compare(compare)
    moment = now or datetime.now(UTC)
    digest = _digest(cfg, period, compare_days, moment)
    data = DashboardData(cfg, clock=moment.timestamp)
    try:
        today = moment.astimezone(cfg.tz).date()
        since = shift_periods(today, period, CHART_PERIODS[period] - 1)
        blocks = [data.series(line.kpi, period, since) for line in digest.lines]
        specs = {line.kpi: data.spec(line.kpi) for line in digest.lines}
        notes = data.notes(since, today)
    finally:
        data.close()
    rows = []
    heading_of = _headings(digest)
    for line in digest.lines:
        if line.kpi in heading_of:
            rows.append(
                f'<tr class="group"><th colspan="4">{pages.bdi(heading_of[line.kpi])}</th></tr>'
            )
        spec = specs[line.kpi]
        change = format_change(line.value, line.previous, line.unit) if compare_days else ""
        change_by = None if line.previous is None else line.value - line.previous
        trend = pages.trend_class(change_by, spec["higher_is_better"])
        target = spec["target"]
        progress = pages.progress_bar(line.value / target, target, line.unit) if target else ""
        rows.append(
            f'<tr data-kpi="{escape(line.kpi)}"><td>{pages.bdi(line.title)}</td>'
            f"<td class=num>{escape(line.formatted)}</td>"
            f'<td class="num change {trend}">{escape(change)}</td><td>{progress}</td></tr>'
        )
    failures = "".join(f"<li>{escape(e.text(limit=None))}</li>" for e in digest.errors)
    charts = "".join(
        (
            f'<h2 class="group">{pages.bdi(heading_of[block["id"]])}</h2>'
            if block["id"] in heading_of
            else ""
        )
        + f'<section class="kpi-block"><h2>{pages.bdi(block["title"])}</h2>'
        f'<div class="chart" data-index="{i}" aria-label="chart of {escape(block["title"])}"></div></section>'
        for i, block in enumerate(blocks)
    )
    notes_html = (
        '<section class="report-notes"><h2>Notes</h2>'
        + pages.notes_list(notes, element_id="report-notes")
        + "</section>"
        if notes
        else ""
    )
    comparison = f"Changes against {plural(compare_days, 'day')} earlier. " if compare_days else ""
    local = moment.astimezone(cfg.tz)
    body = (
        f'<div class="report"><div class="report-head"><h1>{escape(digest.title)}</h1>'
        f'<span class="muted">generated {escape(local.strftime("%Y-%m-%d %H:%M"))} ({escape(cfg.timezone)})</span>'
        "</div>"
        + (
            '<div class="scroll"><table class="summary"><thead><tr><th>KPI</th><th class=num>value</th>'
            "<th class=num>change</th><th>target</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            if rows
            else '<p class="empty">No values stored yet: run <code>kpi run</code> (or '
            "<code>kpi backfill</code>), then write the report again.</p>"
        )
        + (
            f'<section class="sources"><h2>Failing sources</h2><ul>{failures}</ul></section>'
            if failures
            else ""
        )
        + notes_html
        + f'<p class="muted">{escape(comparison)}Charts per {escape(period)}: the line is the last '
        f"{CHART_PERIODS[period]} {escape(period)}s, dashed the window before, dotted a year earlier"
        + ("; notes are the purple marks" if notes else "")
        + ".</p>"
        + charts
        + "</div>"
    )
    brand = escape(cfg.title)
    html = pages.layout(digest.title, body, data={"blocks": blocks}, inline=True, brand=cfg.title)
    return html.replace(
        f'<a class="brand" href="/">{brand}</a>', f'<span class="brand">{brand}</span>'
    )


def _headings(digest: Digest) -> dict[str, str]:
    """{first KPI of a group: the group's heading}, when the digest has groups."""
    if not digest.grouped:
        return {}
    return {lines[0].kpi: group or "Other" for group, lines in digest.sections()}


def write_report(
    config_path: Config | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    period: str = "week",
    compare: str | int | None = "14d",
    now: datetime | None = None,
) -> Path:
    """Write the report to `out`: HTML for .html/.htm, the Markdown digest for .md."""
    target = Path(out)
    suffix = target.suffix.lower()
    if suffix in (".html", ".htm"):
        text = render_html(config_path, period=period, compare=compare, now=now)
    elif suffix in (".md", ".markdown"):
        text = render_markdown(config_path, period=period, compare=compare, now=now)
    else:
        raise ValueError(f"{target.name}: the report is written as .html or .md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
