"""`kpi serve`: the dashboard on 127.0.0.1 (another address only with an access token)."""

from __future__ import annotations

import socket

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
    from kpi_collector.report.web import check_bind, create_app, usable_token
    from kpi_collector.secrets import remember
    from kpi_collector.store import rollup

    token = usable_token(token)
    if token:
        remember(token)
    try:
        check_bind(host, token)
    except ConfigError as exc:  # a command-line problem: say it as one
        raise click.UsageError(str(exc)) from None
    config = load(ctx, need_secrets=False)
    data = DashboardData(config)
    waiting = rollup.pending(data.store.engine, data.zone)
    if data.missing is not None:  # read as empty, never created by a look
        click.echo(
            f"{data.missing}: nothing has run with this config yet (or `store:` names another "
            "store); the dashboard shows the values once `kpi run` or `kpi schedule` stores them",
            err=True,
        )
    if waiting > 200_000:
        click.echo(f"summing up {waiting:,} stored values per day, week and month (once) …")
    data.refresh()  # brings the rollup up to date before the first request
    data.health()  # and loads the scheduler's modules now, not on the first page
    app = create_app(config, token=token, data=data)
    sock = _listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"dashboard on http://{shown}:{sock.getsockname()[1]}/"
        + ("  (access token required)" if token else "")
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, server_header=False, lifespan="auto"
        )
    )
    server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, as uvicorn would open it (SO_REUSEADDR, so a port in
    TIME_WAIT is not "taken"); a port another process listens on is a usage error naming it."""
    import errno

    from kpi_collector.commands.core import UsageProblem
    from kpi_collector.processes import describe_holders, port_holders
    from kpi_collector.secrets import redact

    # the address family as uvicorn picks it: IPv6 for an address with a colon
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except socket.gaierror as exc:
        sock.close()
        raise UsageProblem(f"--host {host}: {exc.strerror}") from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            holders = describe_holders(port_holders(port))
            by = f" by {redact(holders)}" if holders else ""
            raise UsageProblem(
                f"port {port} on {host} is taken{by}; stop it, or pick another with --port N"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageProblem(f"--host {host} is not an address of this machine") from None
        raise
    sock.set_inheritable(True)
    return sock
