"""The celery executor: sources collected by `kpi worker` processes on any machine, through
Celery (RabbitMQ or Redis as the broker); the run itself (lock, storing, formulas,
deliveries, alerts) stays with the coordinator, `kpi run` or `kpi schedule`.

- A task message (`kpi_collector.collect_batch`) carries the names of a batch of sources,
  the config's fingerprint and the run's moment: never config text, never a secret. Each
  worker loads its own `kpi.yaml` with its own environment for secrets.
- A worker whose config fingerprint differs from the run's refuses the batch. The coordinator
  sends a refused batch once more, straight to a live worker of its queue that has the run's
  fingerprint (the worker's own queue, Celery's `worker_direct`); when there is none, or it
  refuses too, the batch's sources fail with one line naming the worker and both
  fingerprints.
- A worker collects a batch with the engine of a local run (`run.engine.collect_all`): one
  asyncio loop per batch, its HTTP client opened and closed inside it, nothing shared
  across the pool's forked processes.
- Failure semantics (Celery's `acks_late` + `task_reject_on_worker_lost`): a batch is
  acknowledged after it is collected, so a worker that dies mid-batch hands it back to the
  broker and another worker collects it; a prefetch multiplier of 1 keeps unstarted batches
  in the queue for whichever worker has room. A batch can therefore be collected twice: the
  coordinator keeps the first outcome of each source and drops the others, so each source
  is stored at most once per run.
- Redis as the broker redelivers a message not acknowledged within its visibility timeout
  (celery#5935): it is set to `wait` + 60 s, beyond the time the coordinator waits, so a
  batch that takes long is not collected twice. A worker killed outright (SIGKILL, a lost
  machine) never hands its batch back, and that timeout would outlast the run: the
  coordinator looks every few seconds for its batches that Redis holds as delivered but
  no live worker holds (`_LostBatches`), and hands each such batch back to its queue.
- Results expire after `wait` + 1 h (Redis keys), and the coordinator deletes each one once
  it has read it. With `rpc://` results, a worker skips a batch whose coordinator's reply
  queue is gone (its run was stopped or killed): nobody could take its answer.
- A queue none of whose batches has answered for `wait` seconds is given up: its
  outstanding sources fail ("no worker answered for queue `kpi` within 600 s"), never a hang.
  Its batches are revoked, and expire once the run can no longer take their answers, so a
  worker that starts later (and never heard of the revocation) skips them.

Celery is imported only here and only when the celery executor is used (extra
`kpi-collector[celery]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from kpi_collector.config.plain import Config, PlainCeleryExecutor
from kpi_collector.errors import ConfigError, KpiError
from kpi_collector.run.engine import SourceFailure, SourceOutcome, collect_all
from kpi_collector.secrets import redact

if TYPE_CHECKING:
    from celery import Celery

    from kpi_collector.config.models import CeleryExecutor, Defaults
    from kpi_collector.sources.base import Source

log = logging.getLogger("kpi_collector.celery")
T = TypeVar("T")

TASK_COLLECT = "kpi_collector.collect_batch"
INFO_COMMAND = "kpi_info"  # `celery inspect kpi_info`: a worker's fingerprint and version
DEFAULT_QUEUE = "kpi"
VISIBILITY_MARGIN = 60.0  # seconds the Redis visibility timeout stays above `wait`
RESULT_KEEP = 3600.0  # seconds a result outlives `wait` when nobody reads it
#: seconds a read from Redis (its blocking reads wait 1 s) may take, and one from RabbitMQ by
#: a coordinator (`celery_app(client=True)`)
SOCKET_TIMEOUT = 15.0


def fingerprint(config: Config) -> str:
    """The config's fingerprint (`config.models.config_fingerprint`): 16 hex digits of what
    decides how sources are collected, as written in the file before `${VAR}` expansion;
    secrets come from each machine's environment and are no part of it. Raises ConfigError
    for a config that was not loaded from a file (workers need one of their own)."""
    if config.fingerprint is not None:
        return config.fingerprint
    if config.path is None:
        raise ConfigError("the celery executor needs a config file that workers load too")
    import yaml

    from kpi_collector.config.plain import config_fingerprint

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return config_fingerprint(yaml.load(config.path.read_text(encoding="utf-8-sig"), loader))


def config_queues(config: Config) -> dict[str, list[str]]:
    """Queue -> the names of the enabled sources that name it (`queue:`, default `kpi`), in
    config order; read from the file as written, so that sources left out for unset secrets
    (commands that load no secrets) count too."""
    import yaml

    found: dict[str, list[str]] = {}
    for source in config.sources:
        if source.enabled:
            found.setdefault(source.queue, []).append(source.name)
    if config.path is not None and config.path.is_file():
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(config.path.read_text(encoding="utf-8-sig"), loader) or {}
        known = {s.name for s in config.sources}
        for item in data.get("sources") or []:
            if not isinstance(item, dict) or item.get("enabled") is False:
                continue
            name = str(item.get("name") or item.get("type"))
            if name not in known:
                found.setdefault(str(item.get("queue") or DEFAULT_QUEUE), []).append(name)
    return found


def default_backend(broker: str) -> str:
    """The result backend when the config names none: replies as messages (`rpc://`) with
    RabbitMQ, the broker's own database with Redis."""
    return broker if broker.startswith(("redis://", "rediss://")) else "rpc://"


