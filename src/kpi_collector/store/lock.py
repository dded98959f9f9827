"""One run at a time per history store, across processes and machines.

The mutual exclusion is a lock the operating system or the database releases by itself when
its holder dies, so a crashed run can never leave the store locked forever:

- SQLite: an exclusive `flock` on `<database>.lock` beside the database file;
- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection held for the run;
- MariaDB / MySQL: a named lock (`GET_LOCK`), also bound to the holding connection;
- an in-memory SQLite store (one process by definition): a lock inside this process.

Beside it, the holder writes who it is into the store's `heartbeats` table (`run` row: pid,
host, start, a heartbeat every 10 s) and deletes the row when it lets go. A row found by the
next holder means the previous one died without letting go: that stale holder is logged and
taken over, its run, still `running` in the store, is marked `interrupted`, and the process
groups its `command` sources left (rows `group:<pgid>`, see `collect.groups`) are killed when
they are on this host. A process that
cannot get the lock within `wait` seconds raises `LockBusy` naming the holder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from kpi_collector.collect import groups
from kpi_collector.errors import KpiError, StoreError
from kpi_collector.secrets import redact
from kpi_collector.store.heartbeats import (
    GROUP,
    RUN,
    Heartbeat,
    delete_heartbeat,
    forget_groups,
    heartbeats,
    mark_interrupted,
    process_groups,
    record_group,
    seconds_text,
    this_process,
    write_heartbeat,
)
from kpi_collector.store.history import os_reason

if TYPE_CHECKING:
    import sqlalchemy as sa

    from kpi_collector.store import HistoryStore

log = logging.getLogger("kpi_collector.schedule")

HEARTBEAT_EVERY = 10.0  # seconds between the run lock holder's heartbeats
_POLL = 0.2
_LOCAL: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


class LockBusy(KpiError):
    """Another process holds the lock; `holder` says who, when the store knows."""

    transient = True

    def __init__(self, message: str, *, holder: Heartbeat | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class Mutex(Protocol):
    """A cross-process lock that never blocks: `try_acquire` takes it or says it cannot;
    the operating system or the database frees it when its process dies."""

    def try_acquire(self) -> bool:
        """Take the lock now: True when it is ours, False when someone else holds it."""
        ...

    def release(self) -> None:
        """Give the lock back; nothing happens when it is not held."""
        ...


def store_mutex(store: HistoryStore, name: str) -> Mutex:
    """The cross-process lock `name` ("run", "scheduler") that fits the store's database."""
    path = sqlite_path(store.url)
    if path:  # a file lock needs no database connection (nor SQLAlchemy's import)
        lock = Path(f"{path}.{name}.lock" if name != RUN else f"{path}.lock")
        return FileMutex(lock, store.url)
    url = store.engine.url
    backend = url.get_backend_name()
    key = f"kpi_collector:{name}"
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and "mode=memory" not in str(url):
            lock = Path(f"{database}.{name}.lock" if name != RUN else f"{database}.lock")
            return FileMutex(lock, store.url)
        return LocalMutex(f"{url}:{key}")
    if backend == "postgresql":
        return PostgresMutex(store.engine, key, store.url)
    if backend in ("mysql", "mariadb"):
        return MySqlMutex(store.engine, key, store.url)
    log.warning(
        "no cross-process lock for %s stores: runs are only kept apart within this process", backend
    )
    return LocalMutex(f"{url}:{key}")


def sqlite_path(url: str) -> str | None:
    """The file of a `sqlite:///path` store URL (`%XX` decoded, as SQLAlchemy opens it, so the
    lock file is beside it); None for other databases and memory."""
    from kpi_collector.config.plain import sqlite_file

    return sqlite_file(url)


class FileMutex:
    """An exclusive lock on a file (flock; LockFile on Windows), released when the process dies."""

    def __init__(self, path: Path, url: str = "") -> None:
        """`url`: the store's, which errors name (its password hidden)."""
        self.path = path
        self.url = url
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Lock the file (created with its folder if missing) without waiting: True when it
        is ours; StoreError for a file that cannot be opened (a file where its folder goes,
        a folder without write permission)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            store = f"store {redact(self.url)!r}" if self.url else "the store"
            raise StoreError(f"cannot open {store}: {os_reason(exc)}") from None
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Unlock and close the file; nothing happens when it is not held."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class LocalMutex:
    """A lock within this process (an in-memory store cannot be shared with another one)."""

    def __init__(self, key: str) -> None:
        with _LOCAL_GUARD:
            self._lock = _LOCAL.setdefault(key, threading.Lock())
        self._held = False

    def try_acquire(self) -> bool:
        """Take the in-process lock without waiting: True when it is ours."""
        self._held = self._lock.acquire(blocking=False)
        return self._held

    def release(self) -> None:
        """Give the lock back; nothing happens when this object does not hold it."""
        if self._held:
            self._held = False
            self._lock.release()


