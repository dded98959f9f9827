"""`kpi serve`: the dashboard on 127.0.0.1 (another address only with an access token)."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; other than loopback needs --token.",
)
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="KPI_DASHBOARD_TOKEN",
    metavar="TOKEN",
    help="Access token every request must carry (or $KPI_DASHBOARD_TOKEN).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, token: str | None) -> None:
    """The dashboard: overview, a page per KPI, runs, a JSON API and /metrics."""
    import uvicorn

    from kpi_collector.commands.core import load
    from kpi_collector.errors import ConfigError
    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.web import check_bind, create_app
    from kpi_collector.secrets import remember
    from kpi_collector.store import rollup

    token = token or None
    if token:
        remember(token)
    try:
        check_bind(host, token)
    except ConfigError as exc:  # a command-line problem: say it as one
        raise click.UsageError(str(exc)) from None
    config = load(ctx, need_secrets=False)
    data = DashboardData(config)
    waiting = rollup.pending(data.store.engine, data.zone)
    if waiting > 200_000:
        click.echo(f"summing up {waiting:,} stored values per day, week and month (once) …")
    data.refresh()  # brings the rollup up to date before the first request
    data.health()  # and loads the scheduler's modules now, not on the first page
    app = create_app(config, token=token, data=data)
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"dashboard on http://{shown}:{port}/" + ("  (access token required)" if token else "")
    )
    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, server_header=False
    )
