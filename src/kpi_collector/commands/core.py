"""`kpi init`, `kpi validate`, `kpi run`, `kpi history`, `kpi backfill`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Collection, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from kpi_collector.config import Config
    from kpi_collector.pipeline import Pipeline, RunResult
    from kpi_collector.run.engine import SourceOutcome


class UsageProblem(click.ClickException):
    """A command-line problem said in one line, `Error: ...` (exit 2: nothing ran)."""

    exit_code = 2


def load(
    ctx: click.Context,
    *,
    need_secrets: bool = True,
    need_store: bool = True,
    only: Collection[str] | None = None,
    need_destinations: bool = True,
) -> Config:
    """The config named on the command line; `need_secrets=False` for commands that only read,
    `need_store=False` too for those that do not even open the store (snippets); `only` the
    sources a command uses (`run --only`), `need_destinations=False` for one that delivers
    nothing (`probe`): the others may name unset variables (`load_config`)."""
    from kpi_collector.config import load_config

    return load_config(
        ctx.obj.get("config") if ctx.obj else None,
        need_secrets=need_secrets,
        need_store=need_store,
        only=only,
        need_destinations=need_destinations,
    )


def parse_date(value: str | None, option: str, config: Config | None = None) -> date | None:
    """The day an option names: a date, `today`, `yesterday` or `30d`/`2w`/`6mo`/`1y` back
    from today in the config's time zone (UTC without a config)."""
    if value is None:
        return None
    from datetime import UTC, datetime

    from kpi_collector.config.dates import parse_day

    today = datetime.now(config.tz if config is not None else UTC).date()
    try:
        return parse_day(value, today)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.command()
@click.option(
    "--dir", "directory", default=".", type=click.Path(file_okay=False), help="Where to write."
)
@click.option("--force", is_flag=True, help="Overwrite an existing kpi.yaml and .env.example.")
@click.option(
    "--source",
    "source_type",
    metavar="TYPE",
    help="Print a commented `sources:` entry of this type (github, pypi, ...) instead; writes nothing.",
)
@click.option(
    "--destination",
    "destination_type",
    metavar="TYPE",
    help="Print a commented `destinations:` entry of this type (notion, slack, ...) instead; writes nothing.",
)
def init(
    directory: str, force: bool, source_type: str | None, destination_type: str | None
) -> None:
    """Write a commented starter kpi.yaml (public, no-auth sources), .env.example and
    kpi.schema.json (for editors).

    With --source TYPE or --destination TYPE, print that type's sample entry (its folder's
    sample.yaml) to paste into kpi.yaml; an unknown type is a usage error listing the known
    ones.
    """
    if source_type is not None or destination_type is not None:
        from kpi_collector.config.plugins import destination_sample, source_sample
        from kpi_collector.errors import ConfigError

        if source_type is not None and destination_type is not None:
            raise click.UsageError("use one of --source and --destination")
        option = "'--source'" if source_type is not None else "'--destination'"
        try:
            if source_type is not None:
                click.echo(source_sample(source_type), nl=False)
            else:
                click.echo(destination_sample(destination_type or ""), nl=False)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
        return
    from kpi_collector.commands.starter import ENV_EXAMPLE, SCHEMA_FILE, STARTER_CONFIG

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "kpi.yaml"
    if config.exists() and not force:
        raise click.UsageError(f"{config} exists; use --force to overwrite it")
    config.write_text(STARTER_CONFIG, encoding="utf-8")
    env = folder / ".env.example"
    kept = env.exists() and not force  # it may be the team's own: never replaced unasked
    if not kept:
        env.write_text(ENV_EXAMPLE, encoding="utf-8")
    schema_file = folder / SCHEMA_FILE
    schema_file.write_text(_schema_text(), encoding="utf-8")
    if kept:
        click.echo(f"wrote {config} and {schema_file} (for editors); kept the {env.name} there")
    else:
        click.echo(f"wrote {config}, {env} and {schema_file} (for editors)")
    # the commands read ./kpi.yaml unless told: name the file written elsewhere
    import shlex

    option = "" if folder == Path() else f"-c {shlex.quote(str(config))} "
    click.echo(f"next: edit {config}, then `kpi {option}validate` and `kpi {option}run`")


def _schema_text() -> str:
    import json

    from kpi_collector.config.schema import config_schema

    return json.dumps(config_schema(), indent=2) + "\n"


