"""`kpi schedule`: run the pipeline on its cron, unattended, for months.

Jobs (see `plan`): `main` collects every source without its own `schedule` and delivers to
every destination without one, on the config's `schedule`; `source:<name>` collects (and
stores) one source on its own `schedule`; `destination:<name>` delivers the newest stored run
to one destination on its own `schedule`. Alerts are checked after every collecting job.

- Runs never overlap: each job holds the store's run lock (`kpi_collector.store.lock`),
  which manual `kpi run`s take too; a job waits for a running one (up to `lock_wait`),
  then is tried again a heartbeat later until it runs (or its next fire time comes).
- Exactly once per fire time, whatever starts the job (`kpi schedule`, `--once`, a crontab's
  `--run`, on one host or several): once a job holds the run lock it checks again that its
  fire time has not been served meanwhile, else it does nothing ("nothing is due"). A run's
  `started_at` is when it really started, after the wait.
- A fire time that passes while a job still runs is a misfire: logged, then skipped
  (`misfire: skip`, the default) or run once late when it is at most `misfire_grace` seconds
  old (`misfire: run_late`).
- Missed runs: on start, each job whose newest fire time is newer than its last success (or
  that never succeeded) runs once, however many fire times were missed; the same holds when
  the machine wakes up from sleep while the scheduler runs.
- SIGTERM / SIGINT: the job in progress finishes writing, then the scheduler exits 0.
- A heartbeat row in the store says the scheduler is alive, what it does and when it runs next.

The loop is small and reads time from an injectable `Clock`, so tests can travel in time;
APScheduler's triggers (through `Cron`) compute the fire times.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kpi_collector.config.cron import Cron
from kpi_collector.errors import KpiError
from kpi_collector.format import plural
from kpi_collector.secrets import redact
from kpi_collector.store.heartbeats import (
    SCHEDULER,
    heartbeats,
    job_states,
    record_job,
    write_heartbeat,
)
from kpi_collector.store.lock import LockBusy, Mutex, RunLock, store_mutex

if TYPE_CHECKING:
    from kpi_collector.config.plain import Config
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.run.result import RunResult
    from kpi_collector.store import HistoryStore, RunRecord

log = logging.getLogger("kpi_collector.schedule")
T = TypeVar("T")

HEARTBEAT_EVERY = 60.0  # seconds between heartbeats while idle (and the longest sleep)
LOCK_WAIT = 600.0  # seconds a job waits for a run in progress before it is skipped
SUCCESS = ("ok", "partial")
RETRY_BACKOFF = 300.0  # seconds before a collecting job retries a scheduled destination's delivery
RETRY_BACKOFF_MAX = 6 * 3600.0


class Clock(Protocol):
    """Where the scheduler reads the time and how it waits (tests pass a fake one)."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float, stop: threading.Event) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(seconds)


@dataclass(frozen=True)
class Job:
    """Something the scheduler runs on a cron."""

    name: str  # main | source:<name> | destination:<name>
    cron: Cron
    sources: tuple[str, ...] = ()  # collected and stored
    destinations: tuple[str, ...] = ()  # delivered to

    @property
    def collects(self) -> bool:
        return bool(self.sources)

    def describe(self) -> str:
        parts = []
        if self.sources:
            parts.append(f"collect {', '.join(self.sources)}")
        if self.destinations:
            parts.append(f"deliver to {', '.join(self.destinations)}")
        return "; ".join(parts) or "nothing"


