"""The KPI digest: what every message destination sends (Discord, Slack, email, webhook) and
`kpi report --out FILE.md` writes, as data. Built once here from a delivery or the store;
each medium renders its own text from it (`destinations/<type>/`, `report/markdown.py`) with
the shared helpers of `destinations/text.py`.

    Digest(title="KPIs — week 48, 2026", period="week", period_start=date(2026, 11, 23),
           lines=[DigestLine("github.stars", "GitHub Stargazers", 1647.0, None, 1620.0)],
           errors=[DigestError("podcast", "login refused ...")], compare_days=14)

North star first; the value formatted with thousands separators and its unit by
`kpi_collector.format`; the direction and the percent change against the stored value
`compare` days earlier; the sources that failed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from kpi_collector.format import format_value, percent_change
from kpi_collector.secrets import redact

if TYPE_CHECKING:
    from kpi_collector.config.models import KpiSpec
    from kpi_collector.destinations.base import Delivery
    from kpi_collector.store import HistoryStore

FAILURE_LIMIT = 300  # a failure's message is cut to this many characters in messages
NO_VALUES = "No values this time."

Direction = Literal["up", "down", "flat"]
#: the units of a share (0.12 as `ratio`, 12 as `%`): their change is in percentage points
SHARE_UNITS = ("ratio", "%")
#: the marker every medium shows for a direction
MARKERS: dict[Direction, str] = {"up": "⬆", "down": "⬇", "flat": "➡"}


@dataclass(frozen=True, slots=True)
class DigestLine:
    """One KPI: its id, title and value, and the change against the value `compare` days
    earlier. `formatted`, `change_percent` and `direction` are derived from the others; the
    title (and group) is kept on one line: its line breaks and tabs become spaces."""

    kpi: str
    title: str
    value: float
    unit: str | None = None
    previous: float | None = None  # None: nothing to compare with
    group: str | None = None  # its `group:` (a heading in messages and reports)
    higher_is_better: bool = True  # its `higher_is_better:` (which way a change is good)
    #: the value as people read it: "1,647", "$1,200", "59.5%"
    formatted: str = field(init=False)
    #: the relative change in percent; None without a previous value, from 0, or past any float
    change_percent: float | None = field(init=False)
    #: None without a previous value
    direction: Direction | None = field(init=False)

    def __post_init__(self) -> None:
        # on one line in every medium: a line break in a title would end the KPI's line there
        object.__setattr__(self, "title", " ".join(self.title.split()) or self.kpi)
        if self.group is not None:
            object.__setattr__(self, "group", " ".join(self.group.split()) or None)
        object.__setattr__(self, "formatted", format_value(self.value, self.unit))
        change = percent_change(self.value, self.previous)
        # past any float (1e300 against 1e-300): no percent, never `inf` in a message or JSON
        finite = change is not None and math.isfinite(change)
        object.__setattr__(self, "change_percent", change if finite else None)
        direction: Direction | None = None
        if self.previous is not None:
            up, down = self.value > self.previous, self.value < self.previous
            direction = "up" if up else "down" if down else "flat"
        object.__setattr__(self, "direction", direction)

    @property
    def trend(self) -> Literal["good", "bad"] | None:
        """Whether the change went the KPI's good way; None when flat or nothing to compare."""
        if self.direction in (None, "flat"):
            return None
        return "good" if (self.direction == "up") == self.higher_is_better else "bad"

    @property
    def marker(self) -> str:
        """ "⬆", "⬇", "➡", or "" with nothing to compare."""
        return MARKERS[self.direction] if self.direction is not None else ""

    @property
    def change_text(self) -> str:
        """ "⬆ 1.67%", "➡ 0.00%", "⬆" (from zero), or "" with nothing to compare; a share
        (unit `ratio` or `%`) in percentage points first: "⬆ 2 pp (20.00%)", never a bare
        20% that reads as the share's own change."""
        if self.direction is None or self.previous is None:
            return ""
        pct = self.change_percent
        relative = None if pct is None else f"{abs(pct):.2f}%"
        if self.unit in SHARE_UNITS:
            scale = 100.0 if self.unit == "ratio" else 1.0
            points = round(abs(self.value - self.previous) * scale, 10)
            text = f"{self.marker} {format_value(points)} pp"
            return text if relative is None else f"{text} ({relative})"
        return self.marker if relative is None else f"{self.marker} {relative}"