def celery_app(executor: CeleryExecutor, *, client: bool = False) -> Celery:
    """A Celery app for `executor`, with the settings the failure semantics rest on (see the
    module's docstring). `client`: the app of a coordinator or of `kpi workers`, which only
    send and wait with timeouts of their own: with RabbitMQ, a read or write that waits
    longer than SOCKET_TIMEOUT fails (a worker's or Celery's tools' app waits on an idle
    connection by design, and RabbitMQ's heartbeats guard it). Raises ModuleNotFoundError
    (a hint to install kpi-collector[celery]) when Celery is missing."""
    from celery import Celery

    _readable(executor.broker, "broker")
    if executor.backend:
        _readable(executor.backend, "backend")
    wait = executor.wait_seconds
    app = Celery(
        "kpi_collector",
        broker=executor.broker,
        backend=executor.backend or default_backend(executor.broker),
        set_as_current=False,
    )
    transport: dict[str, Any] = {"visibility_timeout": int(wait + VISIBILITY_MARGIN)}
    if executor.broker.startswith(("redis://", "rediss://")):
        # a Redis that stops answering (frozen, a network that drops packets) fails a read
        # after this long instead of blocking it for ever, and the run with it
        transport |= {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": 5.0}
    elif client:
        # a RabbitMQ that stops answering mid-run (frozen, a network that drops packets):
        # declaring the queue of a batch, closing a channel after a revocation and closing
        # the connections all wait for its answer, with no timeout of their own
        transport |= {"read_timeout": SOCKET_TIMEOUT, "write_timeout": SOCKET_TIMEOUT}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # each worker also consumes `<name>.dq2`: a refused batch is sent again to one worker
        worker_direct=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_expires=int(wait + RESULT_KEEP),
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        task_default_queue=DEFAULT_QUEUE,
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        # task events, so that Flower and `celery events` see the batches
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
        redis_socket_timeout=SOCKET_TIMEOUT,
        redis_socket_connect_timeout=5.0,
    )
    app.task(name=TASK_COLLECT, bind=True)(_collect_batch)
    return app


def _readable(url: str, key: str) -> None:
    """Raises ConfigError when kombu cannot read `url` (`executor.<key>`; each URL of a
    `;`-separated failover list): a `#`, `/` or `?` written as is in a password ends the
    URL's host part there, and every command died with a traceback about the port (whose
    text shows the password's first characters, so it is not repeated here)."""
    from kombu.utils.url import url_to_parts

    for part in url.split(";"):
        try:
            url_to_parts(part.strip())
        except ValueError:
            raise ConfigError(
                f"executor.{key}: the URL cannot be read: write its port as a number, and a "
                "`#`, `/` or `?` in its user or password percent-encoded (%23, %2F, %3F)"
            ) from None


def _shown(url: str) -> str:
    """`url` as a message shows it: each URL of a `;`-separated failover list with its
    password masked (kombu masks only the first)."""
    from kombu.utils.url import maybe_sanitize_url

    return redact(";".join(maybe_sanitize_url(part) for part in url.split(";")))


# ---- the worker's side ----------------------------------------------------------------