def plan(config: Config) -> list[Job]:
    """The jobs of a config, in the order they run when due together: sources with their own
    schedule, then the main job, then destinations with their own schedule."""
    tz = config.tz
    # (name, own cron); entries left out for unset variables (a config loaded without
    # secrets, for a deployment snippet) are still scheduled
    sources = [(s.name, s.schedule) for s in config.sources if s.enabled]
    destinations = [(d.name, d.schedule) for d in config.destinations if d.enabled]
    sources += [(u.name, u.schedule) for u in config.unchecked if u.kind == "sources"]
    destinations += [(u.name, u.schedule) for u in config.unchecked if u.kind == "destinations"]
    jobs = [
        Job(f"source:{name}", Cron(cron, tz), sources=(name,)) for name, cron in sources if cron
    ]
    main = Job(
        "main",
        Cron(config.settings.schedule, tz),
        sources=tuple(name for name, cron in sources if not cron),
        destinations=tuple(name for name, cron in destinations if not cron),
    )
    if main.sources or main.destinations:
        jobs.append(main)
    jobs += [
        Job(f"destination:{name}", Cron(cron, tz), destinations=(name,))
        for name, cron in destinations
        if cron
    ]
    return jobs


def capped_jitter(job: Job, fire: datetime, jitter: float) -> float:
    """The longest wait (seconds) of `job` after its fire time `fire` under `jitter:`: at most
    half the way to the next fire time (a job collected every 10 minutes under `jitter: 1h`
    would otherwise wait past its next fire times). Deployment snippets use it too."""
    following = job.cron.next_after(fire) if jitter else None
    if following is not None:
        jitter = min(jitter, (following.timestamp() - fire.timestamp()) / 2)
    return jitter


@dataclass
class JobResult:
    job: str
    status: str  # ok | partial | failed | skipped
    summary: str
    problems: list[str] = field(default_factory=list)  # what failed, one line each


