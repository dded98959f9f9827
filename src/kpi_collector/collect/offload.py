"""CPU-heavy work of one source (parsing a page, evaluating its selectors) and the blocking
calls of sources (a function, a query) off the event loop, so one hostile page, pattern or
call never stalls the other sources or outlives its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kpi_collector.errors import ExtractError

T = TypeVar("T")

#: a page up to this size is parsed on the loop: parsing it and evaluating CSS selectors and
#: RE2 patterns on it (all linear in its size) takes about a millisecond, less than the hop
#: to a thread and back costs; larger pages, and every XPath, go to a thread
INLINE_BYTES = 256 * 1024

#: at most this many parses at once (2 cores here; more threads only share the same CPUs)
_SLOTS = 4
# a semaphore belongs to one loop, and every `Pipeline.process()` runs a new one
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(_SLOTS)
    return slot


class _DaemonPool:
    """Daemon threads that take jobs from one queue, started as needed and then reused.

    Unlike `concurrent.futures.ThreadPoolExecutor`, whose threads the interpreter (and
    `asyncio.run`) joins at exit, a job that never ends here keeps nobody waiting: its
    thread is lost to the pool, and the next job that finds no idle thread starts one.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # that thread is promised this job
        if start:
            threading.Thread(target=self._work, name="kpi-parse", daemon=True).start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            self._jobs.get()()  # a job never raises: it hands its outcome to the loop
            with self._lock:
                self._idle += 1


_pool = _DaemonPool()


async def run_off_loop(
    work: Callable[[], T], *, timeout: float, what: str, inline: bool = False
) -> T:
    """Run `work()` in a daemon thread and return its result (or raise its exception);
    with `inline`, for work known to be small (see `INLINE_BYTES`), right here on the loop.

    After `timeout` seconds the caller gets ExtractError("`what` did not finish within ...")
    and stops waiting. The thread is a daemon: a parse that never ends cannot keep the run
    (or the interpreter's exit) waiting, unlike a pool thread that `asyncio.run` joins.
    Libraries that release the GIL (lxml, lexbor's parser) run truly beside the loop; the
    rest (lexbor's selectors, RE2, json) hold it for one call, linear in the capped input.

    Raises: ExtractError on timeout; whatever `work` raises.
    """
    if inline:
        return work()
    async with _slot():
        try:
            async with asyncio.timeout(timeout):
                return await in_daemon_thread(work)
        except TimeoutError:
            raise ExtractError(
                f"{what} did not finish within the source's timeout of {timeout:g}s; "
                "simplify the selector or pattern, or raise `timeout`",
                transient=False,
            ) from None


async def in_daemon_thread(work: Callable[[], T]) -> T:
    """Run the blocking `work()` (a source's own function, query or file scan) in a daemon
    thread and return its result (or raise its exception), in a copy of the caller's context.

    A caller that stops waiting (its source's time budget ran out, Ctrl-C) leaves the thread
    behind: a call that never returns keeps neither the run nor the process's exit waiting,
    as `asyncio.to_thread` would (`asyncio.run` joins its pool's threads at its end).

    Raises: whatever `work` raises.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():  # the caller gave up (timeout, cancelled)
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def job() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = context.run(work)
        except BaseException as exc:
            error = exc
        # RuntimeError: the loop closed while the work ran, nobody waits any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    _pool.submit(job)
    return await done


async def on_own_loop(make: Callable[[], Awaitable[T]]) -> T:
    """Await `make()` (a source's own coroutine) on an event loop of its own, in a daemon
    thread, and return its result (or raise its exception).

    A coroutine that makes a blocking call (a sync client inside `async def`) holds only
    that thread, not the run's loop, where it would stop every other source and every
    timeout. A caller that is cancelled (its source's time ran out) cancels the coroutine
    on its loop; one that never reaches an `await` again is left behind, as in
    `in_daemon_thread`.

    Raises: whatever the coroutine raises.
    """
    running: dict[str, Any] = {}

    async def main() -> T:
        running["loop"] = asyncio.get_running_loop()
        running["task"] = asyncio.current_task()
        return await make()

    def work() -> T:
        with asyncio.Runner() as runner:
            return runner.run(main())

    try:
        return await in_daemon_thread(work)
    except asyncio.CancelledError:
        loop, task = running.get("loop"), running.get("task")
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed: it is done already
                loop.call_soon_threadsafe(task.cancel)
        raise