class _SessionLock:
    """A lock bound to a database session: held on its own connection, gone when it drops.

    Its key names the store as the server sees it (database and schema), however the URL
    spells the host, so every process using that store meets on the same lock."""

    identity_sql = ""
    acquire_sql = ""
    release_sql = ""

    def __init__(self, engine: sa.Engine, name: str, url: str = "") -> None:
        """`url`: the store's, which errors name (its password hidden)."""
        self.engine = engine
        self.name = name
        self.url = url or engine.url.render_as_string(hide_password=True)
        self._lost: str | None = None  # why the lock was lost, while it is (see `keep`)
        self._told: str | None = None  # the error last logged about it
        self.key: Any = None
        self._conn: sa.Connection | None = None

    def make_key(self, identity: str) -> Any:
        """The database's lock key for `identity` ("run@db.schema")."""
        raise NotImplementedError

    def try_acquire(self) -> bool:
        """Take the lock on a connection of its own, without waiting: True when it is ours.
        StoreError (one line, the password hidden) when the database fails (a server down,
        restarting): a scheduler's job then fails with that line, not a driver's traceback."""
        import sqlalchemy as sa

        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.SQLAlchemyError as exc:
            raise self._failed(exc) from None
        try:
            if self.key is None:
                identity = conn.execute(sa.text(self.identity_sql)).scalar()
                self.key = self.make_key(f"{self.name}@{identity}")
            got = conn.execute(sa.text(self.acquire_sql), {"key": self.key}).scalar()
        except sa.exc.SQLAlchemyError as exc:
            conn.close()
            raise self._failed(exc) from None
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def keep(self) -> bool:
        """Whether the lock is still ours, checked on its connection (the run lock's holder
        asks at each heartbeat): a database restart or a dropped connection ends the session
        and the lock with it, and another run could take the store while this one still
        writes. A lost lock is taken again as soon as it is free (logged); while another
        process holds it (or the database is away), an error says so, once. Never raises."""
        import sqlalchemy as sa

        conn = self._conn
        if conn is not None:
            try:
                conn.execute(sa.text("SELECT 1")).scalar()
                return True
            except Exception as exc:
                self._lost = f"{type(exc).__name__}, its connection dropped"
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()
            self._conn = None
        why = self._lost or "its connection dropped"
        try:
            again = self.try_acquire()
        except StoreError as exc:
            problem = f"the store's {self.what} was lost ({why}) and cannot be taken again: {exc}"
        else:
            if again:
                log.warning("the store's %s was lost (%s): taken again", self.what, why)
                self._lost = None
                self._told = None
                return True
            problem = (
                f"the store's {self.what} was lost ({why}) and another session holds it now: "
                f"{self.overlap}; trying again at each heartbeat"
            )
        if self._told != problem:
            log.error("%s", problem)
            self._told = problem
        return False

    @property
    def what(self) -> str:
        """The lock, as messages name it: `run lock`, `scheduler lock`."""
        return f"{self.name.rpartition(':')[2]} lock"

    @property
    def overlap(self) -> str:
        """What a lock taken by someone else means."""
        if self.name.endswith(f":{RUN}"):
            return "another run may be writing beside this one"
        return "another process may be doing the same work"

    def _failed(self, exc: Exception) -> StoreError:
        from kpi_collector.collect.sql import first_line

        return StoreError(f"cannot lock store {redact(self.url)!r}: {first_line(exc)}")

    def release(self) -> None:
        """Release the lock and close its connection (a dropped session has released it
        already); nothing happens when it is not held."""
        import sqlalchemy as sa

        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute(sa.text(self.release_sql), {"key": self.key})
        except Exception as exc:  # the session is gone, and the lock with it
            log.warning("releasing the store lock: %s", type(exc).__name__)
            conn.invalidate()
        finally:
            conn.close()