class Scheduler:
    """Runs a config's jobs on their crons until `stop` is set."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
        heartbeat_every: float = HEARTBEAT_EVERY,
        lock_wait: float = LOCK_WAIT,
        retry_backoff: float = RETRY_BACKOFF,
        store: HistoryStore | None = None,
    ) -> None:
        from kpi_collector.store import HistoryStore

        self.config = config
        self.jobs = plan(config)
        self.clock: Clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self.heartbeat_every = heartbeat_every
        self.lock_wait = lock_wait
        self.retry_backoff = retry_backoff
        self.store = store or HistoryStore(config.store_url)  # `store`: read another one
        self._started = 0.0
        self._serving = False  # the scheduler's heartbeat row is the long-running daemon's only
        self._mutex: Mutex | None = None  # the daemon's own lock, while it serves

    def job(self, name: str) -> Job:
        for job in self.jobs:
            if job.name == name:
                return job
        known = ", ".join(j.name for j in self.jobs)
        raise KpiError(f"no scheduled job named {name!r}; jobs: {known}")

    # when -------------------------------------------------------------------------------------

    def last_success(self, job: Job) -> float | None:
        """When the job last succeeded: its own record, or for `main` a manual full `kpi run`,
        for a source job the newest value it collected."""
        from kpi_collector.store.runs import last_manual_run, newest_collected

        state = job_states(self.store).get(job.name)
        found: list[float | None] = [state.last_success_at] if state else []
        if job.name == "main":
            found.append(last_manual_run(self.store, job.sources, statuses=SUCCESS))
        elif job.collects:
            found.append(newest_collected(self.store, job.sources[0]))
        times = [float(t) for t in found if t is not None]
        return max(times) if times else None

    def due(self, now: datetime) -> list[Job]:
        """Jobs whose newest fire time (at or before `now`) is newer than their last success."""
        return [job for job in self.jobs if self.is_due(job, job.cron.previous(now))]

    def is_due(self, job: Job, fire: datetime | None) -> bool:
        """Whether the fire time `fire` of `job` still waits for a run: no success since."""
        if fire is None:
            return False
        last = self.last_success(job)
        return last is None or last < fire.timestamp()

    def fire_to_serve(self, job: Job, now: datetime) -> datetime | None:
        """The fire time a run of `job` started at `now` by something else than this loop
        (`--run` from a crontab line) serves: the newest at or before `now`, or, between a
        change of the clocks and the late fire time of a skipped time of day (02:30 firing at
        03:30), that late one, since cron runs the skipped line right after the change."""
        return job.cron.late_fire(now) or job.cron.previous(now)

    def next_times(self, after: datetime) -> dict[str, datetime | None]:
        return {job.name: job.cron.next_after(after) for job in self.jobs}

    # running ----------------------------------------------------------------------------------

    def run_job(self, job: Job, *, fire: datetime | None = None) -> JobResult:
        """Run one job now, holding the run lock; record and log its outcome. Never raises a
        KpiError: a failing job must not stop the scheduler.

        With `fire` (the fire time this run serves), a job that finds, once it holds the lock,
        that another process already served that fire time does nothing and returns status
        `not_due` (not recorded: nothing ran). With `jitter:` such a run starts up to that
        long after the fire time (at most half the way to its next one), at random: a job
        that starts later anyway (after the jobs due with it, or catching up) waits only for
        what is left, if anything; one stopped during that wait does not start (status
        `skipped`, not recorded)."""
        if fire is not None and (jitter := self.jitter(job, fire)):
            start = fire.timestamp() + random.uniform(0, jitter)  # spreading load, not a secret
            delay = start - self.clock.now().timestamp()
            if delay > 0:
                log.info("%s: starting in %.0f s (jitter)", job.name, delay)
                self._wait(delay)
                if self.stop.is_set():  # not started yet: nothing in progress to finish
                    outcome = JobResult(
                        job.name, "skipped", "skipped: stopping before its jitter ended"
                    )
                    log.warning("%s: %s", job.name, outcome.summary)
                    return outcome
        log.info("%s: %s", job.name, job.describe())
        self._beat("running", detail=f"job {job.name}")
        return self._run_job(job, fire)

    def jitter(self, job: Job, fire: datetime) -> float:
        """The longest wait (seconds) of `job` after its fire time `fire` (`capped_jitter`)."""
        return capped_jitter(job, fire, self.config.settings.jitter_seconds)

    def _async(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a job's coroutine in an event loop of its own. Under systemd with
        `WatchdogSec=`, a task *in that loop* pings the watchdog, so the pings stop when the
        job really hangs (a loop blocked, or `asyncio.run` waiting forever at its end for a
        source's thread that never returns) and systemd restarts the scheduler; a thread
        beside the job would keep pinging for a job that hangs forever."""
        from kpi_collector.schedule.sdnotify import notify, watchdog_interval

        interval = watchdog_interval() if self._serving else None
        if interval is None:
            return asyncio.run(work)
        every = interval

        async def ping() -> None:
            while True:
                notify("WATCHDOG=1")
                await asyncio.sleep(every)

        async def main() -> T:
            pinger = asyncio.create_task(ping())
            try:
                return await work
            finally:
                pinger.cancel()

        return asyncio.run(main())

    def _run_job(self, job: Job, fire: datetime | None) -> JobResult:
        lock = RunLock(
            self.store,
            wait=self.lock_wait,
            detail=f"kpi schedule {job.name}",
            stop=self.stop,
            waiting=self._waiting(job),
        )
        try:
            if not _take_run_lock(lock):
                why = "stopping" if self.stop.is_set() else f"locked for {self.lock_wait:.0f} s"
                raise LockBusy(f"another run holds the store ({why})")
            try:
                if fire is not None and not self.is_due(job, fire):
                    outcome = JobResult(
                        job.name, "not_due", f"nothing is due: {self._when(fire)} already ran"
                    )
                    log.info("%s: %s", job.name, outcome.summary)
                    return outcome
                started = self.clock.now()  # after the wait: when the run really starts
                if job.collects:
                    outcome = self._collect(job, started, lock)
                else:
                    outcome = self._deliver(job, started, lock, fire)
            finally:
                lock.release()
        except LockBusy as exc:
            outcome = JobResult(job.name, "skipped", f"skipped: {exc}")
        except KpiError as exc:
            outcome = JobResult(job.name, "failed", redact(str(exc)))
        except Exception as exc:  # a bug must not end an unattended scheduler
            log.debug("job %s", job.name, exc_info=True)
            outcome = JobResult(job.name, "failed", redact(f"{type(exc).__name__}: {exc}"))
        level = logging.INFO if outcome.status in SUCCESS else logging.WARNING
        log.log(level, "%s: %s", job.name, outcome.summary)
        try:
            record_job(
                self.store,
                job.name,
                fired_at=self.clock.now().timestamp() if fire is None else fire.timestamp(),
                status=outcome.status,
                error=None
                if outcome.status == "ok"
                else "; ".join(outcome.problems) or outcome.summary,
            )
        except KpiError as exc:
            log.warning("could not record job %s: %s", job.name, exc)
        if outcome.status in SUCCESS:
            self._ping()
        return outcome

    def _waiting(self, job: Job) -> Callable[[], None] | None:
        """What a job waiting for the run lock calls between its tries: the daemon pings
        systemd's watchdog (the wait, up to `lock_wait`, is as long as `WatchdogSec=`) and
        beats at its usual pace."""
        if not self._serving:
            return None
        from kpi_collector.schedule.sdnotify import notify, watchdog_interval

        every = min(watchdog_interval() or self.heartbeat_every, self.heartbeat_every)
        last = {"ping": time.monotonic(), "beat": time.monotonic()}

        def waiting() -> None:
            now = time.monotonic()
            if now - last["beat"] >= self.heartbeat_every:
                last["beat"] = last["ping"] = now
                self._beat("running", detail=f"job {job.name}: waiting for the run lock")
            elif now - last["ping"] >= every:
                last["ping"] = now
                notify("WATCHDOG=1")

        return waiting

    def _ping(self) -> None:
        """The dead-man's switch: request `heartbeat_url` after a job that succeeded. A
        monitoring service that stops hearing it alerts, even when this process is dead."""
        url = self.config.settings.heartbeat_url
        if not url:
            return
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # http(s): checked at load
                answer.read(1024)
        except Exception as exc:  # a monitoring outage must not fail the job
            log.warning("heartbeat_url: %s", redact(str(exc)))

    def _pipeline(self, job: Job) -> Pipeline:
        from kpi_collector.pipeline import Pipeline

        pipeline = Pipeline.from_config(self.config)
        pipeline.trigger = "schedule"
        keep = set(job.destinations)
        pipeline.destinations = [d for d in pipeline.destinations if d.name in keep]
        return pipeline

    def _collect(self, job: Job, started: datetime, lock: RunLock) -> JobResult:
        pipeline = self._pipeline(job)
        clock = time.monotonic()
        try:
            result = self._async(
                pipeline.aprocess(only=list(job.sources), now=started, run_lock=lock)
            )
            self._retry_scheduled_destinations(job, result)
        finally:
            if pipeline.store is not None:
                pipeline.store.close()
        seconds = time.monotonic() - clock
        summary = (
            f"run {result.run_id}: {plural(len(result.values), 'value')}, "
            f"{plural(len(result.errors), 'error')} "
            f"in {seconds:.1f} s"
        )
        if result.delivered:
            summary += f"; delivered to {', '.join(dict.fromkeys(result.delivered))}"
        problems = [f"{where}: {message}" for where, message in result.errors.items()]
        problems += [f"delivery {n}: {m}" for n, m in result.delivery_errors.items()]
        problems = [redact(p) for p in problems]
        for problem in problems:
            log.warning("%s: %s", job.name, problem)
        if result.ok:
            status = "ok"
        elif result.values or not result.errors:
            status = "partial"
        else:
            status = "failed"
        return JobResult(job.name, status, summary, problems)

    def _retry_scheduled_destinations(self, job: Job, result: RunResult) -> None:
        """After a collecting job: retry the pending deliveries of destinations that have a
        schedule of their own, so a failure is not left until their next fire (a monthly
        digest two months later). Each waits `retry_backoff` * 2**(attempts-1) seconds (at most
        RETRY_BACKOFF_MAX) after its last attempt; failures land in the run's delivery errors."""
        from kpi_collector.pipeline import Pipeline
        from kpi_collector.store.deliveries import PENDING

        own = [
            d
            for d in self.config.destinations
            if d.enabled and d.schedule and d.name not in job.destinations
        ]
        if not own:
            return
        pipeline = Pipeline.from_config(self.config)
        assert pipeline.store is not None
        try:
            engine = pipeline.delivery_engine()
            now = time.time()
            due: list[str] = []
            for record in engine.records(status=PENDING):
                wait = min(self.retry_backoff * 2 ** max(record.attempts - 1, 0), RETRY_BACKOFF_MAX)
                names = {d.name for d in own}
                if record.destination in names and now - record.updated_at >= wait:
                    due.append(record.destination)
            if not due:
                return
            for outcome in self._async(engine.deliver_pending(list(dict.fromkeys(due)))):
                if not outcome.ok:
                    result.delivery_errors[outcome.destination] = redact(
                        f"{outcome.period}: {outcome.error}"
                    )
                    if not outcome.refused and outcome.attempts:  # not failed nor dropped
                        result.delivery_pending.add(outcome.destination)
                else:
                    result.delivered.append(outcome.destination)
        finally:
            pipeline.store.close()

    def _deliver(
        self, job: Job, started: datetime, lock: RunLock, fire: datetime | None = None
    ) -> JobResult:
        """Deliver a stored run to the job's destinations (and what is pending), in the period
        of the fire time it serves: the newest run at or before that time (a digest caught up
        on the 20th for the 31st's fire carries the 31st's values), else the newest run of
        that period."""
        pipeline = self._pipeline(job)
        store = pipeline.store
        assert store is not None
        lock.register()  # the run lock, taken by run_job, now says who holds it
        reference = fire or started
        try:
            engine = pipeline.delivery_engine()
            newest = self._run_for(store, pipeline, job, reference)
            if newest is not None:
                engine.record_run(newest.id, reference)
            outcomes = self._async(engine.deliver_pending())
        finally:
            store.close()
        failed = [o for o in outcomes if not o.ok]
        for outcome in failed:
            log.warning(
                "%s: %s %s: %s", job.name, outcome.destination, outcome.period, outcome.error
            )
        problems = [redact(f"{o.destination} {o.period}: {o.error}") for o in failed]
        if newest is None and not outcomes:
            return JobResult(job.name, "ok", "nothing stored yet to deliver")
        sent = ", ".join(f"{o.destination} {o.period}" for o in outcomes if o.ok)
        summary = f"run {newest.id if newest else '-'} delivered: {sent or 'nothing new'}"
        if failed:  # "nothing new" must never hide a delivery that failed
            summary = f"{summary}; failed: {'; '.join(problems)}"
        return JobResult(job.name, "failed" if failed else "ok", summary, problems)

    def _run_for(
        self, store: HistoryStore, pipeline: Pipeline, job: Job, reference: datetime
    ) -> RunRecord | None:
        """The run a destination job delivers for `reference`: a run of the main job (or a
        manual run of all its sources), never a run of a source's own job, which holds only
        that source's values (a weekly digest would carry one source's number). Without
        sources in the main job, any run with values."""
        from kpi_collector.store.periods import period_key
        from kpi_collector.store.runs import runs_collecting

        main = next((j.sources for j in self.jobs if j.name == "main"), ())
        every = {d.name: d.every for d in pipeline.destinations}.get(
            job.destinations[0] if job.destinations else "", "run"
        )

        def period(ts: float) -> str:
            day = datetime.fromtimestamp(ts, self.config.tz).date()
            return "run" if every == "run" else period_key(day, every)

        wanted = period(reference.timestamp())
        newest_of_period: RunRecord | None = None  # among the runs after `reference`
        for run in runs_collecting(store, main):  # newest first
            if run.started_at <= reference.timestamp():
                return run if period(run.started_at) == wanted else newest_of_period or run
            if newest_of_period is None and period(run.started_at) == wanted:
                newest_of_period = run
        return newest_of_period

    def run_due(self, now: datetime | None = None) -> list[JobResult]:
        """Run each job that is due (once, however many fire times it missed)."""
        now = now or self.clock.now()
        results = []
        for job in self.due(now):
            if self.stop.is_set():
                break
            fire = job.cron.previous(now)
            assert fire is not None  # due() found it
            # the jobs before it may have run past its next fire time
            results.append(self.run_job(job, fire=self._newest_fire(job, fire, self.clock.now())))
        return results

    def serve(self) -> None:
        """Run until `stop` is set: catch up on missed runs, then each job on its cron."""
        mutex = store_mutex(self.store, SCHEDULER)
        if not mutex.try_acquire():
            other = heartbeats(self.store).get(SCHEDULER)
            who = f": {other.describe()}" if other else ""
            raise LockBusy(f"another `kpi schedule` is running on this store{who}")
        from kpi_collector.schedule.sdnotify import notify

        self._mutex = mutex
        try:
            self._serving = True
            self._started = self.clock.now().timestamp()
            notify("READY=1")
            self._beat("idle", started_at=self._started)
            self._log_plan()
            now = self.clock.now()
            missed = self.due(now)
            if missed:
                log.info("catching up: %s", ", ".join(j.name for j in missed))
            caught_up: dict[str, datetime | None] = {}
            held: dict[str, datetime] = {}  # jobs the run lock kept out: not tried before
            for job in missed:
                if self.stop.is_set():
                    break
                fire = job.cron.previous(now)
                assert fire is not None  # due() found it
                fire = self._newest_fire(job, fire, self.clock.now())
                outcome = self.run_job(job, fire=fire)
                caught_up[job.name] = self._next_fire(job, fire, outcome, held)
            # the others' fire times from the start on: one that passed while the jobs
            # caught up (or waited for a manual run's lock) runs late, never a day later
            upcoming = {**self.next_times(now), **caught_up}
            while not self.stop.is_set():
                now = self.clock.now()
                for job in self.jobs:
                    fire = upcoming[job.name]
                    if fire is None or fire.timestamp() > now.timestamp() or self.stop.is_set():
                        continue
                    if job.name in held and held[job.name].timestamp() > now.timestamp():
                        continue
                    fire = self._newest_fire(job, fire, now)
                    outcome = self.run_job(job, fire=fire)
                    upcoming[job.name] = self._next_fire(job, fire, outcome, held)
                self._sleep(
                    {
                        name: max(fire, held[name], key=lambda t: t.timestamp())
                        if fire is not None and name in held
                        else fire
                        for name, fire in upcoming.items()
                    }
                )
        finally:
            try:
                self._beat("stopped", next_run_at=None, detail=None)
            except KpiError as exc:
                log.warning("could not record the stop: %s", exc)
            self._serving = False
            self._mutex = None
            notify("STOPPING=1")
            mutex.release()
            self.store.close()
            log.info("scheduler stopped")

    def _next_fire(
        self, job: Job, fire: datetime, outcome: JobResult, held: dict[str, datetime]
    ) -> datetime | None:
        """The fire time `job` waits for after a run for `fire` ended with `outcome`. A job
        the run lock kept out (another run held the store for all of `lock_wait`: a long
        backfill, a hung run) has not served `fire`: it is tried again a heartbeat later
        (`held`), as a restart would catch it up, instead of waiting for its next fire time
        (a daily job lost for the day)."""
        if outcome.status == "skipped" and not self.stop.is_set():
            again = self.clock.now() + timedelta(seconds=self.heartbeat_every)
            held[job.name] = again
            log.warning("%s: trying again at %s", job.name, self._when(again))
            return fire
        held.pop(job.name, None)
        return self._after_run(job, fire)

    def _newest_fire(self, job: Job, fire: datetime, now: datetime) -> datetime:
        """The fire time a run of `job` started at `now` for its awaited fire time `fire`
        serves: the newest at or before `now`. Newer ones passed while the machine slept or
        other jobs ran: the job runs once, for the newest, as on start; serving the oldest
        recorded a success older than the run (a restart ran the job again, a digest got an
        old period's values) and logged the others as misfires of a run that never was."""
        newest = job.cron.previous(now)
        if newest is None or newest.timestamp() <= fire.timestamp():
            return fire
        log.info(
            "%s: fire times from %s to %s passed (the machine slept, or other jobs ran): "
            "running once, for the newest",
            job.name,
            self._when(fire),
            self._when(newest),
        )
        return newest

    def _after_run(self, job: Job, fire: datetime) -> datetime | None:
        """The job's next fire time after a run that served `fire`. Fire times that passed
        during the run (or while the machine slept) are misfires: logged, then skipped, or
        with `misfire: run_late` the newest runs once if it is at most `misfire_grace` old."""
        now = self.clock.now()
        following = job.cron.next_after(fire)
        missed: list[datetime] = []
        while (
            following is not None
            and following.timestamp() <= now.timestamp()
            and len(missed) < 1000
        ):
            missed.append(following)
            following = job.cron.next_after(following)
        if not missed:
            return following
        settings = self.config.settings
        late = now - missed[-1]
        if settings.misfire == "run_late" and late.total_seconds() <= settings.misfire_grace:
            log.warning(
                "%s: %d fire time%s passed while it ran; running the newest (%s) late",
                job.name,
                len(missed),
                "s" if len(missed) > 1 else "",
                self._when(missed[-1]),
            )
            return missed[-1]
        log.warning(
            "%s: %d fire time%s passed while it ran (newest %s): skipped (misfire: %s%s)",
            job.name,
            len(missed),
            "s" if len(missed) > 1 else "",
            self._when(missed[-1]),
            settings.misfire,
            f", {late.total_seconds():.0f} s late > misfire_grace {settings.misfire_grace:g} s"
            if settings.misfire == "run_late"
            else "",
        )
        return following

    def _when(self, moment: datetime) -> str:
        return moment.astimezone(self.config.tz).strftime("%Y-%m-%d %H:%M %Z")

    def _sleep(self, upcoming: dict[str, datetime | None]) -> None:
        times = [t for t in upcoming.values() if t is not None]
        # the earliest instant: two times of one zone compare by their wall clock (02:30 CEST,
        # 00:30 UTC, would come after 02:00 CET, 01:00 UTC, in the hour that repeats)
        soonest = min(times, key=lambda t: t.timestamp()) if times else None
        self._beat("idle", next_run_at=soonest.timestamp() if soonest else None, detail=None)
        if self.stop.is_set():
            return
        wait = self.heartbeat_every
        if soonest is not None:
            wait = min(wait, (soonest - self.clock.now()).total_seconds())
        # never sleep long: a machine waking from suspend should notice the time within a beat
        self.clock.sleep(max(wait, 0.0), self.stop)

    def _wait(self, seconds: float) -> None:
        """Sleep `seconds` (less once `stop` is set), beating at least every heartbeat, so a
        long jitter never looks like a hang to systemd's watchdog."""
        end = self.clock.now().timestamp() + seconds
        while not self.stop.is_set() and (left := end - self.clock.now().timestamp()) > 0:
            self.clock.sleep(min(left, self.heartbeat_every), self.stop)
            if end - self.clock.now().timestamp() > 0:
                self._beat("idle")

    def _beat(self, state: str, **fields: object) -> None:
        if not self._serving:  # a one-shot run (--once, --run) leaves the daemon's row alone
            return
        from kpi_collector.schedule.sdnotify import notify

        notify("WATCHDOG=1")
        keep = getattr(self._mutex, "keep", None)  # a database session's lock: still ours?
        if keep is not None:
            keep()
        try:
            write_heartbeat(
                self.store, SCHEDULER, now=self.clock.now().timestamp(), state=state, **fields
            )
        except KpiError as exc:
            log.warning("heartbeat: %s", exc)

    def _log_plan(self) -> None:
        log.info(
            "scheduler started for %s (store %s, time zone %s)",
            self.config.path or "the config",
            redact(self.config.store_url),
            self.config.timezone,
        )
        for line in self.plan_lines(self.clock.now()):
            log.info("  %s", line)

    def plan_lines(self, now: datetime) -> list[str]:
        """A line per job: name, cron, next fire time, what it does."""
        lines = []
        for job in self.jobs:
            following = job.cron.next_after(now)
            when = following.strftime("%Y-%m-%d %H:%M %Z") if following else "never"
            lines.append(f"{job.name:<24} {job.cron.expr:<16} next {when}: {job.describe()}")
        return lines


