"""`kpi annotate TEXT [--date DATE]`: a dated note shown on every chart and in reports."""

from __future__ import annotations

import click


@click.command()
@click.argument("text")
@click.option(
    "--date",
    "day",
    metavar="DATE",
    help="The day it is about: 2026-01-31, yesterday, 30d, 2w, 6mo; default today.",
)
@click.pass_context
def annotate(ctx: click.Context, text: str, day: str | None) -> None:
    """Store a dated note ("v1.0 released") for the charts and reports."""
    from datetime import datetime

    from kpi_collector.commands.core import load, parse_date
    from kpi_collector.errors import ConfigError
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.annotations import add_annotation

    config = load(ctx, need_secrets=False)
    # today, yesterday, 30d: counted from the config's today, as the charts' days are
    when = parse_date(day, "--date", config) or datetime.now(config.tz).date()
    store = HistoryStore(config.store_url)
    try:
        note = add_annotation(store, text, when)
    except ConfigError as exc:  # an empty or too long text: a command-line problem
        raise click.BadParameter(str(exc), param_hint="TEXT") from None
    finally:
        store.close()
    click.echo(f"note {note.id} stored for {note.day.isoformat()}: {note.text}")
