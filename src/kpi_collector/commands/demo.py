"""`kpi demo`: a complete run, offline, against local demo services."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--dir",
    "directory",
    default="kpi-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo's config, database and report.",
)
@click.option("--serve", is_flag=True, help="Keep the demo services running until Ctrl-C.")
def demo(directory: str, serve: bool) -> None:
    """A complete run offline: local demo sources, 90 days of history, one run, a report."""
    from datetime import UTC, datetime

    from kpi_collector.commands.core import UsageProblem, show_result
    from kpi_collector.demo.guard import check_folder_free, foreign_file
    from kpi_collector.demo.server import BackgroundServer, make_app
    from kpi_collector.demo.setup import seed, write_demo_folder
    from kpi_collector.pipeline import Pipeline

    folder = Path(directory)
    mine = foreign_file(folder)
    if mine is not None:
        raise UsageProblem(
            f"{folder} holds {mine}, which is not the demo's (the demo replaces its config, "
            "secrets and history): `kpi demo --dir` a new or empty folder; nothing was changed"
        )
    check_folder_free(folder)  # before anything is replaced
    with BackgroundServer(make_app()) as url:
        config_path = write_demo_folder(folder, url)
        (folder / "kpi.db").unlink(missing_ok=True)
        (folder / "kpis.csv").unlink(missing_ok=True)
        pipeline = Pipeline.from_config(config_path)
        assert pipeline.store is not None
        today = datetime.now(UTC).date()
        added = seed(pipeline.store, pipeline.tz, today)
        click.echo(f"demo services on {url}; {added} past values stored in {folder / 'kpi.db'}")
        result = pipeline.process()
        show_result(pipeline, result)
        report = _write_report(config_path)
        click.echo("")
        click.echo("try next:")
        click.echo(f"  kpi -c {config_path} history --period week")
        click.echo(f"  kpi -c {config_path} validate")
        if report:
            click.echo(f"  open {report}")
        click.echo(f"  kpi -c {config_path} serve        # the dashboard")
        if serve:
            click.echo("demo services running; Ctrl-C to stop")
            import time

            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    if not result.ok:
        raise SystemExit(1)


def _write_report(config_path: Path) -> Path | None:
    """The HTML report of the demo's history, where the report part is installed."""
    try:
        from kpi_collector.report.html import write_report
    except ImportError:
        return None
    out = config_path.parent / "report.html"
    write_report(config_path, out)
    return out