@dataclass(frozen=True, slots=True)
class DigestError:
    """A source (or KPI) that failed in the run, and its message as recorded."""

    where: str
    message: str

    def text(self, limit: int | None = FAILURE_LIMIT) -> str:
        """ "podcast: login refused ...": secrets redacted, on one line, cut to `limit`
        characters of message (None: whole); each part `isolate`d (right-to-left text)."""
        from kpi_collector.destinations.text import cut, isolate

        message = " ".join(redact(self.message).split())
        message = message if limit is None else cut(message, limit)
        return f"{isolate(self.where)}: {isolate(message)}"


@dataclass(frozen=True)
class Digest:
    """A titled list of KPI lines for one period, plus the sources that failed."""

    title: str
    period: str  # run | day | week | month
    period_start: date  # the period's first day (the run's day for `run`), local time
    lines: list[DigestLine]
    errors: list[DigestError] = field(default_factory=list)
    compare_days: int | None = None
    #: dated notes (`kpi annotate`) of the period and the comparison window, oldest first
    notes: list[tuple[date, str]] = field(default_factory=list)

    # building -------------------------------------------------------------------------------

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> Digest:
        """The digest of what a destination gets delivered."""
        lines = [
            DigestLine(
                kpi,
                delivery.title(kpi),
                delivery.values[kpi],
                delivery.unit(kpi),
                delivery.previous.get(kpi) if delivery.compare_days else None,
                _group(kpi, delivery.kpis),
                _higher_is_better(kpi, delivery.kpis),
            )
            for kpi in in_groups(delivery.ordered, delivery.kpis)
        ]
        local = delivery.now.astimezone(delivery.tz)
        return cls(
            title=digest_title(delivery.every, delivery.period_start, local),
            period=delivery.every,
            period_start=delivery.period_start,
            lines=lines,
            errors=[DigestError(where, message) for where, message in delivery.errors],
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
        sources: Sequence[str] | None = None,
    ) -> Digest:
        """The digest of the newest stored values (for `kpi report --out FILE.md`).

        `order` fixes the KPI order (default: north star, configured KPIs, then the rest), then
        the lines go by `group:`; the failures are those of the newest run, then those of each
        of `sources` (default: those of the stored KPIs) whose newest run that included it
        failed (a run of other sources since does not clear it); the notes those from
        `compare_days` before the period's start to today.
        """
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        moment = now or datetime.now(UTC)
        specs = dict(kpis or {})
        latest = store.latest(None, before=moment.timestamp())
        ids = list(order) if order is not None else rank_kpis(latest, specs, north_star)
        ids = [k for k in ids if k in latest]
        previous: dict[str, float] = {}
        if compare_days:
            stamps = {k: latest[k].ts for k in ids}
            previous = compared_values(store, ids, moment, compare_days, zone, at=stamps)
        runs = store.runs(1)
        newest_errors = runs[0].errors if runs else []
        errors = [DigestError(e.kpi or e.source, e.message) for e in newest_errors]
        from kpi_collector.store.runs import failing_streaks

        named = {e.source for e in newest_errors}
        names = list(sources) if sources is not None else sorted({k.split(".")[0] for k in latest})
        for name, (streak, message) in failing_streaks(store, names, depth=1).items():
            if streak and message and name not in named:
                errors.append(DigestError(name, message))
        lines = [
            DigestLine(
                k,
                _title(k, specs),
                latest[k].value,
                _unit(k, specs),
                previous.get(k),
                _group(k, specs),
                _higher_is_better(k, specs),
            )
            for k in in_groups(ids, specs)
        ]
        from kpi_collector.store.annotations import list_annotations
        from kpi_collector.store.periods import period_start

        local = moment.astimezone(zone)
        start = period_start(local.date(), period) if period != "run" else local.date()
        first = start - timedelta(days=compare_days or 0)
        notes = [
            (n.day, redact(n.text))
            for n in list_annotations(store, since=first, until=local.date())
        ]
        title = digest_title(period, start, local)
        return cls(title, period, start, lines, errors, compare_days, notes)

    @property
    def grouped(self) -> bool:
        """Whether any line has a `group:` (then every medium shows the group headings)."""
        return any(line.group for line in self.lines)

    def sections(self) -> list[tuple[str | None, list[DigestLine]]]:
        """The lines by group, in order: [(group or None, lines)]; one (None, lines) without
        groups. A medium shows "Other" for the None section when there are groups."""
        out: list[tuple[str | None, list[DigestLine]]] = []
        for line in self.lines:
            if out and out[-1][0] == line.group:
                out[-1][1].append(line)
            else:
                out.append((line.group, [line]))
        return out

    @property
    def comparison(self) -> str:
        """ "Changes against 14 days earlier.", or "" without a comparison."""
        if not self.compare_days:
            return ""
        from kpi_collector.format import plural

        return f"Changes against {plural(self.compare_days, 'day')} earlier."


