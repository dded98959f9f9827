"""`kpi probe`: every number on a page with the selector that reads it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kpi_collector.run.probe import ProbeResult


@click.command()
@click.argument("url", required=False)
@click.option(
    "--source",
    "source_name",
    metavar="NAME",
    help="Fetch as this configured html/http_json source does (its login, auth, render).",
)
@click.option("--render", is_flag=True, help="Load the page in headless Chromium first.")
@click.option("--grep", metavar="TEXT", help="Keep the numbers whose label or text has TEXT.")
@click.option("--format", "fmt", type=click.Choice(["table", "yaml", "json"]), default="table")
@click.pass_context
def probe(
    ctx: click.Context,
    url: str | None,
    source_name: str | None,
    render: bool,
    grep: str | None,
    fmt: str,
) -> int:
    """Every number on a page (or numeric leaf of a JSON answer) with the CSS selector or
    JMESPath that reads it and a ready `metrics:` line; exit 1 when none is found."""
    from kpi_collector.run.probe import probe as run_probe

    if not url and not source_name:
        raise click.UsageError("give a URL, or --source NAME of the config")
    if url is not None:
        from kpi_collector.collect.http import check_http_url

        try:
            check_http_url(url)
        except ValueError as exc:  # what the page's source would refuse, said before it runs
            raise click.BadParameter(str(exc), param_hint="URL") from None
    source = defaults = tz = base_dir = None
    if source_name:
        from kpi_collector.commands.core import load

        config = load(ctx, need_store=False, only=(source_name,), need_destinations=False)
        by_name = {s.name: s for s in config.sources}
        if source_name not in by_name:
            known = ", ".join(by_name) or "none"
            raise click.BadParameter(
                f"no source named {source_name!r}; the config has: {known}",
                param_hint="--source",
            )
        source = by_name[source_name]
        defaults, tz, base_dir = config.defaults, config.tz, config.base_dir
    result = run_probe(
        url, source, render=render, grep=grep, defaults=defaults, tz=tz, base_dir=base_dir
    )
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    elif fmt == "yaml":
        click.echo(_yaml(result))
    else:
        _table(result)
    return 0 if result.findings else 1


def _yaml(result: ProbeResult) -> str:
    from kpi_collector.secrets import redact

    head = f"# {redact(result.url)}: {len(result.findings)} numbers, {_belongs(result)}"
    lines = [head, "metrics:"]
    for finding in result.findings:
        note = f"{finding.text} · {finding.label}" if finding.label else finding.text
        lines.append(f"  {finding.yaml_line}  # {redact(' '.join(note.split()))}")
    return "\n".join(lines)


def _belongs(result: ProbeResult) -> str:
    """Where the listed `metrics:` lines go: `jmespath:` lines in an `http_json` source,
    `css:` lines in an `html` source (rendered, when the page was)."""
    kind = "http_json" if result.kind == "json" else "html"
    rendered = " with `render: true`" if result.rendered and kind == "html" else ""
    return f"the metrics: lines go in a source of `type: {kind}`{rendered}"


def _whole(value: float) -> str:
    """`value` with every digit it has (Python's shortest exact form, `.0` left off):
    8864407, 1234567.89; `:g` showed 8.86441e+06."""
    from decimal import Decimal

    text = repr(value)  # 1.5e-07: written out, 0.00000015
    return text.removesuffix(".0") if "e" not in text else f"{Decimal(text):f}"


def _table(result: ProbeResult) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from kpi_collector.secrets import redact

    console = Console(highlight=False)
    if not result.findings:
        console.print(Text(f"no numbers found on {redact(result.url)}"))
        if result.kind == "html" and not result.rendered:
            console.print(Text("if a script draws them in a browser, try again with --render"))
        return
    table = Table(show_edge=False, title=Text(f"{redact(result.url)} ({result.kind})"))
    table.add_column("value", justify="right")
    table.add_column("as written")
    table.add_column("label")
    table.add_column("metrics: line")
    for finding in result.findings:
        table.add_row(
            _whole(finding.value),
            Text(redact(finding.text)),
            Text(redact(finding.label)),
            Text(finding.yaml_line),
        )
    console.print(table)
    console.print(Text(_belongs(result)))
