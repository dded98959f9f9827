"""`type: csv | jsonl | parquet`: a file with one row per period (`layout: wide`, a column per
KPI id) or per KPI and period (`layout: long`), upserted by period: a re-run rewrites its row.

    - {type: csv, path: kpis.csv, every: day}
    - {type: jsonl, path: kpis.jsonl, layout: long}
    - {type: parquet, path: kpis.parquet}

The file is rewritten whole into a temporary file that replaces it, under a lock: a crash
never leaves half a file, and two runs never interleave. The replacement keeps what the user
set on the file: its permissions, a symlink (the file it points at is rewritten), and for a CSV
a spreadsheet saved again (byte order mark, `;` or tab between cells). A read-only file is
never replaced. A CSV text cell that starts like a formula (`=`, `+`, `-`, `@`, ...: a title,
a KPI id) gets a leading `'`, so a spreadsheet shows it and never runs it; numbers stay numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import glob
import importlib.util
import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from kpi_collector.destinations._table import (
    LONG_COLUMNS,
    columns_of,
    key_of,
    number_text,
    rows_of,
    upsert,
)
from kpi_collector.destinations.base import (
    Delivery,
    TableDestination,
    delivery_error,
    refuse_name_collision,
)
from kpi_collector.format import cell_text, spreadsheet_text


class FileDestination(TableDestination):
    """A file of rows, upserted by period; subclasses read and write one format."""

    path: str
    name_kind: ClassVar[str] = "column"
    name_fix: ClassVar[str] = "give the KPI another id, or use `layout: long`"

    def kpi_names(self, kpis: Sequence[str], titles: Mapping[str, str]) -> dict[str, str]:
        """wide: {kpi: column}, the column named by the KPI id itself; long names nothing
        by KPI (one row per KPI)."""
        return {kpi: kpi for kpi in kpis} if self.layout == "wide" else {}

    def reserved_names(self) -> frozenset[str]:
        """wide: the `period` and `date` columns (a derived KPI may be called `period`)."""
        return frozenset({"period", "date"}) if self.layout == "wide" else frozenset()

    def file(self, delivery: Delivery) -> Path:
        return self._file(delivery.base_dir)

    def _file(self, base_dir: Path) -> Path:
        path = Path(self.path).expanduser()
        return path if path.is_absolute() else base_dir / path

    def writes_to(self, base_dir: Path) -> str:
        """The file's real path: `k.csv`, `./k.csv` and a symlink to it are one file."""
        return os.path.realpath(self._file(base_dir))

    async def deliver(self, delivery: Delivery) -> None:
        refuse_name_collision(self, delivery)  # the config's own KPIs are checked at load
        await asyncio.to_thread(self._deliver, delivery)

    def _deliver(self, delivery: Delivery) -> None:
        path = self.file(delivery)
        new = rows_of(delivery, self.layout)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a symlink's target is the file to rewrite: replacing the link would cut it
            target = Path(os.path.realpath(path))
            with _locked(target):
                mode = _writable_mode(target, path)
                # an empty file (`touch kpis.csv`, emptied to start over) holds no rows yet
                fresh = mode is None or target.stat().st_size == 0
                existing = [] if fresh else self.read(target)
                rows = upsert(existing, new, key_of(self.layout))
                first = ["period", "date"] if self.layout == "wide" else LONG_COLUMNS
                _clear_half_files(target)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                try:
                    self.write_over(target, tmp, columns_of(rows, first), rows)
                    if mode is not None:
                        os.chmod(tmp, mode)
                    os.replace(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
        except _ReadOnly as exc:
            raise delivery_error(str(exc), transient=True) from None
        except OSError as exc:
            raise delivery_error(
                f"cannot write {path}: {exc.strerror or exc}", transient=True
            ) from None
        except (ValueError, KeyError) as exc:
            raise delivery_error(
                f"{path} is not a {self.type} file this destination wrote ({exc}); "
                "move it away or point `path` elsewhere",
                transient=False,
            ) from None

    def read(self, path: Path) -> list[dict[str, Any]]:
        raise NotImplementedError

    def write(self, path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def write_over(
        self, target: Path, tmp: Path, columns: list[str], rows: list[dict[str, Any]]
    ) -> None:
        """Write `rows` to `tmp`, which then replaces `target` (which may not exist yet): a
        format whose files others save again in their own way writes `tmp` the same way."""
        self.write(tmp, columns, rows)


def _clear_half_files(target: Path) -> None:
    """Remove the temporary files (`.<name>.<pid>.tmp`) writers of `target` killed mid-write
    left: each was half a file, kept in the folder for good. Called under the lock, which no
    live writer of `target` holds then (without `fcntl`, on Windows, there is no lock: the
    files stay)."""
    if importlib.util.find_spec("fcntl") is None:
        return
    prefix = f".{target.name}."
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(prefix) : -len(".tmp")]
        if pid.isdigit():
            leftover.unlink(missing_ok=True)


class _ReadOnly(Exception):
    """The file exists and its owner may not write it: it must not be replaced."""


def _writable_mode(target: Path, shown: Path) -> int | None:
    """The permission bits of the existing file `target` (for its replacement), or None
    when there is none yet.

    Raises: _ReadOnly when the file has no write permission for its owner (`chmod a-w`: the
    folder would let a rename replace it anyway); OSError when it cannot be looked at."""
    try:
        info = target.stat()
    except FileNotFoundError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if not mode & stat.S_IWUSR:
        raise _ReadOnly(
            f"cannot write {shown}: it is read-only; `chmod u+w {shown}` to let kpi update it "
            "(the delivery stays pending until then), or point `path` elsewhere"
        )
    return mode


class CSV(FileDestination):
    type: ClassVar[str] = "csv"

    path: str = "kpis.csv"

    def read(self, path: Path) -> list[dict[str, Any]]:
        encoding, delimiter = _csv_style(path)
        with path.open(newline="", encoding=encoding) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = [cell_text(c) for c in next(reader, [])]
            if "period" not in header:
                raise ValueError("no `period` column")
            return [
                {name: cell_text(cell) for name, cell in zip(header, cells, strict=False)}
                for cells in reader
                if cells
            ]

    def write(
        self,
        path: Path,
        columns: list[str],
        rows: list[dict[str, Any]],
        *,
        encoding: str = "utf-8",
        delimiter: str = ",",
    ) -> None:
        with path.open("w", newline="", encoding=encoding) as handle:
            # every cell that a spreadsheet would run as a formula is written as text
            writer = csv.writer(handle, delimiter=delimiter)
            writer.writerow([spreadsheet_text(c) for c in columns])
            for row in rows:
                writer.writerow([spreadsheet_text(number_text(row.get(c))) for c in columns])

    def write_over(
        self, target: Path, tmp: Path, columns: list[str], rows: list[dict[str, Any]]
    ) -> None:
        """As `target` was saved: a spreadsheet that saved it again keeps its byte order mark
        and its `;` or tab between cells (its own cells, `0,25` there, are kept as written)."""
        encoding, delimiter = ("utf-8", ",")
        if target.exists() and target.stat().st_size:
            encoding, delimiter = _csv_style(target)
        self.write(tmp, columns, rows, encoding=encoding, delimiter=delimiter)


def _csv_style(path: Path) -> tuple[str, str]:
    """(encoding, delimiter) of a CSV file whose header starts with `period`: "utf-8-sig"
    when it starts with a byte order mark (Excel's "CSV UTF-8"), and `,`, `;` (Excel where
    the decimal sign is a comma) or a tab, whichever follows `period`."""
    with path.open("rb") as handle:
        head = handle.read(64)
    bom = head.startswith(b"\xef\xbb\xbf")
    head = head[3:] if bom else head
    if head.startswith(b'"period"'):
        head = head[2:]  # a quoted header: the character after the closing quote
    after = head[len(b"period") : len(b"period") + 1]
    delimiter = after.decode() if after in (b";", b"\t") else ","
    return ("utf-8-sig" if bom else "utf-8"), delimiter


class JSONL(FileDestination):
    type: ClassVar[str] = "jsonl"

    path: str = "kpis.jsonl"

    def read(self, path: Path) -> list[dict[str, Any]]:
        rows = []
        # utf-8-sig: an editor may have saved it with a byte order mark (rewritten without)
        with path.open(encoding="utf-8-sig") as handle:
            for line in handle:
                if line.strip():
                    row = json.loads(line)
                    if not isinstance(row, dict) or "period" not in row:
                        raise ValueError("a line without `period`")
                    rows.append(row)
        return rows

    def write(self, path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                ordered = {c: row[c] for c in columns if c in row}
                handle.write(json.dumps(ordered, ensure_ascii=False) + "\n")


class Parquet(FileDestination):
    type: ClassVar[str] = "parquet"

    path: str = "kpis.parquet"

    def read(self, path: Path) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow's errors for a file that is not Parquet
            raise ValueError(str(exc).splitlines()[0]) from None
        if "period" not in table.column_names:
            raise ValueError("no `period` column")
        return [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]

    def write(self, path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # a wide file's KPI columns are numbers whatever their ids (a derived KPI `title`)
        text = {"period", "date"} | ({"kpi", "title"} if self.layout == "long" else set())
        schema = pa.schema([(c, pa.string() if c in text else pa.float64()) for c in columns])
        table = pa.Table.from_pylist(
            [{c: _cell(row.get(c), c in text) for c in columns} for row in rows], schema=schema
        )
        pq.write_table(table, path)


def _cell(value: Any, text: bool) -> Any:
    if value is None or value == "":
        return None
    return str(value) if text else float(value)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path.lock` while the file is read and rewritten."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic replace still protects the file itself
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
