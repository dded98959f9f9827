"""`kpi schedule`: run on the config's crons, run what is due once, or print a deployment snippet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from kpi_collector.commands.core import load


@click.command()
@click.option(
    "--print",
    "snippet",
    type=click.Choice(["crontab", "systemd", "systemd-timer", "github-actions"]),
    help="Print a deployment snippet for this config instead of running.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Run each job that is due (its last fire time is newer than its last success), then exit.",
)
@click.option(
    "--run",
    "jobs",
    multiple=True,
    metavar="JOB",
    help="Run this job for its newest fire time and exit, unless that fire time was already "
    "served (then: nothing is due): main, source:NAME or destination:NAME (repeatable).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --run: run even when the job's newest fire time has already been served.",
)
@click.option(
    "--list", "show", is_flag=True, help="List the jobs, their crons and next fire times."
)
@click.pass_context
def schedule(
    ctx: click.Context,
    snippet: str | None,
    once: bool,
    jobs: tuple[str, ...],
    force: bool,
    show: bool,
) -> None:
    """Run the pipeline on its cron (`schedule:` in the config's time zone) until SIGTERM.

    Sources and destinations with their own `schedule:` run on theirs. On start, a job that
    missed its last fire time runs once. SIGTERM or Ctrl-C lets the run in progress finish,
    then exits 0. Logs go to stderr with timestamps; `kpi validate --health` shows the heartbeat.
    """
    if sum(map(bool, (snippet, once, jobs, show))) > 1:
        raise click.UsageError("use one of --print, --once, --run and --list")
    if force and not jobs:
        raise click.UsageError("--force goes with --run JOB")
    # a snippet only names jobs and crons: it needs none of the secrets (like `history`)
    config = load(ctx, need_secrets=not snippet, need_store=not snippet)
    if snippet:
        from kpi_collector.schedule.deploy import snippet as make_snippet

        click.echo(make_snippet(config, snippet), nl=False)
        return
    from kpi_collector.schedule.scheduler import Scheduler, stopping_on_signals

    scheduler = Scheduler(config)
    if not scheduler.jobs:  # as `kpi run` and `--print`: never an idle process for ever
        from kpi_collector.errors import ConfigError

        raise ConfigError("nothing to schedule: the config has no enabled source or destination")
    from kpi_collector.errors import unknown_names

    problem = unknown_names("scheduled job", jobs, (job.name for job in scheduler.jobs))
    if problem:
        raise click.BadParameter(problem.replace("scheduled jobs:", "jobs:"), param_hint="--run")
    if show:
        from datetime import UTC, datetime

        click.echo("\n".join(scheduler.plan_lines(datetime.now(UTC))))
        return
    with _logging_to_stderr(), stopping_on_signals(scheduler.stop):
        if not (once or jobs):
            scheduler.serve()
            return
        try:
            if jobs:
                now = scheduler.clock.now()
                results = [
                    scheduler.run_job(
                        job, fire=None if force else scheduler.fire_to_serve(job, now)
                    )
                    for job in map(scheduler.job, jobs)
                ]
            else:
                results = scheduler.run_due()
            if all(r.status == "not_due" for r in results):
                click.echo("nothing is due", err=True)
        finally:
            scheduler.store.close()
    ctx.exit(0 if all(r.status in ("ok", "not_due") for r in results) else 1)


@contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """The scheduler's log lines on stderr, each with a timestamp."""
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    from kpi_collector.commands.logs import HANDLER, redacting_formatter

    logger = logging.getLogger("kpi_collector")
    asked = [h for h in logger.handlers if h.get_name() == HANDLER]
    if asked:  # -v, -q or KPI_LOG_LEVEL: at the level asked, with timestamps
        before = asked[0].formatter
        asked[0].setFormatter(
            redacting_formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
        )
        try:
            yield
        finally:
            asked[0].setFormatter(before)
        return
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
