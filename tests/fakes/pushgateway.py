"""The real Prometheus Pushgateway (Debian package `prometheus-pushgateway`) on 127.0.0.1.

Skips with a clear reason where the binary is absent, and fails instead under
KPI_REQUIRE_SERVICES=1 (CI installs it in .ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.fakes.smtp import free_port

BINARY = "prometheus-pushgateway"


def require_pushgateway() -> str:
    found = shutil.which(BINARY) or (
        f"/usr/bin/{BINARY}" if os.path.exists(f"/usr/bin/{BINARY}") else None
    )
    if found:
        return found
    reason = (
        f"{BINARY} is not installed (Debian package prometheus-pushgateway; .ci/run installs it)"
    )
    if os.environ.get("KPI_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and KPI_REQUIRE_SERVICES=1 says it must be")
    pytest.skip(reason)


@contextmanager
def pushgateway() -> Iterator[str]:
    """A fresh Pushgateway (in-memory, no persistence); yields its URL."""
    binary = require_pushgateway()
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            "--persistence.file=",
            "--log.level=warn",
        ],
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


def groups(url: str) -> list[dict[str, Any]]:
    """The Pushgateway's `/api/v1/metrics`: one entry per pushed group."""
    with urllib.request.urlopen(f"{url}/api/v1/metrics", timeout=5) as response:
        return list(json.load(response)["data"])


def gauge(url: str, kpi: str, job: str = "kpi_collector") -> float | None:
    for group in groups(url):
        if group["labels"].get("job") != job:
            continue
        family = group.get("kpi_value")
        for metric in (family or {}).get("metrics", []):
            if metric["labels"].get("kpi") == kpi:
                return float(metric["value"])
    return None
