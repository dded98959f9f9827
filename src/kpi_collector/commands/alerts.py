"""`kpi alerts`: the alerts of the config and their state; silences; a test message."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from kpi_collector.config.models import Alert, Config


@click.group()
def alerts() -> None:
    """The config's alerts: list their state, silence one for a while, send a test message."""


@alerts.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def list_alerts(ctx: click.Context, fmt: str) -> None:
    """Each alert with its number, state (true, pending: its `for:` not passed yet, ok, never
    checked) and silence."""
    from kpi_collector.commands.core import load

    config = load(ctx, need_secrets=False)
    rows = _rows(config)
    if fmt == "json":
        click.echo(json.dumps({"alerts": rows}, indent=2))
        return
    if not rows:
        click.echo("no alerts in the config")
        return
    for row in rows:
        state = row["state"]
        if row["silenced_until"]:
            until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(row["silenced_until"]))
            state += f", silenced until {until}"
        notify = ", ".join(row["notify"]) or "nobody"
        click.echo(f"{row['number']:>3}  {row['alert']}  [{state}] → {notify}")


@alerts.command()
@click.argument("alert")
@click.option(
    "--for", "duration", required=True, metavar="DURATION", help="How long: 30m, 6h, 2d, 1w."
)
@click.option("--note", default=None, help="Why (shown with the silence).")
@click.pass_context
def silence(ctx: click.Context, alert: str, duration: str, note: str | None) -> None:
    """Tell no destination about ALERT (its number from `kpi alerts list`, or its name) for a
    while; its state is still tracked, and a change is told once the silence ends."""
    from kpi_collector.commands.core import load
    from kpi_collector.config.plain import parse_duration
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.alert_states import LONGEST_SILENCE
    from kpi_collector.store.alert_states import silence as store_silence

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    if seconds > LONGEST_SILENCE:  # 999999999999999w ended past any date: a traceback
        raise click.BadParameter(
            f"{duration!r} is longer than a silence lasts (at most 100 years, 5200w); to stop "
            "an alert for good, remove its `notify:` or the alert",
            param_hint="--for",
        )
    config = load(ctx, need_secrets=False)
    key = _find(config, alert).key
    until = time.time() + seconds
    store = HistoryStore(config.store_url)
    try:
        store_silence(store, key, until=until, note=note)
    finally:
        store.close()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(until))
    click.echo(f"silenced {key!r} until {when}")


@alerts.command()
@click.argument("alert")
@click.pass_context
def unsilence(ctx: click.Context, alert: str) -> None:
    """End ALERT's silence (its number or name)."""
    from kpi_collector.commands.core import load
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.alert_states import unsilence as store_unsilence

    config = load(ctx, need_secrets=False)
    key = _find(config, alert).key
    store = HistoryStore(config.store_url)
    try:
        ended = store_unsilence(store, key)
    finally:
        store.close()
    click.echo(f"{key!r} is no longer silenced" if ended else f"{key!r} was not silenced")


@alerts.command("test")
@click.option(
    "-d", "--destination", "only", multiple=True, metavar="NAME", help="Only this destination."
)
@click.pass_context
def test_alerts(ctx: click.Context, only: tuple[str, ...]) -> None:
    """Send a test message through each destination an alert notifies (exit 1 if one fails)."""
    import asyncio

    from kpi_collector.alerts.engine import send_test
    from kpi_collector.commands.core import load

    config = load(ctx)
    named = [n for a in config.settings.alerts for n in a.notify]
    disabled = {d.name for d in config.destinations if not d.enabled}
    skipped = [n for n in dict.fromkeys(named) if n in disabled and not only]
    names = [n for n in dict.fromkeys(only or named) if n not in skipped]
    for name in skipped:  # switched off: alerts skip it too
        click.echo(f"{name}: disabled (skipped)")
    if not names:
        if skipped:
            ctx.exit(0)
        raise click.UsageError("no alert notifies a destination: add `notify:` to an alert")
    destinations = {d.name: d for d in config.destinations if d.enabled}
    from kpi_collector.errors import unknown_names

    problem = unknown_names("destination", names, destinations)
    if problem:
        raise click.BadParameter(
            problem.replace("no destination", "no enabled destination", 1),
            param_hint="--destination",
        )
    errors = asyncio.run(send_test([destinations[n] for n in names]))
    for name in names:
        click.echo(f"{name}: {'failed: ' + errors[name] if name in errors else 'sent'}")
    ctx.exit(1 if errors else 0)


def _find(config: Config, ref: str) -> Alert:
    """The alert that `ref` names: its number in `kpi alerts list` (1-based) or its key."""
    found = config.settings.alerts
    if ref.isdigit() and 1 <= int(ref) <= len(found):
        return found[int(ref) - 1]
    for alert in found:
        if alert.key == ref:
            return alert
    import difflib

    keys = [a.key for a in found]
    close = difflib.get_close_matches(ref, keys, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = f" (1–{len(found)}, or one of: {', '.join(map(repr, keys))})" if keys else ""
    raise click.BadParameter(f"no alert {ref!r}{hint}{listed}", param_hint="ALERT")


def _rows(config: Config) -> list[dict[str, Any]]:
    from kpi_collector.alerts.engine import is_firing
    from kpi_collector.schedule.health import missing_store
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.alert_states import OWN, AlertState, alert_states, silences

    states: list[AlertState] = []
    silenced: dict[str, float] = {}
    fires: dict[str, bool] = {}
    if missing_store(config) is None:  # no store yet: never checked (listing creates nothing)
        store = HistoryStore(config.store_url)
        try:
            states = [s for s in alert_states(store) if s.destination == OWN]
            silenced = silences(store)
            now = time.time()
            rules = config.settings.alerts
            fires = {s.alert: is_firing(rules, s, store, now) for s in states if s.active}
        finally:
            store.close()
    rows = []
    for number, alert in enumerate(config.settings.alerts, 1):
        mine = [s for s in states if s.alert == alert.key or s.alert.startswith(alert.key + " [")]
        # true, but its `for:` had not passed at the last check: told to nobody yet
        firing = [s.alert for s in mine if s.active and fires[s.alert]]
        pending = [s.alert for s in mine if s.active and not fires[s.alert]]
        state = "true" if firing else ("pending" if pending else "ok")
        rows.append(
            {
                "number": number,
                "alert": alert.key,
                "state": "never checked" if not mine else state,
                "true_for": firing,
                "pending_for": pending,
                "silenced_until": silenced.get(alert.key),
                "notify": alert.notify,
            }
        )
    return rows
