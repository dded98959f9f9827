"""Log lines on stderr for -v, -q and $KPI_LOG_LEVEL, each redacted."""

from __future__ import annotations

import logging
import sys

LEVELS = ("debug", "info", "warning", "error")
HANDLER = "kpi"  # the name of the handler set up here, so `kpi schedule` can find it


def setup_logging(*, verbose: bool = False, quiet: bool = False) -> None:
    """Log lines of `kpi_collector` on stderr at the level -v (debug), -q (error) or
    $KPI_LOG_LEVEL ask for, each redacted (no secret reaches a log line); nothing is set
    up without one of them (warnings then reach stderr as Python prints them)."""
    import os

    wanted = "debug" if verbose else "error" if quiet else os.environ.get("KPI_LOG_LEVEL", "")
    wanted = wanted.strip().lower()
    if not wanted:
        return
    if wanted not in LEVELS:
        from kpi_collector.commands.core import UsageProblem

        raise UsageProblem(
            f"KPI_LOG_LEVEL={wanted!r} is not a log level; use one of {', '.join(LEVELS)}"
        )
    logger = logging.getLogger("kpi_collector")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(redacting_formatter("%(levelname)s %(name)s: %(message)s"))
    handler.set_name(HANDLER)
    logger.handlers = [h for h in logger.handlers if h.get_name() != HANDLER] + [handler]
    logger.setLevel(getattr(logging, wanted.upper()))
    logger.propagate = False


def redacting_formatter(fmt: str, datefmt: str | None = None) -> logging.Formatter:
    """A logging.Formatter whose lines go through `secrets.redact`."""
    from kpi_collector.secrets import redact

    class RedactingFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return redact(super().format(record))

    return RedactingFormatter(fmt, datefmt)