@click.command()
def schema() -> None:
    """Print the JSON Schema of kpi.yaml (installed plugins included), for editors.

    `kpi schema > kpi.schema.json` and a first line `# yaml-language-server:
    $schema=./kpi.schema.json` in kpi.yaml give completion and checks in editors that use
    yaml-language-server (VS Code's YAML extension, Neovim, Helix, ...).
    """
    click.echo(_schema_text(), nl=False)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option(
    "--health",
    is_flag=True,
    help="Also read the store: scheduler heartbeat, overdue jobs, last run, alerts (exit 1 if unwell).",
)
@click.pass_context
def validate(ctx: click.Context, fmt: str, health: bool) -> None:
    """Check the config and list sources, destinations and KPI ids; touches no network.

    With --health it reads the store and says whether the collector is alive and up to date.
    """
    config = load(ctx)
    _check_functions(config)
    if health:
        from kpi_collector.schedule.health import health_report, render

        report = health_report(config)
        if fmt == "json":
            import json

            click.echo(json.dumps(report, indent=2))
        else:
            click.echo(render(report))
        ctx.exit(0 if report["ok"] else 1)
    if fmt == "json":
        import json

        click.echo(json.dumps(describe(config), indent=2))
        return
    click.echo(f"{config.path}: ok")
    click.echo(
        f"store: {_redacted(config.store_url)}   timezone: {config.timezone}   "
        f"schedule: {config.settings.schedule}"
    )
    click.echo(f"sources ({len(config.sources)}):")
    for source in config.sources:
        state = "" if source.enabled else "  (disabled)"
        metrics = ", ".join(source.metric_names()) or "(from the function)"
        click.echo(f"  {source.name:<20} {source.type:<12} {metrics}{state}")
    click.echo(f"destinations ({len(config.destinations)}):")
    for dest in config.destinations:
        state = "" if dest.enabled else "  (disabled)"
        click.echo(f"  {dest.name:<20} {dest.type:<12} every {dest.every}{state}")
    ids = config.order(config.kpi_ids())
    # a source that names no metric (a function's) gives its KPIs at run time only
    unnamed = [s.name for s in config.sources if s.enabled and not s.metric_names()]
    later = ""
    if unnamed:
        whose = (
            f"source {unnamed[0]!r} gives at run time (its function's names)"
            if len(unnamed) == 1
            else f"sources {', '.join(map(repr, unnamed))} give at run time "
            "(their function's names)"
        )
        later = f"{', and ' if ids else ''}those {whose}"
    click.echo(f"KPIs ({len(ids)}): {', '.join(ids)}{later}")


def _check_functions(config: Config) -> None:
    """A `python` source whose module cannot be found is a config error (exit 2) here,
    not a failed source at the first run; the module itself is not run."""
    from kpi_collector.sources.python import Function, check_findable

    for source in config.sources:
        if isinstance(source, Function) and source.enabled:
            check_findable(source, config.base_dir)


def describe(config: Config) -> dict[str, Any]:
    return {
        "config": str(config.path),
        "store": _redacted(config.store_url),
        "timezone": config.timezone,
        "schedule": config.settings.schedule,
        "north_star": config.settings.north_star,
        "sources": [
            {"name": s.name, "type": s.type, "enabled": s.enabled, "metrics": s.metric_names()}
            for s in config.sources
        ],
        "destinations": [
            {"name": d.name, "type": d.type, "enabled": d.enabled, "every": d.every}
            for d in config.destinations
        ],
        "kpis": config.order(config.kpi_ids()),
    }


def _redacted(url: str) -> str:
    from kpi_collector.secrets import redact

    return redact(url)


