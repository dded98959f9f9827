"""The destination contract: a config model that takes a `Delivery` (a snapshot plus the
history) and writes it somewhere. Destinations never collect; the store is the truth.

Two kinds: table-like destinations (`upserts = True`: Notion, sheets, files, SQL, Pushgateway)
keep one row per period and update it on every run of the period; message destinations
(Discord, Slack, email, webhook, Segment) send at most once per period. `kpi_collector.deliver.engine`
decides what to deliver when, records it in the store and retries transient failures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from kpi_collector.errors import DeliveryError
from kpi_collector.lazy import lazy_exports

#: the identity of the text message being sent by `send_text` (set by the alerts engine): the
#: same for every retry of one message, on later runs too, so a destination can send it as
#: its idempotency key; None when the sender gives none
message_id: ContextVar[str | None] = ContextVar("kpi_message_id", default=None)
#: UTC epoch seconds no later than any earlier attempt at the message `message_id` names, when
#: an earlier run may have tried it (and the service may have taken it, unanswered); None
#: when this check is its first (set by the alerts engine, like `Delivery.attempted_since`)
message_since: ContextVar[float | None] = ContextVar("kpi_message_since", default=None)

if TYPE_CHECKING:
    from kpi_collector.collect.http import Auth, HttpClient, HttpSession
    from kpi_collector.config.models import KpiSpec
    from kpi_collector.destinations.model import Destination as Destination
    from kpi_collector.destinations.model import MessageDestination as MessageDestination
    from kpi_collector.destinations.model import TableDestination as TableDestination
    from kpi_collector.store import HistoryStore


class PooledHttp:
    """HTTP sessions on a connection pool someone else opened and closes (the delivery
    engine's for a `Delivery`, `send_now`'s for an alert's `Outbox`)."""

    http_client: HttpClient | None

    def http(
        self,
        *,
        timeout: float = 30.0,
        auth: Auth | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpSession:
        """A session on the pool; retries are the caller's job (the delivery engine's or
        `send_now`'s), so every status comes back to the destination's own error mapping."""
        if self.http_client is None:  # a pool made here would never be closed
            raise DeliveryError(
                "no HTTP connection pool to send with: deliver through "
                "kpi_collector.deliver.engine.DeliveryEngine (or Pipeline), or set http_client to an "
                "open kpi_collector.collect.http.HttpClient",
                transient=False,
            )
        return self.http_client.session(timeout=timeout, retries=0, auth=auth, headers=headers)


P = TypeVar("P")


def part_key(part: object) -> str:
    """What identifies one part of a split message: a text as is, anything else (a JSON body)
    as canonical JSON."""
    if isinstance(part, str):
        return part
    return json.dumps(part, sort_keys=True, ensure_ascii=False, default=str)


def plan_fingerprint(keys: Sequence[str]) -> str:
    """A fingerprint (32 hex digits of SHA-256) of parts' keys, in order: the same parts give
    the same fingerprint on every run and version."""
    digest = hashlib.sha256()
    for key in keys:
        digest.update(hashlib.sha256(key.encode()).digest())
    return digest.hexdigest()[:32]


@dataclass
class Delivery(PooledHttp):
    """What a destination gets: the values of one period, their history and how to show them.

    `values`, `timestamps` and `previous` are keyed by KPI id; `order` is every id of
    `values` in display order (`config.models.display_order`), `ordered` those with a value.
    The delivery engine builds it; a destination reads it and never collects.
    """

    period: str  # the period key: "2026-11-29", "2026-W48", "2026-11" or "run:17"
    period_start: date  # the local date the period starts on (the run's date for "run")
    run_id: int | None  # the run whose values these are; None when nothing was stored
    values: dict[str, float]  # KPI id -> latest value
    timestamps: dict[str, float]  # KPI id -> UTC epoch seconds when that value was collected
    kpis: dict[str, KpiSpec]  # titles, units, targets (may miss ids)
    order: list[str]  # KPI ids, north star first
    tz: ZoneInfo  # the config's time zone, for dates shown to people
    now: datetime  # when the run started, an aware datetime
    previous: dict[str, float] = field(default_factory=dict)  # values `compare` days earlier
    errors: list[tuple[str, str]] = field(default_factory=list)  # (source, message), redacted
    store: HistoryStore | None = None  # the history, for destinations that show more of it
    base_dir: Path = field(default_factory=Path.cwd)  # relative paths are relative to this
    # set by the delivery engine ------------------------------------------------------------
    destination: str = ""  # the destination's name
    every: str = "run"  # run | day | week | month
    compare_days: int | None = None  # the destination's `compare` in days (None: no compare)
    http_client: HttpClient | None = None  # the run's connection pool
    progress: int = 0  # parts of a multi-part message already sent by an earlier attempt
    #: attempts of this destination and period before this one (in earlier runs too): the
    #: first unsent part may have gone out in the last of them, unanswered (a timeout)
    earlier_attempts: int = 0
    #: UTC epoch seconds by which this destination's delivery of the period was due: every
    #: attempt at it, in this run or an earlier one, came after (the ledger row's
    #: `pending_since` or `created_at`). A message pending since an earlier run and not begun
    #: moves on to the newer run (its `now`), but its unanswered attempt was made before
    #: that run started. None when not known: `now` is the bound
    due_since: float | None = None
    #: fingerprint of the first `progress` parts as they were sent (`plan_fingerprint`); None
    #: when nothing was sent, or by a version that did not record it
    sent_plan: str | None = None
    #: called by `checkpoint` with the parts sent so far, their fingerprint and how many parts
    #: there are (None when not known), to record them
    on_progress: Callable[[int, str | None, int | None], Awaitable[None]] | None = None
    _part_keys: list[str] = field(default_factory=list, init=False, repr=False)

    @property
    def row_period(self) -> str:
        """The period as destinations key what they write (a table's row, an idempotency
        key): `period`, and for `every: run` also when the run started, in UTC
        ("run:17@20261130T070000Z"). Run ids start again at 1 in a new store (kpi.db deleted,
        another store URL): keyed "run:1" alone, the new store's first run overwrote the old
        one's row and a receiver dropped it as a repeat. The same for every retry of the run."""
        if not self.period.startswith("run:"):
            return self.period
        return f"{self.period}@{self.now.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    @property
    def attempted_since(self) -> float:
        """UTC epoch seconds no later than any attempt at this delivery (`due_since`, or
        `now` when that is not known or later): where to look for a message an earlier
        attempt may have sent unanswered."""
        now = self.now.timestamp()
        return now if self.due_since is None else min(now, self.due_since)

    @property
    def delivery_id(self) -> str:
        """Stable across retries of this destination and period, and never another run's
        (see `row_period`): an idempotency key."""
        return f"{self.destination}:{self.row_period}"

    @property
    def ordered(self) -> list[str]:
        """The KPI ids that have a value, in display order (north star first)."""
        return [k for k in self.order if k in self.values] + [
            k for k in self.values if k not in self.order
        ]

    def unsent(
        self,
        parts: Sequence[P],
        key: Callable[[P], str] = part_key,
        *,
        idempotent: bool = False,
    ) -> list[tuple[int, P]]:
        """The `(index, part)` pairs of `parts` still to send: all of them, or those after the
        `progress` parts an earlier attempt (or a failed delivery now retried) sent.

        Resuming is only right when those first parts are the ones sent: their fingerprint
        (`key` of each part, see `plan_fingerprint`) must equal `sent_plan`. When it differs —
        the config changed the split (a title, `max_size`, ...) since — resending from the
        start would repeat messages and going on would skip or repeat values, so this raises
        DeliveryError(refused): the delivery is marked failed, and `kpi deliver --retry PERIOD
        --from-start` sends every part again. `idempotent` (a destination whose parts are
        upserts, Notion's pages per KPI): start from the first part instead."""
        self._part_keys = [key(part) for part in parts]
        done = self.progress
        changed = done > len(parts) or (
            self.sent_plan is not None
            and plan_fingerprint(self._part_keys[:done]) != self.sent_plan
        )
        if done and changed:
            if not idempotent:
                raise DeliveryError(
                    f"{self.destination or 'destination'}: {done} part{'s' if done > 1 else ''} "
                    f"of this {self.period} delivery went out, but it now splits differently "
                    f"({len(parts)} part{'s' if len(parts) != 1 else ''}; the config changed "
                    "since?): restore the config and retry, or `kpi deliver --retry "
                    f"{self.period} --from-start` to send all of it again",
                    transient=False,
                    refused=True,
                )
            done = self.progress = 0
        return list(enumerate(parts))[done:]

    async def checkpoint(self, parts_sent: int) -> None:
        """Remember that the first `parts_sent` parts went out (and, when they came from
        `unsent`, their fingerprint), so a retry does not repeat them."""
        self.progress = parts_sent
        self.sent_plan = plan_fingerprint(self._part_keys[:parts_sent]) if self._part_keys else None
        if self.on_progress is not None:
            total = len(self._part_keys) if self._part_keys else None
            await self.on_progress(parts_sent, self.sent_plan, total)

    def title(self, kpi: str) -> str:
        """The KPI's `title:` from `kpis:`, else its id."""
        spec = self.kpis.get(kpi)
        return spec.title if spec is not None and spec.title else kpi

    def unit(self, kpi: str) -> str | None:
        """The KPI's `unit:` from `kpis:` (USD, %, ...), None when it has none."""
        spec = self.kpis.get(kpi)
        return spec.unit if spec is not None else None


#: the models, served from `destinations.model` on first use (pydantic is imported there):
#: a run with no destination never imports them
__getattr__ = lazy_exports(
    "kpi_collector.destinations",
    {"Destination": "model", "MessageDestination": "model", "TableDestination": "model"},
)


def delivery_error(
    message: str,
    *,
    transient: bool,
    retry_after: float | None = None,
    refused: bool = False,
    credentials: bool = False,
) -> DeliveryError:
    """A DeliveryError; `retry_after` (seconds, from a 429) tells the engine how long to wait;
    `refused`: the service will never take this payload; `credentials`: it refused the
    credentials (see `DeliveryError`)."""
    error = DeliveryError(message, transient=transient, refused=refused, credentials=credentials)
    error.retry_after = retry_after  # type: ignore[attr-defined]
    return error


class NameClash(NamedTuple):
    """Two KPIs that one destination would write under one name (`second` is None when
    `first` takes a name the destination keeps for itself, like `period`)."""

    first: str  # a KPI id
    second: str | None  # the other KPI id; None: `name` is reserved
    name: str  # the name both map to

    def describe(self, kind: str = "name") -> str:
        """ "KPIs a.x and b.x both map to column 'x'" / "KPI period maps to column 'period',
        which the destination writes itself"."""
        if self.second is None:
            return (
                f"KPI {self.first} maps to {kind} {self.name!r}, which the destination "
                "writes itself"
            )
        return f"KPIs {self.first} and {self.second} both map to {kind} {self.name!r}"


def name_collision(names: Mapping[str, str], reserved: Collection[str] = ()) -> NameClash | None:
    """The first clash where two KPIs of `names` ({kpi: name}, as from
    `Destination.kpi_names`) share a name, or a KPI takes one of `reserved`; None when
    every name is its own. Names compare exactly (a destination that folds case folds it
    in `kpi_names`)."""
    seen: dict[str, str] = {}
    for kpi, name in names.items():
        if name in reserved:
            return NameClash(kpi, None, name)
        if name in seen:
            return NameClash(seen[name], kpi, name)
        seen[name] = kpi
    return None


def refuse_name_collision(destination: Destination, delivery: Delivery) -> None:
    """Raise DeliveryError(refused) when two of the delivery's KPIs map to one name in
    `destination` (or one takes a reserved name): the config's KPIs are checked at load, but
    ids only known at run time (a source whose metrics come from its answer) are not, and
    one value must never silently overwrite the other. Nothing is written; the delivery is
    marked failed and later periods go on (issue 18 §1)."""
    titles = {kpi: delivery.title(kpi) for kpi in delivery.ordered}
    clash = destination.name_clash(delivery.ordered, titles)
    if clash:
        raise delivery_error(
            f"{destination.type} destination {destination.name!r}: "
            f"{clash.describe(destination.name_kind)}; {destination.name_fix}",
            transient=False,
            refused=True,
        )