@dataclass
class _WorkerConfig:
    """What a worker process collects with: its own config, loaded once before the pool forks."""

    config: Config
    fingerprint: str
    sources: dict[str, Source] = field(default_factory=dict)
    #: the pool's processes: a machine's `defaults.concurrency`, `per_host` and
    #: `render_concurrency` are shared out among them, so a worker never has more requests
    #: or rendered pages in flight than the config says (each process has its own Chromium)
    pool: int = 1

    def batch_defaults(self) -> Defaults:
        """The defaults one batch is collected with: the config's, with `concurrency`,
        `per_host` and `render_concurrency` divided among the pool's processes (rounded
        up, at least 1 each)."""
        defaults = self.config.defaults
        return defaults.replaced(
            concurrency=max(1, -(-defaults.concurrency // self.pool)),
            per_host=max(1, -(-defaults.per_host // self.pool)),
            render_concurrency=max(1, -(-defaults.render_concurrency // self.pool)),
        )


_worker: _WorkerConfig | None = None


def _collect_batch(task: Any, names: list[str], run_fingerprint: str, now: str) -> dict[str, Any]:
    """The task: collect the sources named `names` for the run at `now` (ISO 8601), or refuse
    when this worker's config fingerprint is not `run_fingerprint`. Returns
    `{"worker", "fingerprint", "refused", "outcomes": [[source, {metric: value},
    [[metric, message, transient], ...], seconds, day], ...]}` (JSON; `day`: the ISO date a
    complete-days source's values describe when not yesterday, else null)."""
    hostname = str(getattr(task.request, "hostname", None) or socket.gethostname())
    if _run_is_gone(task):
        log.warning(
            "skipped a batch of %d sources: the run that sent it is gone (its coordinator was "
            "stopped or killed)",
            len(names),
        )
        return {"worker": hostname, "fingerprint": "", "refused": False, "outcomes": []}
    state = _worker
    if state is None or state.fingerprint != run_fingerprint:
        return {
            "worker": hostname,
            "fingerprint": state.fingerprint if state else "none",
            "refused": True,
            "outcomes": [],
        }
    sources = [state.sources[n] for n in names if n in state.sources]
    config = state.config
    outcomes = _run_batch(
        collect_all(
            sources,
            defaults=state.batch_defaults(),
            tz=ZoneInfo(config.timezone),
            base_dir=config.base_dir,
            now=datetime.fromisoformat(now),
        )
    )
    encoded: list[list[Any]] = [
        [
            o.source,
            o.values,
            [list(e) for e in o.errors],
            round(o.seconds, 4),
            o.day.isoformat() if o.day is not None else None,
        ]
        for o in outcomes
    ]
    unset = {u.name for u in config.unchecked if u.kind == "sources"}
    for name in names:
        if name in state.sources:
            continue
        message = (
            f"worker {hostname} cannot collect {name}: a variable it names is not set on that "
            "machine; set it there, or give the source a `queue:` of workers that have it"
            if name in unset
            else f"worker {hostname} has no enabled source named {name!r}"
        )
        encoded.append([name, {}, [[None, message, False]], 0.0])
    return {
        "worker": hostname,
        "fingerprint": state.fingerprint,
        "refused": False,
        "outcomes": encoded,
    }


def _run_is_gone(task: Any) -> bool:
    """True when the batch's answer has nowhere to go: with `rpc://` results (RabbitMQ's
    default here), the queue the coordinator reads its answers from is gone once the
    coordinator is (RabbitMQ deletes it with its last consumer). A batch its run left behind
    (a coordinator killed, or stopped while no worker could hear the revocation) would
    otherwise be collected for nobody, ahead of the next run's batches. False when it
    cannot tell (another result backend, the broker not answering)."""
    from celery.backends.rpc import RPCBackend

    reply_to = getattr(task.request, "reply_to", None)
    if not reply_to or not isinstance(task.backend, RPCBackend):
        return False
    try:
        with task.app.connection_for_read() as connection:
            channel = connection.channel()
            try:
                channel.queue_declare(queue=reply_to, passive=True)
            except connection.channel_errors as exc:
                return getattr(exc, "code", None) == 404  # NOT_FOUND
            channel.close()
    except Exception as exc:  # the broker is away: collect, as before
        log.debug("could not look for the run's reply queue: %s", redact(str(exc)))
    return False


def _run_batch(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, except that the threads of the loop's default executor are not
    waited for at the end: a source's thread still running after its timeout (a plugin's
    `asyncio.to_thread`) would hold the whole batch's answer until it ends, and the
    coordinator would fail every source of the batch as unanswered."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(work)
    finally:
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # the executor is shut down without waiting for its threads


_registered_info = False


def register_info_command() -> None:
    """`kpi_info`, a remote-control command every kpi worker answers (`kpi workers`,
    `celery inspect kpi_info`): its config fingerprint and kpi-collector version."""
    global _registered_info
    if _registered_info:
        return
    from celery.worker.control import inspect_command

    from kpi_collector._version import __version__

    @inspect_command()
    def kpi_info(state: Any) -> dict[str, str]:
        return {
            "fingerprint": _worker.fingerprint if _worker else "none",
            "version": __version__,
        }

    _registered_info = True


def run_worker(
    config: Config,
    *,
    concurrency: int | None = None,
    queues: Sequence[str] = (DEFAULT_QUEUE,),
    hostname: str | None = None,
    loglevel: str = "INFO",
) -> int:
    """Run a Celery worker for `config` until it is stopped (SIGTERM: warm shutdown, the
    batches in hand are finished; SIGQUIT or a second SIGTERM: at once, and the broker
    hands the unacknowledged batches to another worker). `concurrency`: batches collected
    at once, each in its own process of Celery's prefork pool (default: CPUs), which share
    the config's `defaults.concurrency` and `per_host` out among them; `queues`:
    the queues it consumes; `hostname`: its node name (default `kpi@<host>`). Returns the
    worker's exit code. Raises ConfigError when the config's executor is not celery, and
    KpiError (one line, the password masked) when the broker cannot be reached or refuses
    the worker at its start (a wrong password or vhost, nothing listening: Celery would
    retry a refused login or a missing vhost for ever, and die with a traceback); a broker
    lost later is waited for."""
    global _worker
    executor = config.settings.executor
    if not isinstance(executor, PlainCeleryExecutor):
        raise ConfigError("kpi worker needs `executor: {type: celery, broker: ...}` in the config")
    pool = concurrency or os.cpu_count() or 1
    _worker = _WorkerConfig(
        config, fingerprint(config), {s.name: s for s in config.sources if s.enabled}, pool
    )
    register_info_command()
    from celery.utils.nodenames import host_format

    app = celery_app(executor)
    _reach_broker(app, executor)
    worker = app.Worker(
        hostname=host_format(hostname or "kpi@%h"),
        queues=list(queues),
        concurrency=concurrency,
        loglevel=loglevel,
        task_events=True,
        optimization="fair",
    )
    worker.start()
    return int(getattr(worker, "exitcode", 0) or 0)


def _reach_broker(app: Celery, executor: CeleryExecutor) -> None:
    """Connect to `app`'s broker once and open a channel; raises KpiError, one line with
    the password masked, when the broker cannot be reached or refuses (every error the
    transport raises: kombu's OperationalError, amqp's AccessRefused and NotAllowed, a
    Redis ResponseError)."""
    from kombu.exceptions import OperationalError

    with app.connection_for_write() as connection:
        unreachable = (
            OperationalError,
            *connection.connection_errors,
            *connection.channel_errors,
        )
        try:
            connection.ensure_connection(max_retries=0)
            connection.default_channel  # noqa: B018 - Redis selects its database here
        except unreachable as exc:
            where = _shown(executor.broker)
            raise KpiError(redact(f"cannot reach the broker {where}: {_cause(exc)}")) from None


# ---- the coordinator's side ------------------------------------------------------------


@dataclass
class Batch:
    """Sources sent together to one queue."""

    queue: str
    names: list[str]


def batches(sources: Sequence[Source], size: int) -> list[Batch]:
    """`sources` by queue (in order of first appearance), cut into batches of at most `size`."""
    by_queue: dict[str, list[str]] = {}
    for source in sources:
        by_queue.setdefault(getattr(source, "queue", DEFAULT_QUEUE), []).append(source.name)
    return [
        Batch(queue, names[i : i + size])
        for queue, names in by_queue.items()
        for i in range(0, len(names), size)
    ]


def _patience(batches: int, wait: float) -> float:
    """Seconds after which a batch of a queue of `batches` batches is of no use to its run,
    and expires (a worker that receives it later skips it): the coordinator waits at most
    `wait` seconds of silence per answer of the queue, two answers per batch at most (a
    refusal, then the answer of the worker it was sent to again), plus one `wait` for the
    time the sending took and the machines' clocks. Without an expiry, batches left in a
    queue no worker consumed (their revocation reached nobody) would all be collected, for
    nothing, ahead of the next runs' batches once a worker starts."""
    return (2 * batches + 1) * wait


class _Silent(Exception):
    """Raised from the wait loop when a queue has been silent for `wait` seconds."""


class _Stopped(Exception):
    """Raised from the wait loop when the run is cancelled."""


class _Resent(Exception):
    """Raised from the wait loop when a refused batch was sent again: the answers waited
    for are gathered anew, with its own."""


def refused(value: Any) -> bool:
    """True when a task's result says its worker refused the batch (another config)."""
    return isinstance(value, dict) and bool(value.get("refused"))


def _decode(
    value: Any,
    batch: Batch,
    run_fingerprint: str,
    *,
    none_other: bool = False,
    on_disk: tuple[Path, str] | None = None,
) -> list[SourceOutcome]:
    """The outcomes in a task's result; the batch's sources fail with one line when the
    worker refused it (`none_other`: no other live worker of its queue has the run's
    config, so it was not sent again; `on_disk`: the coordinator's config file and its
    fingerprint now, when that is no longer the run's) or the task failed."""
    if refused(value):
        theirs = value.get("fingerprint")
        start = (
            f"worker {value.get('worker')} refused the batch: its config fingerprint "
            f"{theirs} is not the run's {run_fingerprint}"
        )
        if on_disk is not None:  # the coordinator is the one behind: the file was edited
            path, now = on_disk
            also = "" if now == theirs else ", and give every worker that file"
            message = (
                f"{start}: {path} changed since this coordinator read it (now {now}); restart "
                f"the coordinator (kpi schedule reads its config when it starts){also}"
            )
            return _failed(batch.names, message, transient=False)
        alone = (
            f", and no other live worker of queue `{batch.queue}` has the run's"
            if none_other
            else ""
        )
        message = f"{start}{alone}; give every worker the coordinator's kpi.yaml and restart it"
        return _failed(batch.names, message, transient=False)
    if isinstance(value, dict) and isinstance(value.get("outcomes"), list):
        out = []
        for source, values, errors, seconds, *day in value["outcomes"]:
            out.append(
                SourceOutcome(
                    str(source),
                    {str(k): float(v) for k, v in values.items()},
                    [SourceFailure(m, redact(str(msg)), bool(t)) for m, msg, t in errors],
                    float(seconds),
                    # a worker of an earlier version sends no day
                    date.fromisoformat(day[0]) if day and day[0] else None,
                )
            )
        return out
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else repr(value)
    text = " ".join(text.split())  # one line, whatever the worker's exception said
    return _failed(batch.names, redact(f"the worker failed on the batch: {text}"), True)


def keep_first(
    outcomes: dict[str, SourceOutcome],
    batch: Batch,
    answer: Any,
    run_fingerprint: str,
    *,
    none_other: bool = False,
    on_disk: tuple[Path, str] | None = None,
) -> list[SourceOutcome]:
    """Add a worker's `answer` for `batch` (the task's result) to `outcomes` (by source
    name): only sources of the batch, and only those without an outcome yet, so that a
    batch delivered twice (a worker lost mid-batch, a Redis visibility timeout) is stored
    once. Returns the outcomes added, in the answer's order. `none_other`, `on_disk`: see
    `_decode`."""
    added = []
    wanted = set(batch.names)
    decoded = _decode(answer, batch, run_fingerprint, none_other=none_other, on_disk=on_disk)
    for outcome in decoded:
        if outcome.source in outcomes or outcome.source not in wanted:
            continue  # a second delivery of the batch: the first outcome stays
        outcomes[outcome.source] = outcome
        added.append(outcome)
    return added


def _failed(names: Sequence[str], message: str, transient: bool) -> list[SourceOutcome]:
    return [SourceOutcome(n, errors=[SourceFailure(None, message, transient)]) for n in names]


async def collect_celery(
    sources: Sequence[Source],
    *,
    executor: CeleryExecutor,
    config_fingerprint: str,
    now: datetime,
    on_done: Callable[[SourceOutcome], None] | None = None,
    config_path: Path | None = None,
) -> list[SourceOutcome]:
    """Collect `sources` through Celery workers: dispatch them in batches of
    `executor.batch_size` to their queues, take each batch's outcomes as they arrive
    (`on_done` is called with each source's outcome on this loop) and return one outcome per
    source in the order of `sources`. A source answered twice (a batch redelivered after a
    worker died) keeps its first outcome. Never raises for an unreachable broker, a silent
    queue or a refusing worker: those sources' outcomes hold the error (one line each).
    `config_path`: the file the config was loaded from; a refusal checks whether it has
    changed since, to name the coordinator as the one to restart.
    Raises ModuleNotFoundError without Celery (kpi-collector[celery])."""
    if not sources:
        return []
    loop = asyncio.get_running_loop()

    def emit(outcome: SourceOutcome) -> None:
        if on_done is not None:
            loop.call_soon_threadsafe(on_done, outcome)

    stop = threading.Event()
    terminated = _stop_on_sigterm(loop, stop)
    try:
        got = await asyncio.to_thread(
            _dispatch_and_gather,
            list(sources),
            executor,
            config_fingerprint,
            now,
            emit,
            stop,
            config_path,
        )
    except BaseException:  # cancelled (Ctrl-C, a stopping scheduler): the thread lets go too
        stop.set()
        raise
    finally:
        if terminated is not None:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signal.SIGTERM)
    if terminated is not None and terminated.is_set():
        # the batches still out are revoked: end the process as SIGTERM does (the run stays
        # `running`, and the next run marks it interrupted, as for a local run)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    lost = "the worker's answer left this source out"
    return [got.get(s.name) or _failed([s.name], lost, True)[0] for s in sources]


def _stop_on_sigterm(
    loop: asyncio.AbstractEventLoop, stop: threading.Event
) -> threading.Event | None:
    """Under a default SIGTERM disposition (`kpi run`; `kpi schedule` handles SIGTERM
    itself) in the main thread: a SIGTERM sets `stop`, so the coordinator revokes the
    batches still out before the process ends, instead of dying at once and leaving them
    for workers to collect for nobody. Returns the event a SIGTERM sets, None when no
    handler was added."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    terminated = threading.Event()

    def on_sigterm() -> None:
        terminated.set()
        stop.set()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError):  # no signal handling on this loop
        return None
    return terminated


def _dispatch_and_gather(
    sources: list[Source],
    executor: CeleryExecutor,
    config_fingerprint: str,
    now: datetime,
    emit: Callable[[SourceOutcome], None],
    stop: threading.Event,
    config_path: Path | None = None,
) -> dict[str, SourceOutcome]:
    """Send the batches, then take their answers until none is pending: each queue silent
    for `wait` seconds is given up; `stop` (checked about every second) ends the wait at
    once, revoking what is still out. `config_path`: see `collect_celery`."""
    from celery.result import AsyncResult

    try:
        app = celery_app(executor, client=True)
    except ConfigError as exc:  # a URL kombu cannot read: no batch can go, the run says why
        unread = {o.source: o for o in _failed([s.name for s in sources], str(exc), False)}
        for outcome in unread.values():
            emit(outcome)
        return unread
    wait = executor.wait_seconds
    outcomes: dict[str, SourceOutcome] = {}
    pending: dict[str, Batch] = {}
    handles: list[AsyncResult] = []
    resent: set[int] = set()  # id() of the batches already sent again after a refusal
    checked: dict[Path, str | None] = {}  # the config file's fingerprint now, once read
    finder = _LiveWorkers(executor, config_fingerprint)  # where a refused batch goes
    rescuer: _LostBatches | None = None  # with Redis: the batches of workers killed outright
    try:
        moment = now.isoformat()
        todo = batches(sources, executor.batch_size)
        per_queue: dict[str, int] = {}
        for batch in todo:
            per_queue[batch.queue] = per_queue.get(batch.queue, 0) + 1
        expires = {q: _patience(n, wait) for q, n in per_queue.items()}
        backend_url = executor.backend or default_backend(executor.broker)
        reaching = "broker"
        try:
            # the broker first, on its own: sending to a Redis that is down fails in Celery's
            # result store, after its retries, with a message about that store
            with app.connection_for_write() as connection:
                connection.ensure_connection(**app.conf.task_publish_retry_policy)
            reaching = "result backend"  # a database backend connects when it is made
            if backend_url.startswith(("redis://", "rediss://")):  # touched by every send
                app.backend.client.ping()
            elif not app.backend.supports_native_join:  # a database, polled for the answers
                app.backend.get_task_meta("kpi-collector-probe")
            reaching = "broker"
            with app.producer_or_acquire() as producer:
                while todo:
                    batch = todo[0]
                    handle = app.send_task(
                        TASK_COLLECT,
                        args=[batch.names, config_fingerprint, moment],
                        queue=batch.queue,
                        routing_key=batch.queue,
                        producer=producer,
                        expires=expires[batch.queue],
                    )
                    todo.pop(0)
                    pending[handle.id] = batch
                    handles.append(handle)
        except Exception as exc:  # kombu's OperationalError and the like: no broker
            if reaching == "broker":
                where = _shown(executor.broker)
                message = redact(f"cannot send to the broker {where}: {_cause(exc)}")
            else:
                where = _shown(backend_url)
                message = redact(f"cannot reach the result backend {where}: {_cause(exc)}")
            for batch in todo:
                for outcome in _failed(batch.names, message, True):
                    outcomes[outcome.source] = outcome
                    emit(outcome)
        heard = dict.fromkeys((b.queue for b in pending.values()), time.monotonic())
        if pending and executor.broker.startswith(("redis://", "rediss://")):
            rescuer = _LostBatches(executor, pending)
            rescuer.start()

        def take(task_id: str, value: Any) -> None:
            batch = pending.pop(task_id, None)
            if batch is None:
                return
            heard[batch.queue] = time.monotonic()
            _forget(app, task_id)
            none_other = False
            if refused(value) and id(batch) not in resent:
                resent.add(id(batch))
                target = finder.worker_for(batch.queue)
                if target is not None:
                    handle = _resend(
                        app, batch, config_fingerprint, moment, target, value, expires[batch.queue]
                    )
                    if handle is not None:
                        pending[handle.id] = batch
                        handles.append(handle)
                        return
                none_other = target is None
            on_disk = None
            if refused(value) and config_path is not None:
                if config_path not in checked:  # once per run: the file is read again
                    from kpi_collector.config.loader import file_fingerprint

                    checked[config_path] = file_fingerprint(config_path)
                now_on_disk = checked[config_path]
                if now_on_disk is not None and now_on_disk != config_fingerprint:
                    on_disk = (config_path, now_on_disk)
            for outcome in keep_first(
                outcomes, batch, value, config_fingerprint, none_other=none_other, on_disk=on_disk
            ):
                emit(outcome)

        def check() -> None:
            if stop.is_set():
                raise _Stopped
            clock = time.monotonic()
            open_queues = {b.queue for b in pending.values()}
            if any(clock - heard[q] >= wait for q in open_queues):
                raise _Silent

        try:
            _gather(app, handles, pending, take, check, heard, wait, outcomes, emit)
        except _Stopped:
            _revoke(app, list(pending))
        except Exception as exc:  # the result backend (or the broker, for rpc://) failed
            # rpc:// answers are messages on the broker: it is the one to name
            where = _shown(backend_url)
            if backend_url.startswith("rpc://"):
                where = f"the broker {_shown(executor.broker)}"
            message = redact(f"cannot read the answers from {where}: {_cause(exc)}")
            unanswered = list(pending)
            for task_id, batch in list(pending.items()):
                del pending[task_id]
                for outcome in _failed(
                    [n for n in batch.names if n not in outcomes], message, True
                ):
                    outcomes[outcome.source] = outcome
                    emit(outcome)
            _revoke(app, unanswered)
    finally:
        if rescuer is not None:
            rescuer.done.set()
            # bounded: a look may hang on a broker that stopped answering (the run must not)
            rescuer.join(timeout=5.0)
        app.close()
    return outcomes


def _gather(
    app: Celery,
    handles: list[Any],
    pending: dict[str, Batch],
    take: Callable[[str, Any], None],
    check: Callable[[], None],
    heard: dict[str, float],
    wait: float,
    outcomes: dict[str, SourceOutcome],
    emit: Callable[[SourceOutcome], None],
) -> None:
    """Take answers until no batch is pending (`take`, which may send a refused batch again
    and add its handle to `handles`), with `check` between waits."""
    from celery.result import ResultSet

    if app.backend.supports_native_join:
        while pending:
            waiting = ResultSet([h for h in handles if h.id in pending], app=app)

            def between(sent: int = len(handles)) -> None:
                check()
                # a batch sent again is no member of `waiting`: its answer would wait for
                # every batch sent before it, and a silent one would fail it with them
                if len(handles) != sent:
                    raise _Resent

            try:
                waiting.join_native(
                    callback=take, propagate=False, on_interval=between, interval=0.5
                )
            except _Silent:
                _give_up(app, pending, heard, wait, outcomes, emit)
            except _Resent:
                continue
    else:  # a backend without push: ask each pending result in turn
        while pending:
            for handle in [h for h in handles if h.id in pending]:
                if handle.ready():
                    take(handle.id, handle.get(propagate=False, disable_sync_subtasks=False))
            try:
                check()
            except _Silent:
                _give_up(app, pending, heard, wait, outcomes, emit)
            time.sleep(0.2)


def _cause(exc: BaseException) -> str:
    """What went wrong, in one line: the first connection error in `exc`'s chain of causes
    (Celery wraps a refused connection into "Retry limit exceeded ..." over three lines),
    else `exc` itself."""
    from kombu.exceptions import OperationalError

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    found = next(
        (
            e
            for e in chain
            if str(e).strip()
            and (
                isinstance(e, (OSError, OperationalError))
                or type(e).__name__.endswith(
                    ("ConnectionError", "TimeoutError", "OperationalError")
                )
            )
        ),
        exc,
    )
    orig = getattr(found, "orig", None)  # SQLAlchemy's wrapper: the driver's own words
    if isinstance(orig, BaseException) and str(orig).strip():
        found = orig
    if any(isinstance(e, OSError) and e.errno in (errno.EAGAIN, errno.EWOULDBLOCK) for e in chain):
        # a socket's read or write timeout (SO_RCVTIMEO), as the system words it: "Resource
        # temporarily unavailable", which kombu may have wrapped
        return f"timed out: no answer within {SOCKET_TIMEOUT:g} s"
    return " ".join((str(found) or type(found).__name__).split())


class _LiveWorkers:
    """The live workers with the run's config, for refused batches: the broker is asked at
    most once every `ttl` seconds (a ping waits its whole timeout; asked per refused batch,
    a stale worker refusing 200 batches would cost minutes), and each queue's batches go to
    its workers in turn."""

    def __init__(self, executor: CeleryExecutor, run_fingerprint: str, ttl: float = 10.0):
        self.executor = executor
        self.run_fingerprint = run_fingerprint
        self.ttl = ttl
        self._found: list[WorkerInfo] = []
        self._asked: float | None = None
        self._turn: dict[str, int] = {}

    def worker_for(self, queue: str) -> str | None:
        """The name of a live worker that consumes `queue` and has the run's config
        fingerprint (the next one in turn), None when there is none or the broker cannot
        say."""
        clock = time.monotonic()
        if self._asked is None or clock - self._asked >= self.ttl:
            try:
                self._found = live_workers(self.executor)
            except KpiError as exc:
                log.warning("%s", exc)
                self._found = []
            self._asked = time.monotonic()
        names = [
            w.name
            for w in self._found
            if queue in w.queues and w.fingerprint == self.run_fingerprint
        ]
        if not names:
            return None
        turn = self._turn.get(queue, 0)
        self._turn[queue] = turn + 1
        return names[turn % len(names)]


class _LostBatches(threading.Thread):
    """With Redis as the broker: hands back to its queue each batch of the run that Redis
    holds as delivered (in kombu's `unacked` hash) while no live worker holds it (Celery's
    `query_task`), seen so in two looks `every` seconds apart (a batch just delivered is in
    the hash a moment before its worker records it). Such a batch's worker was killed
    outright, and Redis itself would hand it back only after its visibility timeout,
    beyond the run's `wait`. A worker that was only slow to answer collects the batch a
    second time at worst: the run keeps each source's first outcome.

    Reads `pending` (task id -> batch), which the coordinator's thread changes, by copies;
    runs until `done` is set."""

    def __init__(self, executor: CeleryExecutor, pending: dict[str, Batch], every: float = 3.0):
        super().__init__(name="kpi-lost-batches", daemon=True)
        self.executor = executor
        self.pending = pending
        self.every = every
        self.done = threading.Event()

    def run(self) -> None:
        app = celery_app(self.executor, client=True)
        suspects: set[str] = set()
        try:
            while not self.done.wait(self.every):
                try:
                    suspects = self.look(app, suspects)
                except Exception as exc:  # the broker is away: Redis's own timeout still holds
                    log.debug("could not look for lost batches: %s", redact(str(exc)))
        finally:
            app.close()

    def look(self, app: Celery, suspects: set[str]) -> set[str]:
        """One look: hands back the batches lost in this look and in the one before;
        returns the ids of those lost in this one only."""
        import json

        ours = self.pending.copy()  # one step under the GIL: the other thread changes it
        if not ours:
            return set()
        with app.connection_for_read() as connection:
            channel: Any = connection.default_channel
            delivered: dict[str, Any] = {}  # task id -> delivery tag
            for tag, raw in channel.client.hscan_iter(channel.unacked_key):
                try:
                    task_id = json.loads(raw)[0]["headers"]["id"]
                except (ValueError, LookupError, TypeError):
                    continue
                if task_id in ours:
                    delivered[task_id] = tag
            if not delivered:
                return set()
            replies = app.control.inspect(timeout=2.0).query_task(*delivered) or {}
            held = {task_id for reply in replies.values() for task_id in reply or {}}
            lost = {task_id for task_id in delivered if task_id not in held}
            for task_id in sorted(lost & suspects):
                channel.qos.restore_by_tag(delivered[task_id], leftmost=True)
                log.warning(
                    "a batch of queue %s was held by a worker that is gone: handed back to "
                    "the queue",
                    ours[task_id].queue,
                )
            return lost - suspects


def _resend(
    app: Celery,
    batch: Batch,
    run_fingerprint: str,
    moment: str,
    target: str,
    answer: Any,
    expires: float,
) -> Any:
    """Send a refused `batch` once more, to worker `target`'s own queue, expiring after
    `expires` seconds; its handle, or None when the broker cannot take it."""
    from celery.utils.nodenames import worker_direct

    try:
        handle = app.send_task(
            TASK_COLLECT,
            args=[batch.names, run_fingerprint, moment],
            queue=worker_direct(target),
            expires=expires,
        )
    except Exception as exc:  # the broker went away since: the refusal stands
        log.warning("could not send a refused batch again: %s", redact(str(exc)))
        return None
    log.info(
        "worker %s refused a batch of queue %s (config fingerprint %s): sent again to %s",
        answer.get("worker"),
        batch.queue,
        answer.get("fingerprint"),
        target,
    )
    return handle


def _give_up(
    app: Celery,
    pending: dict[str, Batch],
    heard: dict[str, float],
    wait: float,
    outcomes: dict[str, SourceOutcome],
    emit: Callable[[SourceOutcome], None],
) -> None:
    """Fail the outstanding sources of every queue silent for `wait` seconds, and revoke
    their batches (a worker that starts later skips them)."""
    clock = time.monotonic()
    silent = []
    for task_id, batch in list(pending.items()):
        if clock - heard[batch.queue] < wait:
            continue
        del pending[task_id]
        silent.append(task_id)
        message = f"no worker answered for queue `{batch.queue}` within {wait:g} s"
        for outcome in _failed([n for n in batch.names if n not in outcomes], message, True):
            outcomes[outcome.source] = outcome
            emit(outcome)
    _revoke(app, silent)


def _revoke(app: Celery, task_ids: Sequence[str]) -> None:
    """Revoke the batches nobody waits for any more (a worker that gets one later skips
    it), all in one message: a broker that stopped answering costs its timeout once, not
    once per batch."""
    if not task_ids:
        return
    try:
        app.control.revoke(list(task_ids))
    except Exception as exc:  # the broker may be what is gone
        log.warning("could not revoke %d batches: %s", len(task_ids), redact(str(exc)))


def _forget(app: Celery, task_id: str) -> None:
    """Delete a result the run has read (a no-op for `rpc://`, whose replies are messages)."""
    try:
        app.backend.forget(task_id)
    except Exception as exc:
        log.debug("could not delete result %s: %s", task_id, redact(str(exc)))


# ---- workers, as `kpi workers` lists them ---------------------------------------------


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker: its node name, the queues it consumes, its config fingerprint and
    kpi-collector version ("?" when it did not say)."""

    name: str
    queues: tuple[str, ...]
    fingerprint: str
    version: str


def live_workers(executor: CeleryExecutor, *, timeout: float = 2.0) -> list[WorkerInfo]:
    """The workers that answer Celery's ping within `timeout` seconds, by name, with their
    queues (`inspect active_queues`) and `kpi_info`. Raises KpiError when the broker cannot
    be reached."""
    from kombu.exceptions import OperationalError

    app = celery_app(executor, client=True)
    try:
        control = app.control
        with app.connection_for_read() as connection:
            # what the transport raises when the broker cannot be reached or used: kombu's
            # OperationalError, and amqp's own (a refused login is AccessRefused, a
            # channel error)
            unreachable = (
                OperationalError,
                *connection.connection_errors,
                *connection.channel_errors,
            )
        try:
            pings = _merge(control.ping(timeout=timeout))
            if not pings:
                return []
            names = sorted(pings)
            # the workers that answered are known: stop waiting once each of them has
            inspect = control.inspect(destination=names, timeout=timeout, limit=len(names))
            queues = inspect.active_queues() or {}
            info = _merge(
                control.broadcast(
                    INFO_COMMAND, destination=names, reply=True, timeout=timeout, limit=len(names)
                )
            )
        except unreachable as exc:
            where = _shown(executor.broker)
            raise KpiError(redact(f"cannot reach the broker {where}: {_cause(exc)}")) from None
    finally:
        app.close()
    from celery.utils.nodenames import worker_direct

    return [
        WorkerInfo(
            name,
            # a worker's own queue (`worker_direct`) is no queue of the config's
            tuple(
                sorted(
                    q["name"]
                    for q in queues.get(name) or []
                    if q["name"] != worker_direct(name).name
                )
            ),
            str((info.get(name) or {}).get("fingerprint", "?")),
            str((info.get(name) or {}).get("version", "?")),
        )
        for name in names
    ]


def _merge(replies: list[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for reply in replies or []:
        out.update(reply)
    return out