#: `--wait SECONDS` of the commands that take the store's run lock (`kpi run`, `kpi backfill`)
class _Seconds(click.FloatRange):
    """Seconds, 0 or more: `nan` passes a range check (no comparison holds for it) and
    would make a wait that never ends."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if seconds != seconds:  # NaN
            self.fail(f"{value!r} is not a number of seconds; give e.g. 30", param, ctx)
        return seconds


_wait_option = click.option(
    "--wait",
    type=_Seconds(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another run that holds the store.",
)


@click.command()
@click.option("--only", multiple=True, metavar="NAME", help="Run only these sources (repeatable).")
@click.option("--dry-run", is_flag=True, help="Collect and show; store and deliver nothing.")
@click.option("--no-deliver", is_flag=True, help="Collect and store; deliver nothing.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_wait_option
@click.pass_context
def run(
    ctx: click.Context,
    only: tuple[str, ...],
    dry_run: bool,
    no_deliver: bool,
    fmt: str,
    wait: float,
) -> None:
    """Collect every source, store the values, deliver them; show a table of the results."""
    from kpi_collector.pipeline import Pipeline

    pipeline = Pipeline.from_config(load(ctx, only=only))
    pipeline.lock_wait = wait
    sources = pipeline.selected(only)
    if not sources:  # a run that can collect nothing is no success to report
        raise UsageProblem(
            "nothing to run: the config has no enabled source; add one under `sources:` "
            "(`kpi init --source TYPE` prints an entry) or set `enabled: true`"
        )
    import gc

    # one bounded run: reference counting frees what it makes; cyclic GC would only rescan
    # thousands of live objects (measured: about 5% of a 1,000-source run's CPU). Turned on
    # again only when the process lives on: its first collection scans every object the run
    # made (about 20 ms for 1,000 sources), which a process about to exit need not pay.
    gc.disable()
    try:
        quiet = bool(ctx.obj and ctx.obj.get("quiet"))
        # standard output is the JSON document alone: what sources print goes to stderr
        keep_stdout = _stdout_to_stderr() if fmt == "json" else contextlib.nullcontext()
        try:
            with (
                keep_stdout,
                _progress(len(sources), enabled=fmt == "table" and not quiet) as on_done,
            ):
                result = pipeline.process(
                    only=only, dry_run=dry_run, deliver=not no_deliver, on_source_done=on_done
                )
        finally:
            # its connections closed: SQLite writes the run's WAL into the file (and syncs
            # it) once, here, before the process exits without closing anything
            if pipeline.store is not None:
                pipeline.store.close()
        if fmt == "json":
            import json

            click.echo(json.dumps(result.to_dict(), indent=2))
        elif quiet:  # -q: only what went wrong
            for line in _failure_lines(result):
                click.echo(line, err=True)
        else:
            show_result(pipeline, result, dry_run=dry_run)
    finally:
        if not (ctx.obj and ctx.obj.get("exits")):
            gc.enable()
    ctx.exit(result.exit_code)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Standard output goes to stderr meanwhile: a source's function that prints (`print`,
    a library's progress, a program it starts, which writes to file descriptor 1) must not
    write into a document that `kpi run --format json | jq` reads."""
    sys.stdout.flush()
    try:
        out, err = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (click's test runner)
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    saved = os.dup(out)
    try:
        os.dup2(err, out)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, out)
        os.close(saved)


class _progress:
    """A progress bar on stderr while sources finish (only on a terminal)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty() and total > 0
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("collecting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("", total=self.total)

        def on_done(outcome: SourceOutcome) -> None:
            mark = "" if outcome.ok else " (failed)"
            self._bar.update(task, advance=1, description=f"{outcome.source}{mark}")

        return on_done

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def show_result(pipeline: Pipeline, result: RunResult, *, dry_run: bool = False) -> None:
    """The result table (KPI, value, change), then failures and a summary line.

    On a terminal it is a coloured table; otherwise plain aligned text, which is what logs
    and cron mails want and costs a millisecond instead of a rich layout for 1,000 rows.
    """
    from datetime import datetime

    from kpi_collector.format import format_change, format_value, plural

    rows: list[tuple[str, str, str, int]] = []  # title, value, change, tone: 1 good, -1 bad
    for kpi, value in result.values.items():
        spec = pipeline.kpis.get(kpi)
        unit = spec.unit if spec else None
        prev = result.previous.get(kpi)
        change = "" if dry_run else format_change(value, prev, unit)
        direction = 0 if prev is None else (value > prev) - (value < prev)
        title = spec.title if spec and spec.title else kpi
        if kpi in result.stamps:  # a complete day's value (active_users): which day
            title += f" ({datetime.fromtimestamp(result.stamps[kpi], pipeline.tz).date()})"
        if spec is not None and not spec.higher_is_better:  # churn rising is bad news
            direction = -direction
        rows.append(
            (
                title,
                format_value(value, unit),
                change,
                direction,
            )
        )
    from collections import Counter

    delivered = [
        f"delivered to {name}" + (f" ({plural(count, 'period')})" if count > 1 else "")
        for name, count in Counter(result.delivered).items()
    ]
    failures = _failure_lines(result)
    seconds = (result.finished_at - result.started_at).total_seconds()
    undelivered = (
        f", {plural(len(result.delivery_errors), 'delivery', 'deliveries')} failed"
        if result.delivery_errors
        else ""
    )
    summary = (
        f"{plural(len(result.values), 'value')}, {plural(len(result.errors), 'error')}"
        f"{undelivered} in {seconds:.2f}s"
    )
    if result.run_id is not None:
        summary = f"run {result.run_id}: {summary}"
    elif dry_run:
        summary = f"dry run, nothing stored: {summary}"
    if sys.stdout.isatty():
        _rich_result(rows, delivered, failures, summary)
        return
    if rows:
        from kpi_collector.commands.history import _cells, _left, _right

        header = ("KPI", "value", "change")
        cells = [header, *((t, v, c) for t, v, c, _ in rows)]
        # by terminal cells, not code points: a CJK title or an emoji takes two per character
        widths = [max(_cells(cell[i]) for cell in cells) for i in range(3)]
        lines = [
            f"{_left(t, widths[0])}  {_right(v, widths[1])}  {_right(c, widths[2])}"
            for t, v, c in cells
        ]
        click.echo("\n".join(line.rstrip() for line in lines))
    for line in [*delivered, *failures, summary]:
        click.echo(line)


def _failure_lines(result: RunResult) -> list[str]:
    failures = [f"failed {where}: {message}" for where, message in result.errors.items()]
    failures += [  # a delivery refused for good (marked failed) or dropped is not pending
        f"delivery failed {name}: {_pending(message) if name in result.delivery_pending else message}"
        for name, message in result.delivery_errors.items()
    ]
    return failures


def _pending(message: str) -> str:
    """`message` of a delivery that stays pending, saying so once: the engine's "(after 4
    attempts; stays pending)" becomes "(after 4 attempts; pending, retried on the next run)"."""
    if message.endswith("; stays pending)"):
        return message.removesuffix("stays pending)") + "pending, retried on the next run)"
    return f"{message} (pending; retried on the next run)"


