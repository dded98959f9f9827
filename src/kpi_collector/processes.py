"""Which other process holds a TCP port or has a file open, to name it in a message.

Read from Linux's /proc (proc(5): /proc/net/tcp{,6} lists sockets with their inode,
/proc/PID/fd links name each open file or `socket:[inode]`). Best effort: elsewhere, or for
processes we may not look into, the answer is simply empty.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in include/net/tcp_states.h, as /proc/net/tcp writes it
# an option or variable that carries a credential on another process's command line
_CREDENTIAL = re.compile(r"(?i)token|passw|secret|key|auth")


@dataclass(frozen=True)
class Holder:
    """A process: its `pid` and its command line (`kpi serve --port 8050`), cut to 80."""

    pid: int
    command: str

    def describe(self) -> str:
        return f"process {self.pid} ({self.command})" if self.command else f"process {self.pid}"


def port_holders(port: int) -> list[Holder]:
    """The processes with a TCP socket listening on `port` (any address), by pid."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    return _holding(lambda target: target in inodes) if inodes else []


def file_holders(paths: Iterable[Path]) -> list[Holder]:
    """The processes other than this one that have any of `paths` open, by pid."""
    wanted = {str(path.resolve()) for path in paths}
    return _holding(lambda target: target in wanted)


def _holding(test: Callable[[str], bool]) -> list[Holder]:
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            targets = [os.readlink(fd) for fd in (_PROC / str(pid) / "fd").iterdir()]
        except OSError:  # gone, or not ours to look into
            continue
        if any(test(target) for target in targets):
            found.append(Holder(pid, _command(pid)))
    return sorted(found, key=lambda h: h.pid)


def _pids() -> Iterator[int]:
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit():
            yield int(entry.name)


def _command(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    parts = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    if len(parts) > 1 and Path(parts[0]).name.startswith("python") and parts[1][:1] != "-":
        parts = parts[1:]  # `python .venv/bin/kpi serve` is `kpi serve` to its user
    if parts:
        parts[0] = Path(parts[0]).name
    # another process's command line may carry its credentials: never repeat them
    for i, part in enumerate(parts):
        key, eq, _ = part.partition("=")
        if eq and _CREDENTIAL.search(key):
            parts[i] = f"{key}=***"
        elif i and _CREDENTIAL.search(parts[i - 1]) and parts[i - 1].startswith("-"):
            parts[i] = "***"
    text = " ".join(" ".join(parts).split())
    return text if len(text) <= 80 else text[:79] + "…"


def describe_holders(holders: Iterable[Holder]) -> str:
    """ "process 12 (kpi serve), process 40 (python x.py)", or "" for none."""
    return ", ".join(holder.describe() for holder in holders)