class PostgresMutex(_SessionLock):
    """`pg_try_advisory_lock` on a 64-bit key from the lock's name, database and schema."""

    identity_sql = "SELECT current_database() || '.' || current_schema()"
    acquire_sql = "SELECT pg_try_advisory_lock(:key)"
    release_sql = "SELECT pg_advisory_unlock(:key)"

    def make_key(self, identity: str) -> Any:
        """A signed 64-bit integer (what `pg_try_advisory_lock(bigint)` takes) hashed from
        `identity`."""
        digest = hashlib.blake2b(identity.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)


class MySqlMutex(_SessionLock):
    """`GET_LOCK` on a name from the lock's name and database (names are server-wide)."""

    identity_sql = "SELECT DATABASE()"
    acquire_sql = "SELECT GET_LOCK(:key, 0)"
    release_sql = "SELECT RELEASE_LOCK(:key)"

    def make_key(self, identity: str) -> Any:
        """A lock name hashed from `identity`: MySQL/MariaDB lock names are at most 64
        characters (MySQL manual, GET_LOCK)."""
        return f"kpi_collector:{hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()}"


def _take(
    mutex: Mutex,
    wait: float,
    stop: threading.Event | None,
    waiting: Callable[[], None] | None = None,
) -> bool:
    """Try `mutex` until it is ours (True), `wait` seconds passed or `stop` is set (False);
    `waiting` is called between the tries."""
    deadline = time.monotonic() + wait
    while not mutex.try_acquire():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            return False
        if waiting is not None:
            waiting()
        if stop is not None:
            stop.wait(min(_POLL, remaining))
        else:
            time.sleep(min(_POLL, remaining))
    return True


def wait_until_free(
    store: HistoryStore, *, wait: float, stop: threading.Event | None = None
) -> bool:
    """Wait until no run holds the store's run lock: True when free, False after `wait`
    seconds or once `stop` is set. (The run then takes the lock itself.)"""
    mutex = store_mutex(store, RUN)
    if not _take(mutex, wait, stop):
        return False
    mutex.release()
    return True