def _take_run_lock(lock: RunLock) -> bool:
    """Take the run lock without registering (the run registers it when it starts writing)."""
    try:
        lock.acquire(register=False)
    except LockBusy:
        return False
    return True


EXIT_INTERRUPTED = 130  # 128 + SIGINT: what the CLI returns for a stop by a second signal
HARD_STOP_AFTER = 2.0  # seconds the unwinding of a second signal may take before a hard exit
_START_WAIT = 1.0  # seconds the hard stop waits for a command being started (fork, exec: ms)


@contextmanager
def stopping_on_signals(
    stop: threading.Event, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[None]:
    """Within: SIGTERM / SIGINT set `stop` (the job in progress finishes); a second one ends
    the process now: KeyboardInterrupt unwinds the job (its command groups are killed, its
    lock released) and, if that does not end it within `HARD_STOP_AFTER` seconds (a source's
    thread that never returns, which `asyncio.run` waits for), the process kills what its
    command sources started and exits 130 at once. The previous handlers come back
    afterwards."""
    hard_stop: list[threading.Timer] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: stopping now", name)
            if not hard_stop:
                timer = threading.Timer(HARD_STOP_AFTER, _exit_now)
                timer.daemon = True
                hard_stop.append(timer)
                timer.start()
            raise KeyboardInterrupt
        # set before logging: a second signal can run this handler again while it logs
        stop.set()
        log.info("%s: finishing the job in progress, then stopping", name)

    previous = {signum: signal.signal(signum, handle) for signum in signals}
    try:
        yield
    finally:
        for timer in hard_stop:  # it unwound in time
            timer.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _exit_now() -> None:
    """The hard stop of a second signal: kill the process groups of running `command`
    sources (their children would outlive us), say so, and exit 130 without waiting."""
    import os
    import sys

    from kpi_collector.collect.groups import kill_all_at_exit

    kill_all_at_exit(wait=_START_WAIT)
    _last_words(f"a job did not stop within {HARD_STOP_AFTER:g} s: exiting without waiting for it")
    with suppress(OSError, ValueError):
        sys.stderr.flush()
    with suppress(OSError):
        os.write(2, b"interrupted\n")
    os._exit(EXIT_INTERRUPTED)


_LOCK_WAIT = 0.5  # seconds the hard stop waits for a log handler's lock


def _last_words(message: str) -> None:
    """Log warning `message` and flush the log handlers, never waiting long for a lock.

    The second signal's KeyboardInterrupt may land in the main thread between a handler's
    `acquire()` and its `try:` (`logging.Handler.handle`), which leaves that lock taken for
    good; `log.warning` or `logging.shutdown()` would then wait for ever in the hard stop.
    A handler whose lock stays taken gets the line written straight to stderr instead."""
    import os

    if log.getEffectiveLevel() > logging.WARNING:  # -q; no lock, unlike `isEnabledFor`
        return
    record = log.makeRecord(log.name, logging.WARNING, __file__, 0, message, (), None)
    for handler in _handlers(log):
        lock = handler.lock
        if lock is not None and not lock.acquire(timeout=_LOCK_WAIT):
            with suppress(Exception):
                os.write(2, f"{handler.format(record)}\n".encode(errors="replace"))
            continue
        try:
            if record.levelno >= handler.level:
                handler.emit(record)
            handler.flush()
        except Exception:  # the last words of a process that exits now: nothing to add
            pass
        finally:
            if lock is not None:
                lock.release()


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of `logger` reaches (as `Logger.callHandlers` finds them)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found += current.handlers
        if not current.propagate:
            break
        current = current.parent
    if not found and logging.lastResort is not None:
        found.append(logging.lastResort)
    return found
