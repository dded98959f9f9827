"""`type: command`: run a program; its stdout is a number or a JSON object of numbers.
The program is bounded: its time by the source's `timeout`, its output by `max_bytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import ByteSize, Field, field_validator

from kpi_collector.collect import groups
from kpi_collector.collect.extract import Metric, finish
from kpi_collector.errors import ExtractError, SourceError
from kpi_collector.secrets import redact, remember_values
from kpi_collector.sources.base import Source, SourceContext
from kpi_collector.sources.python import to_values

_CHUNK = 64 * 1024  # bytes read at a time from a pipe
_GRACE = 1.0  # seconds to read what a program wrote once it and its group are gone


class Command(Source):
    type: ClassVar[str] = "command"

    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    metric: str = "value"  # the name of a plain-number output
    metrics: dict[str, Metric] = Field(default_factory=dict)

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("give the command as a list of arguments, e.g. [wc, -l, file.txt]")
        return value

    @field_validator("env")
    @classmethod
    def _secret_env(cls, value: dict[str, str]) -> dict[str, str]:
        remember_values(value)  # a program may print what it was given
        return value

    def metric_names(self) -> list[str]:
        return list(self.metrics) or [self.metric]

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        cwd = ctx.base_dir / self.cwd if self.cwd else ctx.base_dir
        program = self.command[0]
        out, err, returncode = await run_bounded(
            self.command,
            cwd=cwd,
            env={**os.environ, **self.env},
            timeout=ctx.timeout,
            max_bytes=ctx.max_bytes,
        )
        if returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            last = redact(lines[-1]) if lines else "no error output"
            raise SourceError(f"{program!r} exited with {returncode}: {last}")
        text = out.decode(errors="replace").strip()
        if text.startswith("{"):
            try:
                return to_values(json.loads(text), self.metrics, self.locale)
            except json.JSONDecodeError as exc:
                raise ExtractError(f"the output is not valid JSON: {exc}") from None
        metric = self.metrics.get(self.metric) or Metric()
        return {self.metric: finish(self.metric, text, metric, self.locale)}


class _TooMuchOutput(Exception):
    def __init__(self, stream: str) -> None:
        self.stream = stream


class _Watched(asyncio.subprocess.SubprocessStreamProtocol):
    """The usual stdout/stderr streams, and `exited`, done as soon as the program exits.

    `Process.wait()` is no use here: before Python 3.12 it also waits for the pipes to
    close, which a child the program left running may hold open for as long as it lives.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=_CHUNK, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _drain(stream: asyncio.StreamReader, into: bytearray, name: str, cap: int) -> None:
    while chunk := await stream.read(_CHUNK):
        if len(into) + len(chunk) > cap:
            raise _TooMuchOutput(name)
        into += chunk


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, be killed (SIGKILL) when the `kpi` process that
    started it dies, even by `kill -9`, so a crashed run never leaves its command running
    into the next run (prctl(2) PR_SET_PDEATHSIG). The child's own children are not
    covered: they are killed with its group when the run ends normally or times out, and
    after a crash by the run that takes over the store's lock (`collect.groups`)."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


async def run_bounded(
    argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float, max_bytes: int
) -> tuple[bytes, bytes, int]:
    """Run a program and return (stdout, stderr, exit code), bounded in time and memory.

    The program runs in a session (and process group) of its own. When it exits, what it
    wrote is read and the rest of its group (children it left running, like the `sleep` of
    `sh -c 'sleep 300 & echo 1'`) is killed: they cannot keep the run waiting on the pipes
    they inherited, and none is left behind. Past `timeout` seconds, or when stdout or
    stderr passes `max_bytes`, the whole group is killed and SourceError says which.

    Raises: SourceError when the program cannot start, runs too long or writes too much.
    """
    program = argv[0]
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _Watched(loop),
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except OSError as exc:
        raise SourceError(f"cannot run {program!r}: {exc.strerror or exc}") from None
    # the program leads a new session and group for good (a session leader cannot leave
    # its group), so the group's id is its pid and a kill of the group reaches it too
    group = transport.get_pid()
    # announced, so the run lock's holder records it and a run taking over after a crash
    # (kill -9: the program dies with us, the children it started do not) kills the group
    groups.started(group, program)
    assert protocol.stdout is not None and protocol.stderr is not None
    out, err = bytearray(), bytearray()
    readers = [
        asyncio.ensure_future(_drain(protocol.stdout, out, "stdout", max_bytes)),
        asyncio.ensure_future(_drain(protocol.stderr, err, "stderr", max_bytes)),
    ]
    try:
        async with asyncio.timeout(timeout):
            pending: set[asyncio.Future[None]] = {protocol.exited, *readers}
            while not protocol.exited.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    future.result()  # a stream past the cap raises here
        _kill_group(group)
        # what it wrote before it exited is in the pipes, and with its group gone they end;
        # only a process that left the session could hold them longer
        done, _ = await asyncio.wait(readers, timeout=_GRACE)
        for future in done:
            future.result()
    except TimeoutError:
        raise SourceError(
            f"{program!r} did not finish within the source's timeout of {timeout:g}s: "
            "stopped it and every process it started"
        ) from None
    except _TooMuchOutput as exc:
        size = ByteSize(max_bytes).human_readable()
        raise SourceError(
            f"{program!r} wrote more than max_bytes = {size} to {exc.stream}: stopped it and "
            "every process it started; raise `max_bytes` if that much output is right"
        ) from None
    finally:
        _kill_group(group)
        for future in readers:
            future.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await protocol.exited  # reaped by asyncio's child watcher: no zombie left
        groups.ended(group)
        # the pipes closed now, while the loop runs: left to the garbage collector after
        # the loop closed, they print `RuntimeError: Event loop is closed`
        transport.close()
    code = transport.get_returncode()
    assert code is not None  # it exited, above
    return bytes(out), bytes(err), code


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(group, signal.SIGKILL)
