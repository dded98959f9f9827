"""`type: csv`: a CSV file with one row per period and a column per KPI, upserted by period."""

from __future__ import annotations

import csv
import os
from typing import ClassVar

from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.errors import DeliveryError


class CSV(Destination):
    type: ClassVar[str] = "csv"

    path: str = "kpis.csv"

    async def deliver(self, delivery: Delivery) -> None:
        path = delivery.base_dir / self.path
        rows: dict[str, dict[str, str]] = {}
        columns: list[str] = ["period"]
        try:
            if path.exists():
                with path.open(newline="", encoding="utf-8") as handle:
                    reader = csv.DictReader(handle)
                    columns = list(reader.fieldnames or ["period"])
                    rows = {row["period"]: row for row in reader}
            row = rows.setdefault(delivery.period, {"period": delivery.period})
            for kpi in delivery.order:
                if kpi in delivery.values:
                    if kpi not in columns:
                        columns.append(kpi)
                    row[kpi] = repr(delivery.values[kpi])
            tmp = path.with_suffix(path.suffix + ".tmp")
            with tmp.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows[key] for key in sorted(rows))
            os.replace(tmp, path)  # a crash never leaves half a file
        except OSError as exc:
            raise DeliveryError(f"cannot write {path}: {exc.strerror}", transient=True) from None
