"""`kpi worker` (a Celery worker that collects sources) and `kpi workers` (who is there)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kpi_collector.commands.core import load

if TYPE_CHECKING:
    from kpi_collector.config.models import CeleryExecutor, Config


def _celery_executor(config: Config, command: str) -> CeleryExecutor:
    from kpi_collector.config.plain import PlainCeleryExecutor
    from kpi_collector.errors import ConfigError

    executor = config.settings.executor
    if not isinstance(executor, PlainCeleryExecutor):
        raise ConfigError(
            f"kpi {command} needs `executor: {{type: celery, broker: ...}}` in "
            f"{config.path or 'kpi.yaml'}; see docs/scale-out.md"
        )
    return executor


def _queue_list(value: str | None) -> list[str]:
    if value is None:
        return ["kpi"]
    import re

    from kpi_collector.sources.base import QUEUE_MAX, QUEUE_PATTERN

    names = [q.strip() for q in value.split(",") if q.strip()]
    if not names:
        raise click.BadParameter(
            "name at least one queue, e.g. kpi,internal", param_hint="--queues"
        )
    for name in names:
        if len(name) > QUEUE_MAX or not re.fullmatch(QUEUE_PATTERN, name):
            shown = name if len(name) <= 40 else f"{name[:40]}… ({len(name)} characters)"
            raise click.BadParameter(
                f"{shown!r} is no queue a source can name: letters, digits and _.:- "
                f"(not first), at most {QUEUE_MAX} characters",
                param_hint="--queues",
            )
    return names


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Batches collected at once, each in a process of its own (default: CPUs); "
    "they share defaults.concurrency, per_host and render_concurrency out among them.",
)
@click.option(
    "--queues",
    metavar="A,B",
    default=None,
    help="Queues to collect from, comma-separated (default: kpi). A source's `queue:` picks one.",
)
@click.option(
    "--hostname",
    metavar="NAME",
    default=None,
    help="The worker's node name, e.g. kpi@vpn-1 (default: kpi@<host>); %h is the host name.",
)
@click.option(
    "--loglevel",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.pass_context
def worker(
    ctx: click.Context,
    concurrency: int | None,
    queues: str | None,
    hostname: str | None,
    loglevel: str,
) -> None:
    """Collect sources for `kpi run` / `kpi schedule` on other machines (executor: celery).

    The worker loads its own kpi.yaml (with this machine's environment for secrets) and
    refuses batches of a run whose config differs. SIGTERM stops it once the batches in hand
    are collected."""
    from kpi_collector.run.celery_executor import run_worker

    # a source whose variables this machine lacks is left out: its batches say so
    config = load(ctx, need_secrets=False, need_store=False)
    _celery_executor(config, "worker")
    from celery.utils.nodenames import host_format

    from kpi_collector.sources.base import QUEUE_MAX

    node = host_format(hostname or "kpi@%h")
    longest = QUEUE_MAX - len(".dq2")  # the worker's own queue, `<node name>.dq2`
    if len(node.encode()) > longest:
        raise click.BadParameter(
            f"the node name {node[:40]}… is {len(node.encode())} bytes long; the broker takes "
            f"at most {longest} (its own queue `<name>.dq2` is a queue name)",
            param_hint="--hostname",
        )
    code = run_worker(
        config,
        concurrency=concurrency,
        queues=_queue_list(queues),
        hostname=hostname,
        loglevel=loglevel.upper(),
    )
    ctx.exit(code)


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the workers' answers.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def workers(ctx: click.Context, timeout: float, fmt: str) -> None:
    """Live workers: their queues, config fingerprints and versions. Exits 1 when a queue
    that an enabled source needs has no worker with this config."""
    from kpi_collector.run.celery_executor import config_queues, fingerprint, live_workers

    config = load(ctx, need_secrets=False, need_store=False)
    executor = _celery_executor(config, "workers")
    ours = fingerprint(config)
    found = live_workers(executor, timeout=timeout)
    needed = config_queues(config)
    served = {q for w in found if w.fingerprint == ours for q in w.queues}
    missing = {q: names for q, names in needed.items() if q not in served}
    if fmt == "json":
        import json

        doc = {
            "fingerprint": ours,
            "workers": [
                {
                    "name": w.name,
                    "queues": list(w.queues),
                    "fingerprint": w.fingerprint,
                    "same_config": w.fingerprint == ours,
                    "version": w.version,
                }
                for w in found
            ],
            "queues_without_worker": sorted(missing),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"config fingerprint {ours}")
        if not found:
            click.echo(f"no worker answered within {timeout:g} s")
        for w in found:
            same = "same config" if w.fingerprint == ours else "OTHER CONFIG"
            queues = ",".join(w.queues) or "-"
            click.echo(
                f"{w.name}  queues {queues}  fingerprint {w.fingerprint} ({same})  "
                f"kpi-collector {w.version}"
            )
        for queue, names in sorted(missing.items()):
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            click.echo(
                f"queue `{queue}` has no worker with this config (needed by {shown}); "
                f"start one: kpi worker --queues {queue}",
                err=True,
            )
    ctx.exit(1 if missing else 0)
