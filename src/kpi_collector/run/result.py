"""`RunResult`: what one run collected, stored and delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kpi_collector.run.engine import SourceOutcome

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RunResult:
    """The outcome of one run: values by KPI id, errors by source (or KPI id), changes."""

    run_id: int | None
    started_at: datetime
    finished_at: datetime
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    previous: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # KPI id -> source name
    #: KPI id -> the UTC epoch seconds a value is stored with when not the run's start: the
    #: end of the complete day it describes (`Source.complete_days`, e.g. `active_users`)
    stamps: dict[str, float] = field(default_factory=dict)
    #: the config's time zone, whose days `stamps` end (set by the pipeline)
    zone: tzinfo | None = None
    delivery_errors: dict[str, str] = field(default_factory=dict)
    delivered: list[str] = field(default_factory=list)
    #: destinations of `delivery_errors` whose failed delivery stays pending (retried on the
    #: next run); the others were refused for good (marked failed) or dropped
    delivery_pending: set[str] = field(default_factory=set)
    outcomes: list[SourceOutcome] = field(default_factory=list)
    #: a run of some sources (`--only`) that left out a source due in every full run (one
    #: without a `schedule:` of its own): it opens no message period (`deliver.engine`)
    partial: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.delivery_errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def change(self, kpi: str) -> float | None:
        """`kpi`'s value minus its previous value as both are written (their shortest
        decimal forms, as in `--format json` and the files): 0.3 after 0.1 is 0.2, not the
        binary floats' 0.19999999999999998. None without a previous value."""
        if kpi not in self.values or kpi not in self.previous:
            return None
        return float(Decimal(repr(self.values[kpi])) - Decimal(repr(self.previous[kpi])))

    def day(self, kpi: str) -> str | None:
        """The complete day (ISO date, in the config's time zone) `kpi`'s value describes,
        for a value stamped with its day's end (`stamps`); None for a value of the run's
        moment."""
        if kpi not in self.stamps:
            return None
        zone = self.zone or self.started_at.tzinfo
        return datetime.fromtimestamp(self.stamps[kpi], zone).date().isoformat()

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `kpi run --format json`: each value with its `day` (the complete day
        it describes, "2024-04-09", for a source such as `active_users`; null for a value
        of the run's moment)."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "ok": self.ok,
            "values": [
                {
                    "kpi": k,
                    "value": v,
                    "previous": self.previous.get(k),
                    "change": self.change(k),
                    "source": self.sources.get(k),
                    "day": self.day(k),
                }
                for k, v in self.values.items()
            ],
            "errors": [{"where": k, "message": m} for k, m in self.errors.items()],
            "delivery_errors": [
                {"destination": k, "message": m} for k, m in self.delivery_errors.items()
            ],
        }

    def to_pandas(self) -> pd.DataFrame:
        """One row per KPI: kpi, value, previous, change, source, ts. `value`, `previous` and
        `change` are float columns; a KPI without a previous value has NaN there. `ts` is
        the run's start, or the end of the complete day a value describes (`stamps`)."""
        import pandas as pd

        nan = float("nan")
        frame = pd.DataFrame(
            [
                {
                    "kpi": kpi,
                    "value": value,
                    "previous": _or_nan(self.previous.get(kpi), nan),
                    "change": _or_nan(self.change(kpi), nan),
                    "source": self.sources.get(kpi),
                    "ts": pd.Timestamp(
                        self.started_at
                        if kpi not in self.stamps
                        else datetime.fromtimestamp(self.stamps[kpi], self.started_at.tzinfo)
                    ),
                }
                for kpi, value in self.values.items()
            ],
            columns=["kpi", "value", "previous", "change", "source", "ts"],
        )
        return frame.astype({"value": "float64", "previous": "float64", "change": "float64"})


def _or_nan(value: float | None, nan: float) -> float:
    return nan if value is None else float(value)
