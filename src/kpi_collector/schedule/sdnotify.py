"""systemd's notification protocol (sd_notify(3)): `READY=1`, `WATCHDOG=1`, `STOPPING=1`
datagrams to the socket in `$NOTIFY_SOCKET`, so a `Type=notify` unit with `WatchdogSec=` knows
the scheduler started and is alive. Without `$NOTIFY_SOCKET` (not under systemd) it does
nothing."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not under systemd or on error."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between `WATCHDOG=1` pings systemd asks for: half of `$WATCHDOG_USEC`, when
    the watchdog is meant for this process (`$WATCHDOG_PID`); else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.5)
    except ValueError:
        return None
