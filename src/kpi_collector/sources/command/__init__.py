"""`type: command`: run a program; its stdout is a number or a JSON object of numbers.
The program is bounded: its time by the source's `timeout`, its output by `max_bytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import ByteSize, Field, field_validator

from kpi_collector.collect import groups, jsontext
from kpi_collector.collect.extract import Metric, finish_plain
from kpi_collector.collect.offload import in_daemon_thread
from kpi_collector.errors import ExtractError, SourceError
from kpi_collector.secrets import redact_cut, remember_url_credentials, remember_values
from kpi_collector.sources.base import Source, SourceContext
from kpi_collector.sources.python import MESSAGE_LIMIT, to_values

_CHUNK = 64 * 1024  # bytes read at a time from a pipe
_GRACE = 1.0  # seconds to read what a program wrote once it and its group are gone
_SETTLE = 0.1  # seconds after which a pipe still open is held by a process that left


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

    @field_validator("command")
    @classmethod
    def _secret_arguments(cls, value: list[str]) -> list[str]:
        remember_arguments(value)  # a program that fails often repeats what it was given
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
        lines = err.decode(errors="replace").strip().splitlines()
        last = redact_cut(" ".join(lines[-1].split()), MESSAGE_LIMIT) if lines else ""
        if returncode != 0:
            raise SourceError(f"{program!r} {_ended(returncode)}: {last or 'no error output'}")
        # a byte order mark some tools print first is no part of the text
        printed = out.removeprefix(b"\xef\xbb\xbf")
        try:
            text = printed.decode().strip()
        except UnicodeDecodeError as exc:
            # a byte replaced by U+FFFD could be a number's sign or part of it (cp1252's
            # en dash as minus before 12): no number is read from such output
            raise ExtractError(
                f"the output is not UTF-8 (byte 0x{printed[exc.start]:02x} at offset "
                f"{exc.start}); "
                "make the program print UTF-8, e.g. with env: {LC_ALL: C.UTF-8}"
            ) from None
        # a program that colours its output even into a pipe (`--color=always`, `jq -C`):
        # the text a terminal shows, without its escape sequences (ECMA-48)
        text = _TERMINAL_ESCAPE.sub("", text).strip() if "\x1b" in text else text
        if not text:
            said = f"; its stderr: {last}" if last else ""
            raise ExtractError(f"{program!r} exited with 0 but printed nothing on stdout{said}")
        if text.startswith("{"):
            try:
                data = jsontext.loads(text, unique_keys=True)
            except ValueError as exc:
                raise ExtractError(f"the output is not valid JSON ({exc})") from None
            return to_values(
                data, self.metrics, self.locale, missing="the program's JSON output lacks it"
            )
        metric = self.metrics.get(self.metric) or Metric()
        return {self.metric: finish_plain(self.metric, text, metric, self.locale)}


#: ECMA-48 escape sequences a terminal interprets instead of showing: CSI (colours, `ESC [
#: ... m`), OSC (titles, links, ended by BEL or ST) and the two-character ones
_TERMINAL_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]"
)

#: an option naming a credential: `--token`, `--api-key`, `--password=...`, `-secret`
_SECRET_OPTION = re.compile(
    r"(?i)(--?[a-z0-9_.-]*(?:token|secret|passw|pwd|key|credential|auth)[a-z0-9_.-]*)(?:=(.*))?"
)
#: a header given as an argument (`curl -H "Authorization: Bearer ..."`) that carries one
_SECRET_HEADER = re.compile(
    r"(?i)\s*([a-z0-9-]*(?:authorization|token|secret|key|auth)[a-z0-9-]*)\s*:\s*(.+)"
)
_AUTH_SCHEME = re.compile(r"(?i)(?:bearer|basic|token|digest|apikey)\s+(\S+)")


def remember_arguments(argv: list[str]) -> None:
    """Mark the secrets a program's arguments carry, so that `redact` hides them when the
    program echoes them back (`invalid token ...`): the value of an option named like a
    credential (`--token X`, `--password=X`, with the length rule of `remember_values` for
    values written in the file), the value of a header argument carrying one
    (`Authorization: Bearer X`, `X-Api-Key: X`; the same length rule) and a URL's password
    and credential query values. A value from `${VAR}` is already secret (the loader
    remembers it)."""
    for index, argument in enumerate(argv[1:], start=1):
        option = _SECRET_OPTION.fullmatch(argument)
        if option is not None:
            if option.group(2) is not None:
                remember_values({option.group(1): option.group(2)})
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                remember_values({argument: argv[index + 1]})
            continue
        header = _SECRET_HEADER.fullmatch(argument)
        if header is not None:
            given = header.group(2).strip()
            scheme = _AUTH_SCHEME.fullmatch(given)
            remember_values({"header": given, "credential": scheme.group(1) if scheme else ""})
        elif "://" in argument:
            remember_url_credentials(argument)


def _ended(returncode: int) -> str:
    """How a program ended: `exited with 3`, or `was killed by signal SIGKILL` (a negative
    return code is the signal's number)."""
    if returncode >= 0:
        return f"exited with {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = str(-returncode)
    return f"was killed by signal {name}"


class _TooMuchOutput(Exception):
    def __init__(self, stream: str) -> None:
        self.stream = stream


def _exit_of(
    process: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop
) -> asyncio.Future[None]:
    """A future done as soon as `process` exits, reaped by a daemon thread that waits for
    it (as asyncio's own child watcher does). Waiting for the end of its output instead
    would wait for a child the program left running, which may hold the pipes for ever."""
    exited: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not exited.done():
            exited.set_result(None)

    def reap() -> None:
        process.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=reap, name=f"kpi-reap-{process.pid}", daemon=True).start()
    return exited


