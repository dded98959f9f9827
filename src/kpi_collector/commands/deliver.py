"""`kpi deliver`: send the deliveries that are still pending (oldest first), or list them."""

from __future__ import annotations

from typing import Any

import click


@click.command()
@click.option(
    "--destination",
    "-d",
    "only",
    multiple=True,
    metavar="NAME",
    help="Only this destination (repeatable).",
)
@click.option(
    "--list", "show", is_flag=True, help="List recent deliveries and their state; send nothing."
)
@click.option(
    "--retry",
    "retry",
    multiple=True,
    metavar="PERIOD",
    help="Make the failed (refused) deliveries of PERIOD pending again, then deliver "
    "(repeatable; with -d only those destinations'); a split message goes on after the "
    "parts already sent.",
)
@click.option(
    "--from-start",
    is_flag=True,
    help="With --retry: send every part of a split message again, also those already sent "
    "(when the config changed how it splits).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def deliver(
    ctx: click.Context,
    only: tuple[str, ...],
    show: bool,
    retry: tuple[str, ...],
    from_start: bool,
    fmt: str,
) -> None:
    """Retry deliveries that are still pending, oldest first (exit 1 if one still fails)."""
    import asyncio

    from kpi_collector.commands.core import load
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.schedule.health import missing_store

    if from_start and not retry:
        raise click.BadParameter(
            "--from-start goes with --retry PERIOD (it resends a failed delivery's parts)",
            param_hint="--from-start",
        )
    # the destinations' secrets are needed to send; only listing works without them
    config = load(ctx, need_secrets=not show)
    # a SQLite store that does not exist: nothing ran with this config, so nothing is pending
    # or listed, and a command that only reads must not create it (nor its folder)
    nothing_ran = missing_store(config) is not None
    pipeline = Pipeline.from_config(config, with_store=not nothing_ran)
    engine = pipeline.delivery_engine()
    if nothing_ran:
        engine.selected(only)  # unknown names are still a usage error
        if retry:
            raise click.BadParameter(
                f"no failed delivery of {retry[0]!r}: nothing has run with this config yet "
                "(its store does not exist)",
                param_hint="--retry",
            )
        if fmt == "json":  # standard output is the document alone
            click.echo("[]" if show else '{"ok": true, "deliveries": []}')
        else:
            click.echo("no deliveries yet" if show else "nothing pending")
        return
    if show:
        _show(engine, only, fmt)
        return
    engine.selected(only)  # unknown names are a usage error before anything is sent
    if retry:
        from kpi_collector.store.deliveries import retry_failed

        assert pipeline.store is not None
        for period in retry:
            count = sum(
                retry_failed(pipeline.store, period, name, from_start=from_start)
                for name in (only or [None])
            )
            if not count:
                raise click.BadParameter(
                    f"no failed delivery of {period!r}"
                    + (f" to {', '.join(only)}" if only else "")
                    + "; `kpi deliver --list` shows each delivery's period and state",
                    param_hint="--retry",
                )
            click.echo(
                f"{period}: {count} failed deliver{'y' if count == 1 else 'ies'} pending again",
                err=fmt == "json",  # standard output is the document alone
            )
    outcomes = asyncio.run(engine.deliver_pending(only or None))
    failed = [o for o in outcomes if not o.ok]
    orphans = [] if only else _orphans(engine)
    if fmt == "json":
        import json

        click.echo(
            json.dumps(
                {
                    "ok": not failed,
                    "deliveries": [
                        {
                            "destination": o.destination,
                            "period": o.period,
                            "ok": o.ok,
                            "error": o.error,
                            "attempts": o.attempts,
                        }
                        for o in outcomes
                    ],
                },
                indent=2,
            )
        )
    elif not outcomes and not orphans:
        click.echo("nothing pending")
    else:
        for o in outcomes:
            if o.ok:
                click.echo(f"delivered {o.destination} {o.period}")
            else:
                # refused for good (marked failed), or dropped (its run's values are gone)
                error = o.error or ""
                if not o.refused and o.attempts:  # said once: "(after 4 attempts; still pending)"
                    if error.endswith("; stays pending)"):
                        error = error.removesuffix("stays pending)") + "still pending)"
                    else:
                        error += " (still pending)"
                click.echo(f"delivery failed {o.destination} {o.period}: {error}", err=True)
        waiting = len(engine.records(status="pending"))
        if outcomes:
            click.echo(
                f"{len(outcomes) - len(failed)} delivered, {len(failed)} failed, {waiting} pending"
            )
        for name, count in orphans:
            click.echo(
                f"{count} deliver{'y' if count == 1 else 'ies'} pending for {name}, which is no "
                "enabled destination of the config (renamed, removed or `enabled: false`?): "
                f"kept in the store; give the destination `name: {name}` again to send "
                f"{'it' if count == 1 else 'them'} (`kpi deliver --list` shows them)"
            )
    ctx.exit(1 if failed else 0)


def _orphans(engine: Any) -> list[tuple[str, int]]:
    """(destination name, pending deliveries) for each name with pending deliveries that no
    enabled destination of the config has: the state is kept per name, so nothing sends them
    until the name comes back."""
    names = {d.name for d in engine.destinations}
    counts: dict[str, int] = {}
    for record in engine.records(status="pending"):
        if record.destination not in names:
            counts[record.destination] = counts.get(record.destination, 0) + 1
    return sorted(counts.items())


def _show(engine: Any, only: tuple[str, ...], fmt: str) -> None:
    names = {d.name for d in engine.selected(only)} if only else None
    records = [r for r in engine.records(limit=200) if names is None or r.destination in names]
    if fmt == "json":
        import json

        click.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    if not records:
        click.echo("no deliveries yet")
        return
    import os
    import shutil
    import textwrap
    from datetime import datetime

    # plain aligned columns, each cell whole, and a failure's error on the lines below its
    # row, wrapped at spaces to the terminal's width: a table squeezed to fit cut its cells
    # ("pe…" for pending, "2026-12-01 1…") on a narrow terminal
    header = ("destination", "period", "run", "status", "attempts", "updated")
    rows = []
    for r in records:
        updated = datetime.fromtimestamp(r.updated_at, engine.tz).strftime("%Y-%m-%d %H:%M")
        status = f"{r.status} ({r.parts_sent})" if r.parts_sent else r.status  # split, part-way
        cells = (r.destination, r.period, str(r.run_id or ""), status, str(r.attempts), updated)
        rows.append((cells, r.status, r.last_error or ""))
    from kpi_collector.commands.history import _cells, _left

    widths = [
        max(_cells(cells[i]) for cells in [header, *(c for c, _, _ in rows)]) for i in range(6)
    ]
    width = max(20, shutil.get_terminal_size((80, 24)).columns)
    click.echo("  ".join(_left(h, w) for h, w in zip(header, widths, strict=True)).rstrip())
    colour = {"pending": "yellow", "done": "green"}
    for cells, state, error in rows:
        line = [_left(c, w) for c, w in zip(cells, widths, strict=True)]
        if not os.environ.get("NO_COLOR"):  # click drops colours in a pipe, not for NO_COLOR
            line[3] = click.style(line[3], fg=colour.get(state, "red"))
        click.echo("  ".join(line).rstrip())
        for part in textwrap.wrap(error, width - 4, break_long_words=False, break_on_hyphens=False):
            click.echo(f"    {part}")
