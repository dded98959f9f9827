"""The real Prometheus Pushgateway (Debian package `prometheus-pushgateway`) on 127.0.0.1.

Skips with a clear reason where the binary is absent, and fails instead under
KPI_REQUIRE_SERVICES=1 (CI installs it in .ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kpi_collector.destinations.email.fake import free_port
from tests.services import missing

BINARY = "prometheus-pushgateway"


def require_pushgateway() -> str:
    found = shutil.which(BINARY) or (
        f"/usr/bin/{BINARY}" if os.path.exists(f"/usr/bin/{BINARY}") else None
    )
    if found:
        return found
    missing(
        f"{BINARY} is not installed (Debian package prometheus-pushgateway; .ci/run installs it)"
    )


def _web_config(folder: Path, users: dict[str, str]) -> Path:
    """A `--web.config.file` that asks for HTTP basic auth: bcrypt hashes of the passwords
    (the cheapest cost, made by the C library's crypt, as `htpasswd -B` would)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)
    lines = ["basic_auth_users:"]
    lines += [f'  {user}: "{crypt.crypt(password, salt)}"' for user, password in users.items()]
    path = folder / "web.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@contextmanager
def pushgateway(users: dict[str, str] | None = None) -> Iterator[str]:
    """A fresh Pushgateway (in-memory, no persistence); yields its URL. With `users` (name:
    password) it asks for HTTP basic auth."""
    binary = require_pushgateway()
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="pushgateway-"))
    args = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="]
    if users:
        args.append(f"--web.config.file={_web_config(folder, users)}")
    process = subprocess.Popen(
        [*args, "--log.level=warn"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for the password
                    break
                raise
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"the Pushgateway did not start: {err[-500:]}") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def groups(url: str, auth: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """The Pushgateway's `/api/v1/metrics`: one entry per pushed group."""
    import base64

    request = urllib.request.Request(f"{url}/api/v1/metrics")
    if auth:
        token = base64.b64encode(":".join(auth).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as response:
        return list(json.load(response)["data"])


def gauge(
    url: str, kpi: str, job: str = "kpi_collector", auth: tuple[str, str] | None = None
) -> float | None:
    for group in groups(url, auth):
        if group["labels"].get("job") != job:
            continue
        family = group.get("kpi_value")
        for metric in (family or {}).get("metrics", []):
            if metric["labels"].get("kpi") == kpi:
                return float(metric["value"])
    return None