class RunLock:
    """Held while a run writes to the store: `with RunLock(store, wait=10): ...`.

    `wait` is how many seconds `acquire` waits for another holder (0: fail at once);
    `detail` says in the heartbeat row what holds the lock ("kpi run", "kpi schedule");
    the holder beats every `heartbeat_every` seconds, so others can tell a live holder from
    a dead one; a set `stop` event ends the wait early; `waiting` is called every fraction of
    a second while `acquire` waits (the scheduler pings systemd's watchdog). Raises LockBusy
    (naming the holder when the store knows it) when the lock stays taken, StoreError when
    the store fails.
    """

    def __init__(
        self,
        store: HistoryStore,
        *,
        wait: float = 0.0,
        detail: str = "kpi run",
        heartbeat_every: float = HEARTBEAT_EVERY,
        stop: threading.Event | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.waiting = waiting
        self.wait = wait
        self.detail = detail
        self.heartbeat_every = heartbeat_every
        self.stop = stop
        self.taken_over: Heartbeat | None = None  # the stale holder found on acquiring
        self.interrupted: list[int] = []  # its runs, now marked interrupted
        self._mutex: Mutex | None = None
        self.killed: list[int] = []  # pids of the stale holder's process groups, killed
        self._beating = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch = contextlib.ExitStack()
        self._groups: set[str] = set()  # rows of our process groups in the store
        self._groups_guard = threading.Lock()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    @property
    def held(self) -> bool:
        """True between a successful `acquire` and `release`."""
        return self._mutex is not None

    def acquire(self, *, register: bool = True) -> None:
        """Take the lock, waiting up to `wait` seconds (less if `stop` is set); else LockBusy.

        `register=False` only takes the cross-process lock; call `register()` before writing
        (a run does that in a thread while its first requests are out)."""
        mutex = store_mutex(self.store, RUN)
        if not _take(mutex, self.wait, self.stop, self.waiting):
            raise self._busy()
        self._mutex = mutex
        if register:
            self.register()

    def register(self) -> None:
        """Record this holder in the store (taking over a stale holder and marking its runs
        interrupted) and start the heartbeat; on failure the lock is released."""
        try:
            self._take_over()
            now = time.time()
            write_heartbeat(
                self.store, RUN, now=now, started_at=now, state="running", detail=self.detail
            )
        except BaseException:
            mutex, self._mutex = self._mutex, None
            if mutex is not None:
                mutex.release()
            raise
        for group in self._watch.enter_context(groups.watching(self._group_event)):
            self._group_event("started", group)
        self._beating.clear()
        self._thread = threading.Thread(target=self._beat, name="kpi-run-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat, mark this holder's run interrupted when it did not finish (a
        Ctrl-C, an error mid-run: it would read `running` until the next run), remove this
        holder's row (a failure is only logged: the next holder takes over) and give the
        lock back; nothing happens when it is not held."""
        mutex, self._mutex = self._mutex, None
        if mutex is None:
            return
        self._beating.set()
        registered = self._thread is not None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._watch.close()
        if not registered:  # it wrote nothing: a row there is a dead holder's, for the next
            mutex.release()
            return
        try:
            # every run begun since is this holder's: the lock kept others out
            stopped = mark_interrupted(self.store)
            if stopped:
                log.warning(
                    "run%s %s stopped before it finished; marked interrupted",
                    "s" if len(stopped) > 1 else "",
                    ", ".join(map(str, stopped)),
                )
            with self._groups_guard:
                left, self._groups = sorted(self._groups), set()
            forget_groups(self.store, left)
            delete_heartbeat(self.store, RUN)
        except KpiError as exc:  # the next holder will find the row and take over
            log.warning("could not clear the run lock's heartbeat: %s", exc)
        finally:
            mutex.release()

    def _take_over(self) -> None:
        stale = heartbeats(self.store).get(RUN)
        if stale is not None:
            self.taken_over = stale
            log.warning(
                "taking over a stale run lock: the holder, %s, stopped without releasing it",
                stale.describe(),
            )
        self._kill_left_groups()
        self.interrupted = mark_interrupted(self.store)
        if self.interrupted:
            log.warning(
                "run%s %s never finished; marked interrupted",
                "s" if len(self.interrupted) > 1 else "",
                ", ".join(map(str, self.interrupted)),
            )

    def _kill_left_groups(self) -> None:
        """Kill the process groups a dead holder's `command` sources left (their children
        outlive it) and forget them. Groups on another host cannot be reached from here:
        they are logged and forgotten."""
        pid, host = this_process()
        left = [g for g in process_groups(self.store) if (g.pid, g.hostname) != (pid, host)]
        for row in left:
            pgid = int(row.name.removeprefix(GROUP))
            if row.hostname != host:
                log.warning(
                    "the stale run left process group %d (%s) on %s: stop it there",
                    pgid,
                    row.detail,
                    row.hostname,
                )
                continue
            killed = groups.kill_left_group(pgid, started_at=row.started_at)
            if killed:
                self.killed.extend(killed)
                log.warning(
                    "killed process group %d (%s) the stale run left: pid%s %s",
                    pgid,
                    row.detail,
                    "s" if len(killed) > 1 else "",
                    ", ".join(map(str, killed)),
                )
        forget_groups(self.store, [row.name for row in left])

    def _group_event(self, event: str, group: groups.Group) -> None:
        name = f"{GROUP}{group.pgid}"
        if event == "started":
            record_group(self.store, group.pgid, program=group.program, started_at=group.started_at)
            with self._groups_guard:
                self._groups.add(name)
        else:
            with self._groups_guard:
                if name not in self._groups:
                    return
                self._groups.discard(name)
            forget_groups(self.store, [name])

    def _beat(self) -> None:
        while not self._beating.wait(self.heartbeat_every):
            keep = getattr(self._mutex, "keep", None)  # a database session's lock
            if keep is not None:
                keep()
            try:
                write_heartbeat(self.store, RUN)
            except KpiError as exc:
                log.warning("run heartbeat: %s", exc)

    def _busy(self) -> LockBusy:
        try:
            holder = heartbeats(self.store).get(RUN)
        except KpiError:
            holder = None
        waited = f"; waited {seconds_text(self.wait)}" if self.wait else ""
        if holder is None:
            return LockBusy(
                f"another run is using the store{waited}; try again when it has finished"
            )
        message = f"another run is using the store: {holder.describe()}{waited}"
        if holder.age() > 6 * self.heartbeat_every:
            message += (
                f". Its heartbeat stopped {seconds_text(holder.age())} ago: the process may hang; "
                f"stop pid {holder.pid} on {holder.hostname} to free the store"
            )
        else:
            message += "; try again when it has finished"
        return LockBusy(message, holder=holder)
