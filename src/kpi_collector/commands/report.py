"""`kpi report`: a self-contained HTML report or the Markdown digest of the stored history."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--period",
    type=click.Choice(["day", "week", "month"]),
    default="week",
    show_default=True,
    help="The period the report covers and charts by.",
)
@click.option(
    "--compare",
    default="14d",
    show_default=True,
    metavar="Nd",
    help="Show each change against the value N days earlier (0d: none).",
)
@click.option(
    "--out",
    "out",
    default="report.html",
    show_default=True,
    metavar="FILE.html|FILE.md",
    type=click.Path(dir_okay=False),
    help="Where to write; the suffix picks the format.",
)
@click.pass_context
def report(ctx: click.Context, period: str, compare: str, out: str) -> None:
    """A report of the stored history: charts in one offline HTML file, or a Markdown digest."""
    from kpi_collector.commands.core import load
    from kpi_collector.report.html import parse_compare, write_report

    try:
        parse_compare(compare)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--compare") from None
    if not out.lower().endswith((".html", ".htm", ".md", ".markdown")):
        raise click.BadParameter(f"{out}: use a .html or .md file", param_hint="--out")
    config = load(ctx, need_secrets=False)
    from kpi_collector.schedule.health import missing_store

    if missing_store(config) is not None:  # reading it would create it (and its folder)
        click.echo("no history yet: run `kpi run` first; no report written", err=True)
        ctx.exit(1)
    path = write_report(config, out, period=period, compare=compare)
    click.echo(f"wrote {path}")
