"""`kpi schedule --print crontab|systemd|github-actions`: deployment snippets for this config.

- crontab: one line per job (`kpi schedule --run JOB`) on the job's own cron;
- systemd: a service running `kpi schedule` (catch-up, heartbeat, graceful stop built in);
- GitHub Actions: a workflow on the config's crons that runs `kpi schedule --once` (the jobs
  that are due, so late or dropped scheduled runs are caught up), passes the `${VARS}` the
  config uses from repository secrets, and commits the SQLite store back to the repository
  so its history survives between runs (a cache would be evicted after 7 days unused).
"""

from __future__ import annotations

import getpass
import re
import shlex
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from kpi_collector.config.cron import _fields, _weekdays
from kpi_collector.config.loader import _VAR
from kpi_collector.errors import ConfigError
from kpi_collector.schedule.scheduler import plan

if TYPE_CHECKING:
    from kpi_collector.config.models import Config

FORMATS = ("crontab", "systemd", "github-actions")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def snippet(config: Config, kind: str, *, kpi: str | None = None) -> str:
    """The snippet `kind` for `config`; `kpi` is the command to call (default: this `kpi`)."""
    if kind not in FORMATS:
        raise ValueError(f"unknown snippet {kind!r}; choose one of {', '.join(FORMATS)}")
    if kind != "systemd" and not plan(config):
        raise ConfigError("nothing to schedule: the config has no enabled source or destination")
    if kind == "crontab":
        return crontab(config, kpi=kpi)
    if kind == "systemd":
        return systemd(config, kpi=kpi)
    return github_actions(config)


def kpi_command() -> str:
    """The absolute path of the `kpi` that is running (a virtualenv's), else `kpi` on PATH."""
    beside = Path(sys.executable).parent / "kpi"
    if beside.exists():
        return str(beside)
    return shutil.which("kpi") or "kpi"


def _config_path(config: Config) -> Path:
    return (config.path or config.base_dir / "kpi.yaml").resolve()


def crontab(config: Config, *, kpi: str | None = None) -> str:
    path = _config_path(config)
    folder = path.parent
    command = f"cd {shlex.quote(str(folder))} && {shlex.quote(kpi or kpi_command())} -c {shlex.quote(str(path))}"
    log = shlex.quote(str(folder / "kpi-schedule.log"))
    lines = [
        f"# kpi-collector: {path}",
        "# Install with `crontab -e`. Each line runs one job and records it in the store; the store's",
        "# run lock keeps runs apart, `kpi validate --health` shows when each job last succeeded.",
    ]
    if config.timezone != "UTC":
        lines += [
            f"# The times below are in {config.timezone}: cronie (Fedora, RHEL, Arch) and busybox",
            "# honour CRON_TZ; Debian's and Ubuntu's cron do not: there, set the machine's time zone",
            f"# to {config.timezone}, or use `kpi schedule --print systemd` instead.",
            f"CRON_TZ={config.timezone}",
        ]
    for job in plan(config):
        line = f"{job.cron.expr} {command} schedule --run {job.name} >> {log} 2>&1"
        lines.append(line.replace("%", r"\%"))  # cron turns a bare % into a newline
    return "\n".join(lines) + "\n"


def systemd(config: Config, *, kpi: str | None = None) -> str:
    path = _config_path(config)
    command = f"{kpi or kpi_command()} -c {path} schedule"
    return f"""\
# /etc/systemd/system/kpi-collector.service
# Install: save as above, then `sudo systemctl daemon-reload && sudo systemctl enable --now kpi-collector`.
# Logs: `journalctl -u kpi-collector -f`. Health: `kpi -c {path} validate --health`.
# After editing kpi.yaml: `sudo systemctl restart kpi-collector` (the run in progress finishes first).
[Unit]
Description=kpi-collector scheduler for {path}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={_user()}
WorkingDirectory={path.parent}
ExecStart={_systemd_quote(command)}
Environment=PYTHONUNBUFFERED=1
# SIGTERM goes to the scheduler only: it finishes writing the run in progress, then exits 0
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=600
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
"""


