"""The dashboard's and the report's HTML, rendered on the server from the documents of `data.py`.

Every text goes through `html.escape` (titles, units, errors: a KPI titled
`<script>alert(1)</script>` shows as text). Data for the charts travels as JSON inside
`<script type="application/json">` with `<`, `>` and `&` escaped. Sparklines and target
bars are inline SVG, so the overview needs no script at all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from kpi_collector.destinations.text import isolate
from kpi_collector.format import plural

if TYPE_CHECKING:
    from kpi_collector.report.data import (
        HealthDoc,
        NoteDoc,
        OverviewDoc,
        RunDoc,
        RunsDoc,
        SeriesDoc,
        SourceStatusDoc,
        Tile,
    )

STATIC = "kpi_collector.report"
FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%232563eb'/%3E%3Cpolyline points='2,12 6,8 9,10 14,3' "
    "fill='none' stroke='%23fff' stroke-width='2'/%3E%3C/svg%3E"
)
PERIOD_LABELS = {"day": "Day", "week": "Week", "month": "Month"}
RANGES = {  # label -> periods back per period type (None: all history)
    "day": [("30d", 30), ("90d", 90), ("1y", 365), ("3y", 3 * 365), ("all", None)],
    "week": [("13w", 13), ("26w", 26), ("1y", 52), ("3y", 156), ("all", None)],
    "month": [("12m", 12), ("2y", 24), ("3y", 36), ("5y", 60), ("all", None)],
}
#: after the value of a period not over yet (a sum so far), where it stands beside whole ones
SO_FAR = " (so far)"
DEFAULT_RANGE = {"day": "90d", "week": "1y", "month": "3y"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)


def bdi(text: str) -> str:
    """User text (a title, a group, a source's name, a note, an error) as HTML laid out on its
    own: escaped, in `<bdi>` (the HTML standard's element for text of unknown direction), so a
    Hebrew or Arabic text takes its own direction and never pulls the numbers or words beside
    it into its right-to-left run; its own bidi controls end with the element."""
    return f"<bdi>{escape(text)}</bdi>"


def asset(name: str) -> str:
    """A file shipped under report/static (text)."""
    return resources.files(STATIC).joinpath("static", name).read_text(encoding="utf-8")


def to_json(data: Any) -> str:
    """Compact JSON; NaN and infinities (which JSON cannot hold) become null."""
    try:
        return json.dumps(
            data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str
        )
    except ValueError:
        return json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), default=str)


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def json_script(element_id: str, data: Any) -> str:
    text = to_json(data)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script id="{escape(element_id)}" type="application/json">{text}</script>'


def layout(
    title: str,
    body: str,
    *,
    data: Any = None,
    nav: str = "",
    inline: bool = False,
    scripts: Sequence[str] = ("vendor/uplot/uPlot.iife.min.js", "kpi.js"),
    brand: str = "KPIs",
) -> str:
    """A whole page; `inline` puts styles and scripts into the file (the offline report);
    `brand`: the dashboard's title in the top bar."""
    styles = ("vendor/uplot/uPlot.min.css", "kpi.css")
    if inline:
        head = "".join(f"<style>{asset(s)}</style>" for s in styles)
        head = f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">' + head
        tail = "".join(
            "<script>" + asset(s).replace("</script", "<\\/script") + "</script>" for s in scripts
        )
    else:
        head = "".join(f'<link rel="stylesheet" href="/static/{s}">' for s in styles)
        head += f'<link rel="icon" href="{FAVICON}">'
        tail = "".join(f'<script src="/static/{s}" defer></script>' for s in scripts)
    payload = json_script("kpi-data", data) if data is not None else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title>{head}</head>"
        f'<body><header class="top"><a class="brand" href="/">{escape(brand)}</a>{nav}</header>'
        f"<main>{body}</main>{payload}{tail}</body></html>"
    )


def nav_links(active: str) -> str:
    links = [("overview", "/", "Overview"), ("runs", "/runs", "Runs")]
    current = ' aria-current="page"'
    items = "".join(
        f'<a href="{href}"{current if key == active else ""}>{label}</a>'
        for key, href, label in links
    )
    return f"<nav>{items}</nav>"


# pieces ---------------------------------------------------------------------------------------


def sparkline(
    values: Sequence[float | None],
    *,
    css: str = "spark",
    width: int = 120,
    height: int = 32,
    marks: Sequence[tuple[int, str]] = (),
) -> str:
    """An inline SVG line through the values (one per period, oldest left, None for a gap,
    where the line breaks; a value alone between gaps is a dot);
    `data-points` tells how many periods have a value; `marks` (period index, note text)
    are notes, drawn as thin vertical lines with the text as their tooltip."""
    known = [(i, float(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    n = len(known)
    slots = max(len(values) - 1, 1)
    pad = 2

    def x_of(i: int) -> float:
        return pad + (width - 2 * pad) * (i / slots if len(values) > 1 else 0.5)

    notes = "".join(
        f'<line class="note" x1="{x_of(i):.1f}" x2="{x_of(i):.1f}" y1="0" y2="{height}" '
        f'vector-effect="non-scaling-stroke"><title>{escape(text)}</title></line>'
        for i, text in marks
    )
    if n == 0:
        return (
            f'<svg class="{css} empty" viewBox="0 0 {width} {height}" data-points="0" '
            f'data-notes="{len(marks)}" aria-hidden="true">{notes}</svg>'
        )
    # halved (exact for doubles): a span past the largest double (-1e308 to 1e308) stays
    # finite instead of making every coordinate nan
    low = min(v for _, v in known) / 2
    high = max(v for _, v in known) / 2
    span = high - low or 1.0
    # a line per run of periods with values: a period without one is a gap, never bridged;
    # a value alone between gaps is a dot
    runs: list[list[tuple[float, float]]] = []
    last = -2
    for i, v in known:
        y = height - pad - (height - 2 * pad) * ((v / 2 - low) / span if high != low else 0.5)
        if i != last + 1:
            runs.append([])
        runs[-1].append((x_of(i), y))
        last = i
    shapes = "".join(
        (
            '<polyline points="{}" vector-effect="non-scaling-stroke"/>'.format(
                " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            )
            if len(run) > 1
            else f'<circle cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="1.5"/>'
        )
        for run in runs
    )
    return (
        f'<svg class="{css}" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'data-points="{n}" data-notes="{len(marks)}" role="img" '
        f'aria-label="trend over {len(values)} periods">{notes}{shapes}</svg>'
    )


def progress_bar(progress: float | None, target: float | None, unit: str | None) -> str:
    if progress is None or target is None:
        return ""
    from kpi_collector.format import format_value

    filled = max(0.0, min(progress, 1.0)) * 100
    # cut toward zero, never rounded away from it: 99.92% of a target is not "100%", a goal
    # met, and -0.5% not "-1%" (the 9 decimals first: 0.29 * 100 is 28.999999999999996)
    percent = progress * 100
    share = str(math.trunc(round(percent, 9))) if math.isfinite(percent) else f"{percent:.0f}"
    return (
        f'<div class="target"><svg class="bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
        f'<rect class="track" width="100" height="6" rx="3"/>'
        f'<rect class="fill" width="{filled:.1f}" height="6" rx="3"/></svg>'
        f"<span>{share}% of {escape(format_value(target, unit))}</span></div>"
    )


def when(stamp: str | None) -> str:
    """An ISO timestamp as people read it: 2026-11-29 07:00 (the zone is named on the page)."""
    if not stamp:
        return ""
    return stamp[:16].replace("T", " ")


def trend_class(change: float | None, higher_is_better: bool = True) -> str:
    """The CSS class of a change: "good", "bad" (by the KPI's direction) or "flat"."""
    if not change:
        return "flat"
    return "good" if (change > 0) == higher_is_better else "bad"


def note_marks(doc: OverviewDoc) -> list[tuple[int, str]]:
    """The overview's notes as (sparkline period index, "day: text"), for `sparkline`."""
    slot = {p: i for i, p in enumerate(doc["periods"])}
    return [
        (slot[n["at"]], f"{n['day']}: {isolate(n['text'])}")
        for n in doc["annotations"]
        if n.get("at") in slot
    ]


def tile_html(
    tile: Tile, *, star: bool = False, link: bool = True, marks: Sequence[tuple[int, str]] = ()
) -> str:
    """One KPI's tile: title, value, change against the period before, sparkline (with the
    notes' `marks`), target."""
    title = bdi(tile["title"])
    href = f"/kpi/{quote(tile['id'], safe='')}"
    heading = f'<a href="{href}">{title}</a>' if link else title
    change = escape(tile["change_text"])
    previous = tile["previous_period"]
    until = tile["previous_until"]
    part = f" up to {escape(same_part(previous, until))}" if previous and until else ""
    if previous and until and tile["previous"] is None:
        versus = f'<span class="muted">{escape(previous)} had no value{part}</span>'
    elif previous and change:
        versus = f' <span class="muted">vs {escape(previous)}{part}</span>'
    else:
        versus = ""
    status = tile["status"]
    why = tile["error"] or (f"newest value {when(tile['updated_at'])}" if status == "stale" else "")
    badge = (
        f' <span class="badge {status}" title="{escape(why)}">{status}</span>'
        if status in ("failing", "stale")
        else ""
    )
    problem = (
        f'<div class="tile-error" title="{escape(why)}">{bdi(why)}</div>' if tile["error"] else ""
    )
    spark = sparkline(
        tile["sparkline"],
        css="spark big" if star else "spark",
        width=300 if star else 120,
        height=60 if star else 32,
        marks=marks,
    )
    classes = ("tile star" if star else "tile") + (f" {status}" if badge else "")
    return (
        f'<article class="{classes}" data-kpi="{escape(tile["id"])}">'
        f'<h2 class="title">{heading}{badge}</h2>'
        f'<div class="value" data-value="{escape(repr(tile["value"]))}">{escape(tile["value_text"])}</div>'
        f'<div class="change {trend_class(tile["change"], tile["higher_is_better"])}">{change}{versus}</div>'
        f"{problem}{spark}{progress_bar(tile['progress'], tile['target'], tile['unit'])}"
        f'<div class="kpi-id muted">{breakable(tile["id"])}</div></article>'
    )


def same_part(previous: str, until: str) -> str:
    """Where the part of the period `previous` (an ISO date) compared with ends (`until`, an
    ISO time): "14:30" on its first day, else "2026-03-24 14:30"."""
    shown = when(until)
    return shown[11:] if shown.startswith(previous) else shown


def breakable(kpi_id: str) -> str:
    """`kpi_id` as HTML that a narrow tile wraps after a `.`, `_`, `-` or `/` (a `<wbr>`
    there), never inside a word: `github.<wbr>stars`."""
    return re.sub(r"([._/-])", r"\1<wbr>", escape(kpi_id))


def period_switch(current: str, base: str, ranges: dict[str, str] | None = None) -> str:
    """Day / Week / Month links to `base`; `ranges`: each period's range to link with."""
    out = []
    for key, label in PERIOD_LABELS.items():
        query = urlencode({"period": key, **({"range": ranges[key]} if ranges else {})})
        attr = ' aria-current="true"' if key == current else ""
        out.append(f'<a class="seg" data-period="{key}" href="{base}?{query}"{attr}>{label}</a>')
    return f'<div class="segmented" role="group" aria-label="period">{"".join(out)}</div>'


def run_line(run: RunDoc | None) -> str:
    if run is None:
        return '<p class="muted">No run yet: <code>kpi run</code> collects the first values.</p>'
    duration = f" in {run['duration']:.1f} s" if run["duration"] is not None else ""
    return (
        f'<p class="lastrun">Last run <a href="/runs">#{run["id"]}</a> '
        f'<span class="status {escape(run["status"])}">{escape(run["status"])}</span> '
        f"<time>{escape(when(run['started_at']))}</time>{duration}, "
        f"{plural(run['n_values'], 'value')}, {plural(run['n_errors'], 'error')}</p>"
    )


def sources_html(sources: Iterable[SourceStatusDoc]) -> str:
    rows = [s for s in sources if s["status"] not in ("ok", "disabled")]
    if not rows:
        return ""
    items = "".join(
        f'<li><span class="status {escape(s["status"].replace(" ", "-"))}">{escape(s["status"])}</span> '
        f"<strong>{bdi(s['name'])}</strong>"
        f"{' — ' + bdi(s['error']) if s['error'] else ''}"
        f"{' (newest value ' + escape(when(s['updated_at'])) + ')' if s['updated_at'] and not s['error'] else ''}"
        "</li>"
        for s in rows
    )
    return f'<section class="sources"><h2>Sources needing attention</h2><ul>{items}</ul></section>'


def health_html(health: HealthDoc | None) -> str:
    """The scheduler's state, then problems, active alerts, silences and warnings (when there
    are any)."""
    if health is None:
        return ""
    daemon = health["scheduler"]
    if daemon is None:
        line = "Scheduler: not started on this store (runs by cron or by hand)"
    else:
        upcoming = f", next run {when(daemon['next_run_at'])}" if daemon["next_run_at"] else ""
        line = f"Scheduler: {daemon['state']}, last heartbeat {when(daemon['beat_at'])}{upcoming}"
    running = health["run_in_progress"]
    if running is not None:
        line += f"; a run is in progress since {when(running['started_at'])}"
    items = [f'<li class="problem">{escape(p)}</li>' for p in health["problems"]]
    items += [
        f'<li class="alert">alert since {escape(when(a["since"]))}: {escape(a["message"])}</li>'
        for a in health["alerts"]
        if a["firing"]
    ]
    # true, but its `for:` has not passed: told to nobody yet (as `kpi validate --health`)
    items += [
        f'<li class="warning">alert pending since {escape(when(a["since"]))} (its '
        f"<code>for:</code> has not passed): {escape(a['message'])}</li>"
        for a in health["alerts"]
        if not a["firing"]
    ]
    items += [
        f'<li class="silence">silenced until {escape(when(s["until"]))}: {escape(s["alert"])}</li>'
        for s in health["silences"]
    ]
    items += [
        f'<li class="warning">{escape(w)}</li>'
        for w in health["warnings"]
        if not w.startswith("alert ")
    ]
    items += [
        f'<li class="info">job {escape(j["job"])} has not run yet'
        + (f"; first due {escape(when(j['next_fire']))}" if j["next_fire"] else "")
        + "</li>"
        for j in health["jobs"]
        if j["not_run_yet"]
    ]
    listing = f"<ul>{''.join(items)}</ul>" if items else ""
    state = "ok" if health["ok"] else "problems"
    return f'<section class="health {state}"><p class="muted">{escape(line)}</p>{listing}</section>'


# pages ----------------------------------------------------------------------------------------


def overview_page(doc: OverviewDoc) -> str:
    """The overview: the north star's tile, then every other KPI's, with health and sources."""
    tiles = doc["kpis"]
    star_id = doc["north_star"]
    star = next((t for t in tiles if t["id"] == star_id), None)
    rest = [t for t in tiles if t is not star]
    marks = note_marks(doc)
    period = doc["period"]
    downloads = (
        f'<span class="downloads">Download <a class="csv" id="overview-csv" '
        f'href="/api/kpis.csv?period={period}" download="kpis-{period}.csv">CSV</a> · '
        f'<a class="csv" id="overview-json" href="/api/kpis?period={period}" '
        f'download="kpis-{period}.json">JSON</a></span>'
    )
    body = [
        '<div class="bar-line">',
        period_switch(period, "/"),
        run_line(doc["last_run"]),
        downloads,
        "</div>",
        health_html(doc["health"]),
        sources_html(doc["sources"]),
    ]
    if star is not None:
        body.append(
            '<section class="northstar" aria-label="north star">'
            f"{tile_html(star, star=True, marks=marks)}</section>"
        )
    by_id = {t["id"]: t for t in rest if not t["hidden"]}
    if not tiles:
        body.append(
            '<p class="empty">No KPIs yet: add sources to <code>kpi.yaml</code> '
            "(<code>kpi validate</code> lists their KPIs), run <code>kpi run</code>, then reload.</p>"
        )
    elif all(t["value"] is None for t in tiles):
        body.append(
            '<section class="empty getting-started"><p><strong>No values yet.</strong> '
            "<code>kpi run</code> collects the first ones (<code>kpi backfill</code> imports "
            "past values from sources that can give them); <code>kpi schedule</code> keeps "
            "collecting on the config's schedule. Reload this page afterwards.</p></section>"
        )
    named = any(section["group"] for section in doc["sections"])
    for section in doc["sections"]:
        shown = [by_id[k] for k in section["kpis"] if k in by_id]
        if not shown:
            continue
        group = section["group"] or "Other"
        heading = f'<h2 class="group">{bdi(group)}</h2>' if named else ""
        label = f' aria-label="{escape(group)}"' if named else ""
        body.append(
            f'<section class="group-section"{label}>{heading}'
            f'<div class="grid">{"".join(tile_html(t, marks=marks) for t in shown)}</div></section>'
        )
    body.append(
        f'<p class="muted foot">Per {escape(doc["period"])} in {escape(doc["timezone"])}; '
        f"generated {escape(when(doc['generated_at']))}.</p>"
    )
    return layout(
        doc["title"], "".join(body), nav=nav_links("overview"), scripts=(), brand=doc["title"]
    )


def series_table(doc: SeriesDoc) -> str:
    """The values of a series, newest first, beside the window before and a year earlier."""
    prev = {p.get("at"): p for p in doc["previous"]}
    year = {p.get("at"): p for p in doc["year_ago"]}
    rows = []
    for p in reversed(doc["points"]):
        pp, yp = prev.get(p["period"]), year.get(p["period"])
        text = p["text"] + (SO_FAR if p.get("partial") else "")
        rows.append(
            f"<tr><td>{escape(p['period'])}</td><td class=num>{escape(text)}</td>"
            f"<td class=num>{escape(pp['text']) if pp else ''}</td>"
            f"<td class=num>{escape(yp['text']) if yp else ''}</td></tr>"
        )
    return (
        '<div class="scroll"><table class="values"><thead><tr><th>period</th><th class=num>value</th>'
        "<th class=num>previous window</th><th class=num>a year earlier</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def notes_list(notes: Sequence[NoteDoc], *, element_id: str = "notes") -> str:
    """The notes, newest first: `<li><time>2026-11-20</time> v1.0 released</li>`."""
    items = "".join(
        f"<li><time>{escape(n['day'])}</time> {bdi(n['text'])}</li>" for n in reversed(notes)
    )
    hidden = "" if notes else " hidden"
    return f'<ul id="{element_id}" class="notes" aria-label="notes"{hidden}>{items}</ul>'


def annotate_form(today: str) -> str:
    """The small form that stores a note (`POST /api/annotations`, sent by kpi.js)."""
    return (
        '<form id="annotate" class="annotate" aria-label="add a note">'
        f'<input type="date" name="day" value="{escape(today)}" required aria-label="day">'
        '<input type="text" name="text" maxlength="200" required '
        'placeholder="A note for the charts, e.g. v1.0 released" aria-label="note">'
        '<button type="submit">Add note</button>'
        '<span id="annotate-status" class="muted" role="status"></span></form>'
    )


def kpi_page(
    doc: SeriesDoc,
    tile: Tile | None,
    range_key: str,
    *,
    brand: str = "KPIs",
    annotate_today: str | None = None,
    marks: Sequence[tuple[int, str]] = (),
) -> str:
    """A KPI's page: its tile, the chart over `range_key` (30d, 1y, all, ...) with the notes,
    the table; `annotate_today` (when writing is allowed): the note form, dated that day."""
    kpi = doc["id"]
    base = f"/kpi/{quote(kpi, safe='')}"
    current = ' aria-current="true"'
    ranges = "".join(
        f'<a class="seg" data-range="{key}" href="{base}?{urlencode({"period": doc["period"], "range": key})}"'
        f"{current if key == range_key else ''}>{key}</a>"
        for key, _ in RANGES[doc["period"]]
    )
    csv_query = urlencode(
        {"period": doc["period"], **({"since": doc["since"]} if doc["since"] else {})}
    )
    head = tile_html(tile, star=True, link=False, marks=marks) if tile else ""
    empty_chart = (
        '<p class="empty">No values in this range: choose a longer one (or all).</p>'
        if tile is not None and tile["value"] is not None
        else f'<p class="empty">No values for {bdi(doc["title"])} yet: <code>kpi run</code> '
        "collects the first one; <code>kpi backfill</code> imports past values where its "
        "source can give them.</p>"
    )
    description = (
        f'<p class="description">{bdi(doc["description"])}</p>' if doc["description"] else ""
    )
    body = (
        f'<p class="crumbs"><a href="/">Overview</a> / <span>{bdi(doc["title"])}</span></p>'
        f'<section class="northstar">{head}</section>{description}'
        f'<div class="bar-line">{period_switch(doc["period"], base, DEFAULT_RANGE)}'
        f'<div class="segmented" role="group" aria-label="range" id="ranges">{ranges}</div>'
        '<label class="check"><input type="checkbox" id="cmp-prev" checked> previous window</label>'
        '<label class="check"><input type="checkbox" id="cmp-year" checked> a year earlier</label>'
        f'<a class="csv" id="csv" href="/api/kpis/{quote(kpi, safe="")}/series.csv?{csv_query}" download>CSV</a>'
        "</div>"
        '<p id="loading" class="loading" role="status" hidden>Loading…</p>'
        f'<div id="chart" class="chart" data-kpi="{escape(kpi)}" aria-label="chart of {escape(doc["title"])}">'
        f"{empty_chart if not doc['points'] else ''}</div>"
        f"{notes_list(doc['annotations'])}"
        f"{annotate_form(annotate_today) if annotate_today else ''}"
        f'<div id="table">{series_table(doc)}</div>'
    )
    has_history = tile is not None and tile["value"] is not None
    payload = {
        "series": doc,
        "range": range_key,
        "ranges": RANGES,
        "default_range": DEFAULT_RANGE,
        "has_history": has_history,
    }
    return layout(f"{doc['title']} · {brand}", body, data=payload, nav=nav_links(""), brand=brand)


def runs_page(doc: RunsDoc, *, brand: str = "KPIs") -> str:
    """The runs page: the newest runs with their errors, then the pending deliveries."""
    rows = []
    for run in doc["runs"]:
        errors = "".join(
            f"<li><strong>{bdi(e['kpi'] or e['source'])}</strong>: {bdi(e['message'])}</li>"
            for e in run["errors"]
        )
        duration = f"{run['duration']:.1f} s" if run["duration"] is not None else ""
        rows.append(
            f'<tr data-run="{run["id"]}"><td>#{run["id"]}</td><td><time>{escape(when(run["started_at"]))}</time></td>'
            f"<td class=num>{duration}</td>"
            f'<td><span class="status {escape(run["status"])}">{escape(run["status"])}</span></td>'
            f"<td>{escape(run['trigger'])}</td><td class=num>{run['n_values']}</td>"
            f"<td>{f'<ul class=errors>{errors}</ul>' if errors else ''}</td></tr>"
        )
    runs = (
        '<div class="scroll"><table class="runs"><thead><tr><th>run</th><th>started</th><th class=num>duration</th>'
        "<th>status</th><th>trigger</th><th class=num>values</th><th>errors per source</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if rows
        else '<p class="empty">No runs yet: <code>kpi run</code> collects the first values, '
        "<code>kpi schedule</code> runs on the config's schedule.</p>"
    )
    pending = doc["deliveries"]
    if pending:
        items = "".join(
            f"<tr><td>{bdi(d['destination'])}</td><td>{escape(d['period'])}</td>"
            f"<td>{escape(d['status'])}{escape(f' ({sent})' if (sent := d.get('parts_sent')) else '')}</td>"
            f"<td class=num>{d['attempts']}</td>"
            f"<td>{escape(d['last_error'] or '')}</td><td><time>{escape(when(d['updated_at']))}</time></td></tr>"
            for d in pending
        )
        deliveries = (
            '<div class="scroll"><table class="deliveries"><thead><tr><th>destination</th><th>period</th><th>status</th>'
            f"<th class=num>attempts</th><th>last error</th><th>updated</th></tr></thead><tbody>{items}</tbody></table></div>"
        )
    else:
        deliveries = '<p class="muted">No delivery is pending.</p>'
    body = f"<h1>Runs</h1>{runs}<h2>Pending and failed deliveries</h2>{deliveries}"
    return layout(f"Runs · {brand}", body, nav=nav_links("runs"), scripts=(), brand=brand)


def message_page(title: str, text: str, *, brand: str = "KPIs") -> str:
    return layout(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>", scripts=(), brand=brand)