async def _reader(
    loop: asyncio.AbstractEventLoop, fd: int
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream over `fd`, the read end of a pipe, and its transport, which owns `fd` from
    now on (and closes it, even when this is cancelled)."""
    stream = asyncio.StreamReader(limit=_CHUNK, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    return stream, transport


async def _drain(stream: asyncio.StreamReader, into: bytearray, name: str, cap: int) -> None:
    while chunk := await stream.read(_CHUNK):
        if len(into) + len(chunk) > cap:
            raise _TooMuchOutput(name)
        into += chunk


async def _kill_pipe_holders(inodes: list[int]) -> None:
    """SIGKILL every other process that holds one of the pipes `inodes` (Linux: its open
    files in /proc): the program gave them its stdout or stderr, so they are processes it
    started that left its group (`setsid`, a daemon's double fork), which the group's kill
    does not reach; they would hold the pipes and run on for good. Elsewhere: nothing."""
    if inodes and os.path.isdir("/proc/self/fd"):
        await in_daemon_thread(lambda: _kill_holders({f"pipe:[{inode}]" for inode in inodes}))


def _kill_holders(links: set[str]) -> None:
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            held = any(os.readlink(fd.path) in links for fd in os.scandir(f"{entry.path}/fd"))
        except OSError:  # gone meanwhile, or another user's
            continue
        if held:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


def _death_signal() -> Callable[[], object] | None:
    """What the child runs before exec, on Linux: be killed (SIGKILL) when the `kpi` process
    that started it dies, even by `kill -9`, so a crashed run never leaves its command
    running into the next run (prctl(2) PR_SET_PDEATHSIG); None elsewhere. The child's own
    children are not covered: they are killed with its group when the run ends normally or
    times out, and after a crash by the run that takes over the store's lock
    (`collect.groups`).

    Everything is looked up here, in the parent: the forked child runs one C call and no
    Python import, since another thread of the run may have been importing a module (a SQL
    driver loading ctypes) when it forked, and its lock is held for ever in the child."""
    if not _PDEATHSIG and sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        _PDEATHSIG.append(functools.partial(prctl, pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0))
    return _PDEATHSIG[0] if _PDEATHSIG else None


#: the child's `_death_signal` call, once looked up (empty: not yet, or not on this system)
_PDEATHSIG: list[Callable[[], object]] = []


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
    leader = groups.Leader(program)
    death_signal = _death_signal()
    streams: list[asyncio.StreamReader] = []
    pipes: list[asyncio.BaseTransport] = []
    readers: list[asyncio.Future[None]] = []
    exited: asyncio.Future[None] | None = None
    out, err = bytearray(), bytearray()
    inodes: list[int] = []  # of the two pipes: who else holds one is the program's
    try:
        # the pipes are connected to the loop before the program starts: from its fork to
        # its group's announcement and on into this `try`, no await lets a cancellation in
        write_ends: list[int] = []
        try:
            for _ in ("stdout", "stderr"):
                read_end, write_end = os.pipe()
                write_ends.append(write_end)
                inodes.append(os.fstat(read_end).st_ino)
                stream, pipe = await _reader(loop, read_end)
                streams.append(stream)
                pipes.append(pipe)
            try:
                # announced from the fork on, so the hard stop of a second signal, and the
                # run lock's holder, who records it (the run taking over after a crash,
                # kill -9, kills what the program started: its children outlive us), know it
                process = leader.start(
                    lambda: subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=write_ends[0],
                        stderr=write_ends[1],
                        cwd=cwd,
                        env=env,
                        # the program leads a new session and group for good (a session
                        # leader cannot leave its group), so the group's id is its pid and
                        # a kill of the group reaches it too
                        start_new_session=True,
                        preexec_fn=death_signal,
                    )
                )
            except OSError as exc:
                raise SourceError(f"cannot run {program!r}: {exc.strerror or exc}") from None
        finally:
            for write_end in write_ends:  # the program's now: its exit ends the pipes
                os.close(write_end)
        exited = _exit_of(process, loop)
        readers = [
            asyncio.ensure_future(_drain(streams[0], out, "stdout", max_bytes)),
            asyncio.ensure_future(_drain(streams[1], err, "stderr", max_bytes)),
        ]
        async with asyncio.timeout(timeout):
            pending: set[asyncio.Future[None]] = {exited, *readers}
            while not exited.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    future.result()  # a stream past the cap raises here
        leader.kill()
        # what it wrote before it exited is in the pipes, and with its group gone they end;
        # only a process that left the session (`setsid`, a daemon) holds them longer
        done, pending = await asyncio.wait(readers, timeout=_SETTLE)
        if pending:
            await _kill_pipe_holders(inodes)
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
        leader.kill()
        if any(not future.done() for future in readers):  # stopped: none stays behind
            await _kill_pipe_holders(inodes)
        for future in readers:
            future.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        if leader.process is not None:
            if exited is None:  # a signal's exception came out of its start
                exited = _exit_of(leader.process, loop)
            await exited  # reaped: no zombie left
            groups.ended(leader.process.pid)
        # the pipes closed now, while the loop runs: left to the garbage collector after
        # the loop closed, they print `RuntimeError: Event loop is closed`
        for pipe in pipes:
            pipe.close()
    code = process.returncode
    assert code is not None  # it exited, above
    return bytes(out), bytes(err), code
