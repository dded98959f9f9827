"""The process groups this process's programs run in, so a crash never leaves them behind.

A `command` source runs its program in a session (and process group) of its own; the program
dies with `kpi` (PR_SET_PDEATHSIG) but the children it started, like the `sleep` of
`sh -c 'sleep 100 & wait'`, do not. So each live group is announced here (`Leader.start`,
`ended`); the holder of the store's run lock records them in the store, and the next run that
takes over a stale lock kills the groups its dead holder left (`kill_left_group`), and the
hard stop of a second signal kills the live ones (`kill_all_at_exit`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

log = logging.getLogger("kpi_collector.collect")


@dataclass(frozen=True, slots=True)
class Group:
    """A live process group: its id (the pid of its leader, who also leads its session),
    the program it runs and when it started (UTC epoch seconds)."""

    pgid: int
    program: str
    started_at: float


#: called with ("started" | "ended", group) from the thread that starts or ends a group
Watcher = Callable[[str, Group], None]

_guard = threading.Lock()
_live: dict[int, Group] = {}
_watchers: list[Watcher] = []
# held from just before a leader is forked until its group is in `_live`: the hard stop,
# from another thread, waits for it instead of missing a group that is being born
_starting = threading.Lock()


class Leader:
    """A program to run as the leader of a session and process group of its own, its group
    live here from the moment it is forked (`start`) until `ended`.

    Between the fork and the announcement nothing can get in: no signal handler (a second
    SIGTERM raises KeyboardInterrupt to unwind the run) and no other thread's hard stop
    (`kill_all_at_exit`), so whoever must stop the program finds its group; `process` is
    set in the same moment, for the caller's `finally` to `kill` it.
    """

    def __init__(self, program: str) -> None:
        self.program = program
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, spawn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """Run `spawn`, a `subprocess.Popen(..., start_new_session=True)` (so the group's id
        is the leader's pid), and announce the group; then every watcher hears of it.
        Signals with a Python handler that arrive meanwhile are handled right after the
        announcement, before the watchers (who may write to a store that hangs) are told.

        Raises: whatever `spawn` raises (OSError when the program cannot run); a signal
        handler's exception (KeyboardInterrupt), once the group is announced.
        """
        with _signals_held(), _starting:
            process = spawn()
            group = Group(process.pid, self.program, time.time())
            with _guard:
                _live[group.pgid] = group
                watchers = list(_watchers)
            self.process = process
        _tell(watchers, "started", group)
        return process

    def kill(self) -> None:
        """SIGKILL the whole group, if it started; a group already gone is no error."""
        if self.process is not None:
            kill_group(self.process.pid)


def ended(pgid: int) -> None:
    """Announce that group `pgid` was killed and reaped; nothing happens for an unknown one."""
    with _guard:
        group = _live.pop(pgid, None)
        watchers = list(_watchers)
    if group is not None:
        _tell(watchers, "ended", group)


def live() -> list[Group]:
    """The groups started and not ended yet, oldest first."""
    with _guard:
        return sorted(_live.values(), key=lambda g: g.started_at)


@contextlib.contextmanager
def watching(watcher: Watcher) -> Iterator[list[Group]]:
    """Call `watcher` for every group started or ended inside the block; the block gets
    the groups already live, which the watcher will hear end but not start."""
    with _guard:
        _watchers.append(watcher)
        current = sorted(_live.values(), key=lambda g: g.started_at)
    try:
        yield current
    finally:
        with _guard:
            _watchers.remove(watcher)


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group `pgid`; a group already gone (or another user's) is
    no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_all_at_exit(*, wait: float) -> list[Group]:
    """The last act of a process about to exit at once (the hard stop of a second signal):
    SIGKILL every live group and return them. A program being started (`Leader.start`,
    which takes milliseconds: fork and exec) is waited for, up to `wait` seconds, so that
    its group is among them; and none starts after: the start lock is kept, for good."""
    # past `wait`, a start is stuck (a child hung before exec): not worth keeping the exit
    _starting.acquire(timeout=wait)
    killed = live()
    for group in killed:
        kill_group(group.pgid)
    return killed


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Within, on the main thread: a signal whose handler is Python code is recorded, not
    handled; on leaving, the handlers run for them, in the order they came. Python runs
    signal handlers on the main thread only, between any two bytecodes; elsewhere, no
    handler can interrupt the block and it runs as is. A signal whose handler is not
    Python code (the default action, ignored) interrupts no Python code: left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        came.append(signum)

    held: dict[int, Callable[[int, FrameType | None], object]] = {}
    try:
        for number in signal.valid_signals():
            handler = signal.getsignal(number)
            if callable(handler):
                held[number] = handler
                signal.signal(number, hold)
        yield
    finally:
        for signum, handler in held.items():
            signal.signal(signum, handler)
        for signum in came:
            held[signum](signum, None)


def _tell(watchers: list[Watcher], event: str, group: Group) -> None:
    for watcher in watchers:
        try:
            watcher(event, group)
        except Exception as exc:  # a record that cannot be written must not fail the source
            log.warning("recording process group %d: %s", group.pgid, exc)


def kill_left_group(pgid: int, *, started_at: float) -> list[int]:
    """Kill (SIGKILL) what is left of group `pgid`, started at `started_at` (epoch seconds)
    by a process that died: the pids killed, [] when the group is gone.

    On Linux only processes that are still in that group *and* session (the program led a
    session of its own) and started no earlier than the group did are counted, so a pid
    reused since by an unrelated, older group is never hit; elsewhere the group is killed
    as recorded. Permission errors (another user's processes) leave it alone.
    """
    if sys.platform.startswith("linux"):
        members = [pid for pid, start in _members(pgid) if start >= started_at - 1.0]
        if not members:
            return []
    else:
        members = [pgid]
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return []
    return members


def _members(pgid: int) -> list[tuple[int, float]]:
    """(pid, start time in epoch seconds) of the processes in group and session `pgid`,
    read from /proc (proc(5): /proc/[pid]/stat fields 5, 6 and 22; /proc/stat btime)."""
    try:
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        # fields[0] is field 3 (state): pgrp is field 5, session 6, starttime 22
        try:
            pgrp, session, start = int(fields[2]), int(fields[3]), int(fields[19])
        except (IndexError, ValueError):
            continue
        if pgrp == pgid and session == pgid:
            found.append((int(entry.name), boot + start / ticks))
    return found