def compared_values(
    store: HistoryStore,
    kpis: Sequence[str],
    moment: datetime,
    days: int,
    tz: ZoneInfo,
    *,
    at: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """What `compare: <N>d` compares each of `kpis` with at `moment`: the newest value stored
    by the end of the local day N days before, when it is from that day or the N days before
    it; an older one (a source that failed for weeks) is no comparison, never one shown as
    "N days earlier". KPIs without one are left out. `at` (KPI id -> UTC epoch seconds)
    gives a value stamped with an earlier day than `moment`'s, such as yesterday's complete
    DAU (`Source.complete_days`): it is compared with the value N days before its own day."""
    from kpi_collector.store.periods import compare_end, local_midnight

    moments: dict[date, list[str]] = {}
    today = moment.astimezone(tz).date()
    for kpi in kpis:
        stamped = at.get(kpi) if at is not None else None
        day = today if stamped is None else min(today, datetime.fromtimestamp(stamped, tz).date())
        moments.setdefault(day, []).append(kpi)
    out: dict[str, float] = {}
    for day, chosen in moments.items():
        end = compare_end(datetime.combine(day, time(12), tz), days, tz)
        oldest = local_midnight(day - timedelta(days=2 * days), tz)
        found = store.latest(chosen, before=end, strictly=True)
        out.update({k: r.value for k, r in found.items() if r.ts >= oldest})
    return out


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
    from kpi_collector.config.plain import display_order

    return display_order(ids, kpis=kpis, north_star=north_star)


def in_groups(ids: Sequence[str], specs: Mapping[str, KpiSpec]) -> list[str]:
    """`ids` (in display order) by `group:`, the groups in config order, ungrouped last."""
    from kpi_collector.config.plain import grouped

    return [kpi for _, members in grouped(ids, specs) for kpi in members]


def _group(kpi: str, specs: Mapping[str, KpiSpec]) -> str | None:
    spec = specs.get(kpi)
    return spec.group if spec is not None else None


def _higher_is_better(kpi: str, specs: Mapping[str, KpiSpec]) -> bool:
    spec = specs.get(kpi)
    return spec.higher_is_better if spec is not None else True


def _title(kpi: str, specs: Mapping[str, KpiSpec]) -> str:
    spec = specs.get(kpi)
    return spec.title if spec is not None and spec.title else kpi


def _unit(kpi: str, specs: Mapping[str, KpiSpec]) -> str | None:
    spec = specs.get(kpi)
    return spec.unit if spec is not None else None