def _rich_result(
    rows: list[tuple[str, str, str, int]], delivered: list[str], failures: list[str], summary: str
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    if rows:
        table = Table(show_edge=False)
        # a narrow terminal wraps the KPI titles; a value or a change is never cut
        table.add_column("KPI", overflow="fold")
        for header, cells in (("value", [r[1] for r in rows]), ("change", [r[2] for r in rows])):
            widest = max(len(header), *(len(cell) for cell in cells))
            table.add_column(header, justify="right", no_wrap=True, min_width=widest)
        for title, value, change, tone in rows:
            style = {1: "green", -1: "red"}.get(tone, "")
            table.add_row(Text(title), value, Text(change, style=style))
        console.print(table)
    for line in delivered:
        console.print(Text(line))
    for line in failures:
        console.print(Text(line, style="red"))
    console.print(Text(summary))


def _complete_kpis(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of KPI ids: those the config makes (nothing when it cannot load)."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import KpiError

    root = ctx.find_root()
    try:
        config = load_config(root.params.get("config"), need_secrets=False, need_store=False)
    except (KpiError, OSError):
        return []
    return [k for k in config.order(config.kpi_ids()) if k.startswith(incomplete)]


@click.command()
@click.argument("kpis", nargs=-1, shell_complete=_complete_kpis)
@click.option("--period", type=click.Choice(["day", "week", "month"]), default="day")
@click.option(
    "--since", metavar="DATE", help="First day to show: 2026-01-31, yesterday, 30d, 2w, 6mo."
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_context
def history(
    ctx: click.Context, kpis: tuple[str, ...], period: str, since: str | None, fmt: str
) -> None:
    """The stored history: each KPI's value per day, week or month (by its `agg`)."""
    from kpi_collector.commands.history import history_document

    config = load(ctx, need_secrets=False)
    if kpis:
        _check_kpis(config, kpis)
    doc = history_document(
        config, list(kpis) or None, period=period, since=parse_date(since, "--since", config)
    )
    if fmt == "json":
        import json

        click.echo(json.dumps(doc, indent=2))
    elif fmt == "csv":
        import csv

        from kpi_collector.format import spreadsheet_text

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["period", "kpi", "value"])
        for kpi, points in doc["kpis"].items():
            for point in points:
                # a KPI id like `=cmd.x` opened in a spreadsheet must not run as a formula
                value = point["value"]  # None: an aggregate past the largest double
                cell = "" if value is None else repr(value)
                writer.writerow([point["period"], spreadsheet_text(kpi), cell])
    else:
        _history_table(config, doc, kpis)


def _check_kpis(config: Config, kpis: tuple[str, ...]) -> None:
    """Every KPI named on the command line is one the config makes or the store holds."""
    from kpi_collector.errors import unknown_names
    from kpi_collector.schedule.health import missing_store
    from kpi_collector.store import HistoryStore

    known = [*config.kpi_ids(), *config.kpis]
    if set(kpis) - set(known) and missing_store(config) is None:
        store = HistoryStore(config.store_url)
        try:
            known += store.kpi_ids()
        finally:
            store.close()
    problem = unknown_names("KPI", kpis, known)
    if problem:
        raise UsageProblem(problem)


def _stored(config: Config, kpis: Sequence[str] = ()) -> bool:
    """Whether the store holds a value of any of `kpis` (of any KPI when none is named)."""
    from kpi_collector.schedule.health import missing_store
    from kpi_collector.store import HistoryStore

    if missing_store(config) is not None:
        return False
    store = HistoryStore(config.store_url)
    try:
        ids = store.kpi_ids()
    finally:
        store.close()
    return bool(set(ids) & set(kpis)) if kpis else bool(ids)


def _history_table(config: Config, doc: dict[str, Any], kpis: Sequence[str] = ()) -> None:
    """KPIs as rows, periods as columns, in blocks that fit the terminal (`COLUMNS`)."""
    import shutil

    from kpi_collector.commands.history import history_lines
    from kpi_collector.format import format_value

    if not doc["kpis"]:
        if doc["since"] and _stored(config, kpis):
            click.echo(f"nothing stored since {doc['since']}: give an earlier --since")
        elif kpis and _stored(config):  # others have values: these have none, at any date
            click.echo(f"no values stored for {', '.join(kpis)} yet")
        else:
            click.echo("no history yet: run `kpi run` first")
        return
    periods = sorted({p["period"] for points in doc["kpis"].values() for p in points})
    rows = []
    for kpi, points in doc["kpis"].items():
        spec = config.kpis.get(kpi)
        unit = spec.unit if spec else None
        cells = {
            p["period"]: "overflow" if p["value"] is None else format_value(p["value"], unit)
            for p in points
        }
        rows.append((spec.title if spec and spec.title else kpi, cells))
    width = shutil.get_terminal_size((80, 24)).columns
    click.echo(f"per {doc['period']} ({doc['timezone']})")
    lines = history_lines(rows, periods, width=width, corner="KPI")
    click.echo("\n".join(lines))
    blocks = lines.count("") + 1
    if blocks > 3:
        click.echo(
            f"({len(periods)} {doc['period']}s in {blocks} blocks of {width} columns: "
            "--since 14d, --period week or month, or KPI ids show fewer; "
            "--format csv gives them all)",
            err=True,
        )


_FIRST_DAY = date(1970, 1, 1)  # the first day `kpi backfill --since` can ask for (Unix time)


@click.command()
@click.option(
    "--since", metavar="DATE", help="Import values from this day on: 2026-01-31, 90d, 1y."
)
@click.option("--only", multiple=True, metavar="NAME", help="Backfill only these sources.")
@_wait_option
@click.pass_context
def backfill(ctx: click.Context, since: str | None, only: tuple[str, ...], wait: float) -> None:
    """Import past daily values from sources that can give them."""
    from datetime import datetime, timedelta

    from kpi_collector.format import plural
    from kpi_collector.pipeline import Pipeline

    config = load(ctx, only=only)  # a source outside --only may name unset variables
    first = parse_date(since, "--since", config)
    yesterday = datetime.now(config.tz).date() - timedelta(days=1)
    if first is not None and first > yesterday:
        raise click.BadParameter(
            f"{first} is after yesterday ({yesterday}): a backfill gives complete past days; "
            "`kpi run` collects today's values",
            param_hint="--since",
        )
    if first is not None and first < _FIRST_DAY:
        raise click.BadParameter(
            f"{first} is before {_FIRST_DAY}: the store keeps times as Unix time; "
            f"ask from {_FIRST_DAY} on",
            param_hint="--since",
        )
    pipeline = Pipeline.from_config(config)
    pipeline.lock_wait = wait  # it writes the store: one run (or backfill) at a time
    report = pipeline.backfill(since=first, only=only)
    for name, count in report.added.items():
        covered = report.covered.get(name)
        click.echo(
            f"{name}: {plural(count, 'value')} added"
            + (f"; covered {covered.describe()}" if covered else "")
        )
    if report.derived:
        click.echo(f"formulas: {plural(report.derived, 'value')} added")
    for name in report.unsupported:
        click.echo(f"{name}: cannot give past values (skipped)")
    for name, message in report.errors.items():
        click.echo(f"failed {name}: {message}", err=True)
    ctx.exit(1 if report.errors else 0)