def github_actions(config: Config) -> str:
    path = _config_path(config)
    root = _repository_root(path.parent)
    config_rel = _relative(path, root)
    store = config.store_url
    sqlite = store.startswith("sqlite:///")
    db = Path(store.removeprefix("sqlite:///")) if sqlite else None
    crons = sorted({job.cron.expr for job in plan(config)})
    schedule = []
    for expr in crons:
        schedule.append(f'    - cron: "{_posix_cron(expr)}"')
        if config.timezone != "UTC":
            schedule.append(f'      timezone: "{config.timezone}"')
    env = _secret_env(config)
    steps = [
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "        with:",
        '          python-version: "3.12"',
        f'      - run: pip install "kpi-collector[all]{_pinned()}"',
        "      - name: Collect, store and deliver what is due",
    ]
    if env:
        steps.append("        env:")
        steps += [f"          {name}: {value}" for name, value in env]
    steps.append(f"        run: kpi -c {shlex.quote(config_rel)} schedule --once")
    notes = []
    if db is not None and _inside(db, root):
        db_rel = _relative(db, root)
        steps += [
            "      - name: Keep the history store in the repository",
            "        if: always()  # also after a partial failure: what succeeded is stored",
            "        run: |",
            f"          test -f {shlex.quote(db_rel)} || exit 0",
            "          # fold SQLite's write-ahead log into the file before committing it",
            f"          python -c \"import sqlite3; sqlite3.connect({db_rel!r}).execute('PRAGMA wal_checkpoint(TRUNCATE)')\"",
            '          git config user.name "github-actions[bot]"',
            '          git config user.email "41898282+github-actions[bot]@users.noreply.github.com"',
            f"          git add -f {shlex.quote(db_rel)}",
            "          git diff --cached --quiet && exit 0",
            '          git commit -m "kpi: history after run ${{ github.run_id }} [skip ci]"',
            "          git pull --rebase --autostash && git push",
        ]
    elif db is not None:
        notes.append(
            f"# The store {db} is outside the repository: point `store:` at a file inside it\n"
            "# (e.g. `store: sqlite:///kpi.db`), or at a database server, so history survives runs."
        )
    else:
        notes.append(
            "# The store is a database server: it must be reachable from GitHub's runners; pass its\n"
            "# URL through a secret (`store: ${KPI_STORE_URL}`)."
        )
    header = [
        f"# .github/workflows/kpi.yml — kpi-collector for {config_rel}",
        "# GitHub starts scheduled runs late at busy times (and may drop some): `--once` runs every",
        "# job that is due, so a late or missed run is caught up on the next one.",
    ]
    if env:
        header.append("# Add each secret below under Settings → Secrets and variables → Actions.")
    if any(name.startswith("GITHUB_") and name != "GITHUB_TOKEN" for name, _ in env):
        header.append(
            "# Secret names cannot start with GITHUB_: those are read from KPI_<NAME> secrets."
        )
    if config.timezone != "UTC":
        header.append(
            f"# `timezone:` makes GitHub read the cron in {config.timezone}; where it is not supported"
        )
        header.append("# (older GitHub Enterprise Server), convert the times to UTC.")
    body = [
        "name: kpi",
        "on:",
        "  schedule:",
        *schedule,
        "  workflow_dispatch:",
        "permissions:",
        "  contents: write  # to commit the history store",
        "concurrency:",
        "  group: kpi  # one run at a time: the store is committed back",
        "  cancel-in-progress: false",
        "jobs:",
        "  kpi:",
        "    runs-on: ubuntu-latest",
        "    timeout-minutes: 30",
        "    steps:",
        *steps,
    ]
    return "\n".join(header + notes + body) + "\n"


def _posix_cron(expr: str) -> str:
    """GitHub reads POSIX cron: no @macros, day of week 0-6 (or names)."""
    fields = _fields(expr)
    dow = fields[4]
    if not dow.startswith("*") and re.search(r"7|/", dow):
        fields[4] = ",".join(_DAY_NAMES[d] for d in sorted(_weekdays(dow)))
    return " ".join(fields)


def _secret_env(config: Config) -> list[tuple[str, str]]:
    """`${VAR}` names used in the config file, each from a repository secret."""
    if config.path is None or not config.path.is_file():
        return []
    lines = config.path.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    names = sorted({m.group(1) for m in _VAR.finditer(text) if m.group(1)})
    out = []
    for name in names:
        secret = name if name == "GITHUB_TOKEN" or not name.startswith("GITHUB_") else f"KPI_{name}"
        out.append((name, f"${{{{ secrets.{secret} }}}}"))
    return out


def _repository_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return Path.cwd().resolve()


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _pinned() -> str:
    try:
        return f"=={version('kpi-collector')}"
    except PackageNotFoundError:
        return ""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "kpi"


def _systemd_quote(command: str) -> str:
    """systemd splits ExecStart= like a shell, but `%` starts a specifier."""
    return " ".join(shlex.quote(part) for part in shlex.split(command)).replace("%", "%%")
