"""CPU-heavy work of one source (parsing a page, evaluating its selectors) off the event
loop, so one hostile page or pattern never stalls the other sources or outlives its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from kpi_collector.errors import ExtractError

T = TypeVar("T")

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


async def run_off_loop(work: Callable[[], T], *, timeout: float, what: str) -> T:
    """Run `work()` in a thread of its own and return its result (or raise its exception).

    After `timeout` seconds the caller gets ExtractError("`what` did not finish within ...")
    and stops waiting. The thread is a daemon: a parse that never ends cannot keep the run
    (or the interpreter's exit) waiting, unlike a pool thread that `asyncio.run` joins.
    Libraries that release the GIL (lxml, lexbor's parser) run truly beside the loop; the
    rest (lexbor's selectors, RE2, json) hold it for one call, linear in the capped input.

    Raises: ExtractError on timeout; whatever `work` raises.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():  # the caller gave up (timeout, cancelled)
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def thread() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = work()
        except BaseException as exc:
            error = exc
        # RuntimeError: the loop closed while the work ran, nobody waits any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    async with _slot():
        threading.Thread(target=thread, name=f"kpi-parse {what}", daemon=True).start()
        try:
            async with asyncio.timeout(timeout):
                return await done
        except TimeoutError:
            raise ExtractError(
                f"{what} did not finish within the source's timeout of {timeout:g}s; "
                "simplify the selector or pattern, or raise `timeout`",
                transient=False,
            ) from None
