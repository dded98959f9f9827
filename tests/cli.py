"""Running the installed `kpi` command in a folder, as a user would, for end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

KPI = Path(sys.executable).parent / "kpi"


def run_kpi(
    folder: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`kpi ARGS` in `folder` (where `kpi.yaml` and `.env` are); its output as text. `env`
    adds to a bare environment (PATH, HOME=folder, NO_COLOR), so nothing of the test
    process's own environment (a `KPI_*` variable, a token) leaks into the run."""
    base = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "NO_COLOR": "1"}
    return subprocess.run(
        [str(KPI), *args],
        cwd=folder,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
