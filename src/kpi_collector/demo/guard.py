"""Refuse to rebuild a demo folder that another process is using (issue 13 §4).

`kpi demo` replaces the folder's databases; done while `kpi serve` or a run has them open,
SQLite fails half-way ("disk I/O error") after the old history is gone. So the check comes
before any file is touched.
"""

from __future__ import annotations

from pathlib import Path

from kpi_collector.errors import StoreError
from kpi_collector.processes import describe_holders, file_holders

#: what `kpi demo` writes into its folder (or deletes there first), replacing what was there
DEMO_FILES = ("kpi.yaml", ".env", "kpi.db", "kpis.csv", "app.db", "report.html")
#: the first line of the demo's kpi.yaml: a folder whose kpi.yaml starts so is a demo folder
DEMO_MARK = "# The kpi-collector demo:"


def foreign_file(folder: Path) -> str | None:
    """The first of the files `kpi demo` would replace that `folder` holds when the folder
    is no demo folder (its kpi.yaml is not the demo's, or it has none): a project's config,
    secrets and history must never be replaced by the demo's. None when the folder is new,
    holds none of them, or is a demo folder."""
    if not folder.is_dir():
        return None
    config = folder / "kpi.yaml"
    try:
        with config.open(encoding="utf-8", errors="replace") as handle:
            if handle.readline().startswith(DEMO_MARK):
                return None
    except (FileNotFoundError, IsADirectoryError):
        pass
    return next((name for name in DEMO_FILES if (folder / name).exists()), None)


def check_folder_free(folder: Path) -> None:
    """Raise StoreError naming what holds `folder`'s files (an open file, from /proc, or
    the store's run lock, an `flock` on `kpi.db.lock`); return when nothing does."""
    if not folder.is_dir():
        return
    files = [path for path in folder.iterdir() if path.is_file()]
    holders = describe_holders(file_holders(files))
    if not holders and _run_lock_held(folder / "kpi.db.lock"):
        holders = "a run (it holds kpi.db.lock)"
    if holders:
        raise StoreError(
            f"{folder} is in use by {holders}: stop it first, or use `kpi demo --dir OTHER`; "
            "nothing was changed"
        )


def _run_lock_held(path: Path) -> bool:
    """Whether another process holds the SQLite store's run lock (fcntl.flock, as store/lock)."""
    if not path.exists():
        return False
    try:
        import fcntl
    except ImportError:  # Windows: the open-file check above is all there is
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
