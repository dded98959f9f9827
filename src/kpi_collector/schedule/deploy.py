"""`kpi schedule --print crontab|systemd|github-actions`: deployment snippets for this config.

- crontab: one line per job (`kpi schedule --run JOB`) on the job's own cron;
- systemd: a service running `kpi schedule` (catch-up, heartbeat, graceful stop built in),
  `Type=notify` with a watchdog, hardened (`ProtectSystem=strict`, `NoNewPrivileges=yes`,
  writable only where the store lives);
- systemd-timer: a oneshot service running `kpi schedule --once` and a `.timer` on the jobs'
  crons (`Persistent=true`, so a run missed while the machine was off happens on boot);
- GitHub Actions: a workflow on the config's crons that runs `kpi schedule --once` (the jobs
  that are due, so late or dropped scheduled runs are caught up), passes the `${VARS}` the
  config uses from repository secrets, and commits the SQLite store back to the repository
  so its history survives between runs (a cache would be evicted after 7 days unused).
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from kpi_collector.config.cron import _MONTH_NAMES, _fields, _weekdays
from kpi_collector.config.loader import _VAR
from kpi_collector.config.plain import sqlite_file
from kpi_collector.errors import ConfigError
from kpi_collector.schedule.scheduler import capped_jitter, plan

if TYPE_CHECKING:
    from kpi_collector.config.plain import Config

FORMATS = ("crontab", "systemd", "systemd-timer", "github-actions")
WATCHDOG_SEC = 600  # the daemon pings at least every HEARTBEAT_EVERY (60 s), also during a job
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
    if kind == "systemd-timer":
        return systemd_timer(config, kpi=kpi)
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
        line = f"{_standard_cron(job.cron.expr)} {command} schedule --run {job.name} >> {log} 2>&1"
        lines.append(line.replace("%", r"\%"))  # cron turns a bare % into a newline
    return "\n".join(lines) + "\n"


def systemd(config: Config, *, kpi: str | None = None) -> str:
    path = _config_path(config)
    command = _systemd_exec(kpi or kpi_command(), "-c", str(path), "schedule")
    return f"""\
# /etc/systemd/system/kpi-collector.service
# Install: save as above, then `sudo systemctl daemon-reload && sudo systemctl enable --now kpi-collector`.
# Logs: `journalctl -u kpi-collector -f`. Health: `kpi -c {shlex.quote(str(path))} validate --health`.
# After editing kpi.yaml: `sudo systemctl restart kpi-collector` (the run in progress finishes first).
{_user_note(config)}
[Unit]
Description=kpi-collector scheduler for {_systemd_text(str(path))}
Wants=network-online.target
After=network-online.target

[Service]
# the scheduler tells systemd when it is ready and pings its watchdog while it lives
Type=notify
NotifyAccess=main
WatchdogSec={WATCHDOG_SEC}
User={SERVICE_USER}
Group={SERVICE_USER}
WorkingDirectory={_systemd_text(str(path.parent))}
ExecStart={command}
Environment=PYTHONUNBUFFERED=1
# SIGTERM goes to the scheduler only: it finishes writing the run in progress, then exits 0
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=600
Restart=on-failure
RestartSec=30
{_hardening(config)}
[Install]
WantedBy=multi-user.target
{systemd_worker(config, kpi=kpi)}"""


def systemd_worker(config: Config, *, kpi: str | None = None) -> str:
    """With `executor: celery`, the unit of a `kpi worker` for every machine that collects
    (its queues: those the config's sources name); empty for the local executor."""
    from kpi_collector.config.plain import PlainCeleryExecutor

    executor = config.settings.executor
    if not isinstance(executor, PlainCeleryExecutor):
        return ""
    from kpi_collector.run.celery_executor import config_queues

    path = _config_path(config)
    queues = ",".join(config_queues(config)) or "kpi"
    command = _systemd_exec(kpi or kpi_command(), "-c", str(path), "worker", "--queues", queues)
    # Celery's warm shutdown finishes the batches in hand; each batch's sources are bounded
    # by their timeouts, and a batch cut short is handed to another worker (acks_late)
    stop = int(executor.wait_seconds + 60)
    return f"""
# /etc/systemd/system/kpi-collector-worker.service
# With `executor: celery`: one on every machine that collects (the scheduler's may run one too).
# Each worker reads its own copy of {path} (and .env with this machine's secrets); it refuses
# batches of a run whose config differs. Keep on --queues only the queues this machine can reach.
# Install: `sudo systemctl daemon-reload && sudo systemctl enable --now kpi-collector-worker`.
# Logs: `journalctl -u kpi-collector-worker -f`. Who is there: `kpi -c {shlex.quote(str(path))} workers`.
[Unit]
Description=kpi-collector worker (Celery) for {_systemd_text(str(path))}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={SERVICE_USER}
Group={SERVICE_USER}
WorkingDirectory={_systemd_text(str(path.parent))}
ExecStart={command}
Environment=PYTHONUNBUFFERED=1
# SIGTERM: Celery's warm shutdown, the batches in hand are collected first
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={stop}
Restart=always
RestartSec=10
{_hardening(config)}
[Install]
WantedBy=multi-user.target
"""


def systemd_timer(config: Config, *, kpi: str | None = None) -> str:
    """A oneshot service for `kpi schedule --once` and a timer on every job's cron."""
    path = _config_path(config)
    command = _systemd_exec(kpi or kpi_command(), "-c", str(path), "schedule", "--once")
    calendars: list[str] = []
    for job in plan(config):
        for spec in on_calendar(job.cron.expr, config.timezone):
            if spec not in calendars:
                calendars.append(spec)
    # the timer's spread never longer than `kpi schedule` would wait for the job fired most
    # often (half the way to its next fire time); `--once` waits out what is left of each
    # job's own jitter after the fire time, so the oneshot may take that much longer
    delay = int(min(_jitter_waits(config, config.settings.jitter_seconds or 60.0)))
    timeout = 3600 + int(max(_jitter_waits(config, config.settings.jitter_seconds)))
    timers = "\n".join(f"OnCalendar={spec}" for spec in calendars)
    return f"""\
# /etc/systemd/system/kpi-collector.service
# Install both files, then `sudo systemctl daemon-reload && sudo systemctl enable --now kpi-collector.timer`.
# Logs: `journalctl -u kpi-collector`. Next runs: `systemctl list-timers kpi-collector`.
{_user_note(config)}
[Unit]
Description=kpi-collector: run what is due for {_systemd_text(str(path))}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User={SERVICE_USER}
Group={SERVICE_USER}
WorkingDirectory={_systemd_text(str(path.parent))}
ExecStart={command}
Environment=PYTHONUNBUFFERED=1
TimeoutStartSec={timeout}
{_hardening(config)}
# /etc/systemd/system/kpi-collector.timer
[Unit]
Description=kpi-collector on its schedule for {path}

[Timer]
{timers}
# a run missed while the machine was off or asleep happens at the next boot
Persistent=true
# many installations should not call the same APIs in the same second
RandomizedDelaySec={delay}
AccuracySec=1s

[Install]
WantedBy=timers.target
"""


SERVICE_USER = "kpi"


def _user_note(config: Config) -> str:
    folder = _config_path(config).parent
    return (
        f"# It runs as the dedicated user {SERVICE_USER}: `sudo useradd --system --no-create-home "
        f"{SERVICE_USER}`,\n# then `sudo chown -R {SERVICE_USER}: {shlex.quote(str(folder))}` (it reads the "
        "config and .env, and writes the store)."
    )


def _hardening(config: Config) -> str:
    """Sandboxing: the file system read-only but for the config's folder and the folders the
    store and the file destinations write in. Those are written `-/path`: systemd refuses to
    start a unit with a `ReadWritePaths=` that does not exist (a store's `data/` before the
    first run), and ignores a `-` one until it does."""
    home = _config_path(config).parent
    places = [sqlite_file(config.store_url)]
    places += [d.writes_to(home) for d in config.destinations if d.enabled]
    writable = sorted({Path(p).parent for p in places if p is not None} - {home})
    paths = " ".join(
        [_systemd_path(str(home)), *(_systemd_path(f"-{folder}") for folder in writable)]
    )
    return f"""NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ReadWritePaths={paths}
"""


_SD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def on_calendar(expr: str, timezone: str = "UTC") -> list[str]:
    """systemd `OnCalendar=` expressions (systemd.time(7)) that fire when the cron does.

    Cron fires when day of month *or* day of week matches if both are restricted; systemd
    requires both, so that case gives two expressions. A time that does not exist on the day
    clocks go forward (02:30 in Europe) fires late that day (03:30; see `Cron`), where systemd
    skips it: such a time gets an expression of its own (on the other days it runs `kpi
    schedule --once` with nothing due). Raises ConfigError for a field systemd cannot say (a
    step inside a range of days, for one)."""
    specs = _on_calendar(expr, timezone)
    for hour, minute in _late_in_spring(expr, timezone):
        fields = _fields(expr)
        late = " ".join([str(minute), str(hour), *fields[2:]])
        specs += [spec for spec in _on_calendar(late, timezone) if spec not in specs]
    return specs


_SPRING_YEARS = 3  # the years ahead whose changes of the clocks are looked at


def _late_in_spring(expr: str, timezone: str) -> list[tuple[int, int]]:
    """The local times (hour, minute) the cron fires at, late, on a day clocks go forward in
    `timezone` within the next few years: its times in the skipped span, moved past it."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from kpi_collector.config.cron import Cron

    zone = ZoneInfo(timezone)
    cron = Cron(expr, zone)
    minutes, hours = _fields(expr)[:2]
    clock = Cron(f"{minutes} {hours} * * *")  # the cron's own times of day, which systemd has

    def own_time(local: datetime) -> bool:
        at = datetime(2000, 1, 1, local.hour, local.minute, tzinfo=UTC)
        return clock.previous(at) == at

    found: list[tuple[int, int]] = []
    hour = timedelta(hours=1)
    start = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
    at = start
    while at < start + timedelta(days=366 * _SPRING_YEARS):
        before, after = at.astimezone(zone).utcoffset(), (at + hour).astimezone(zone).utcoffset()
        if before is not None and after is not None and after > before:
            change = at
            while change.astimezone(zone).utcoffset() == before:  # to the minute
                change += timedelta(minutes=1)
            for fire in cron.times(change, change + (after - before)):
                local = fire.astimezone(zone)
                if not own_time(local) and (local.hour, local.minute) not in found:
                    found.append((local.hour, local.minute))
        at += hour
    return found


def _on_calendar(expr: str, timezone: str) -> list[str]:
    minute, hour, dom, month, dow = _fields(expr)
    zone = "" if timezone == "UTC" else f" {timezone}"
    time = f"{_sd_field(hour, 0, expr)}:{_sd_field(minute, 0, expr)}:00"
    # a field that starts with "*" is unrestricted for cron's "either day" rule, yet a step
    # still restricts it: "*/3" is Sunday, Wednesday and Saturday
    day_any = dom.startswith("*")
    dow_any = dow.startswith("*")
    days_of_week = sorted(_weekdays(dow))
    weekdays = "" if len(days_of_week) == 7 else ",".join(_SD_DAYS[d] for d in days_of_week) + " "
    months = _sd_field(_month_numbers(month), 1, expr)
    days = _sd_days(dom, expr)
    date = f"*-{months}~{days[1:]}" if days.startswith("~") else f"*-{months}-{days}"
    if not day_any and not dow_any:
        return [f"{date} {time}{zone}", f"{weekdays}*-{months}-* {time}{zone}"]
    return [f"{weekdays}{date} {time}{zone}"]


def _month_numbers(field: str) -> str:
    """A cron month field with its names (`jan-mar`, `Aug`) written as numbers."""
    return re.sub(
        r"[a-z]{3}",
        lambda m: (
            str(_MONTH_NAMES.index(m[0].lower()) + 1) if m[0].lower() in _MONTH_NAMES else m[0]
        ),
        field,
        flags=re.IGNORECASE,
    )


def _sd_days(dom: str, expr: str) -> str:
    items = dom.split(",")
    if any(i.upper() == "L" for i in items):
        if len(items) > 1:
            raise ConfigError(
                f"{expr!r}: systemd cannot mix L with other days; use --print crontab or systemd"
            )
        return "~01"  # systemd.time(7): `*-*~01` is the last day of the month
    return _sd_field(dom, 1, expr)


def _sd_field(field: str, first: int, expr: str) -> str:
    """One numeric cron field in systemd's syntax: `*`, `5`, `1,15`, `1-5` -> `1..5`,
    `*/15` -> `{first}/15`, `5/15` -> `5/15`."""
    out = []
    for item in field.split(","):
        value, _, step = item.partition("/")
        if value == "*":
            out.append(f"{first}/{step}" if step else "*")
        elif "-" in value:
            if step:
                raise ConfigError(
                    f"{expr!r}: systemd timers have no stepped range ({item}); "
                    "list the values, or use --print crontab or systemd"
                )
            low, high = value.split("-", 1)
            out.append(f"{int(low):02d}..{int(high):02d}")
        else:
            out.append(f"{int(value):02d}/{step}" if step else f"{int(value):02d}")
    return ",".join(out)


def github_actions(config: Config) -> str:
    path = _config_path(config)
    root = _repository_root(path.parent)
    config_rel = _relative(path, root)
    store = config.store_url
    file = sqlite_file(store)
    db = Path(file) if file is not None else None
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
    frequent = [e for e in crons if _shortest_gap(e, config.timezone) < 300]
    if frequent:
        header.append(
            f"# WARNING: GitHub runs scheduled workflows at most every 5 minutes; {', '.join(frequent)}"
        )
        header.append("# will run less often than its cron says there.")
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
    # `--once` may wait out a job's jitter after its fire time before it runs (GitHub: 6 h at most)
    waited = max(_jitter_waits(config, config.settings.jitter_seconds))
    minutes = min(30 + int(waited) // 60, 360)
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
        f"    timeout-minutes: {minutes}",
        "    steps:",
        *steps,
    ]
    return "\n".join(header + notes + body) + "\n"


def _jitter_waits(config: Config, jitter: float) -> list[float]:
    """The longest wait `kpi schedule` allows after each fire time of each job over a week
    (at least one fire time each) under `jitter` seconds: `capped_jitter`, as the scheduler
    computes it."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 1, 5, tzinfo=UTC)
    waits = [0.0]
    for job in plan(config):
        fires = list(job.cron.times(start, start + timedelta(days=7)))
        first = job.cron.next_after(start, inclusive=True)
        fires += [first] if first is not None and not fires else []
        waits += [capped_jitter(job, fire, jitter) for fire in fires]
    return waits[1:] or waits


def _shortest_gap(expr: str, timezone: str) -> float:
    """The shortest time between two fire times of `expr` over a week, in seconds."""
    from datetime import UTC, datetime, timedelta

    from kpi_collector.config.cron import Cron

    cron = Cron(expr, timezone)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    times = [t.timestamp() for t in cron.times(start, start + timedelta(days=7))]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return min(gaps) if gaps else float("inf")


def _standard_cron(expr: str) -> str:
    """`expr` for a cron without `L` (Vixie, cronie, busybox, GitHub): the last day of the
    month is one of the 28th to 31st; `kpi schedule --run` / `--once` then serve the month's
    fire time once, on its last day (on the others the newest fire time is already served)."""
    fields = _fields(expr)
    days = fields[2].split(",")
    if not any(day.upper() == "L" for day in days):
        return expr
    fields[2] = ",".join(dict.fromkeys("28-31" if day.upper() == "L" else day for day in days))
    return " ".join(fields)


def _posix_cron(expr: str) -> str:
    """GitHub reads POSIX cron: no @macros, no `L`, day of week 0-6 (or names)."""
    fields = _fields(_standard_cron(expr))
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


def _systemd_exec(*args: str) -> str:
    """An `ExecStart=` command line of `args`, each read back whole: systemd splits the line
    at spaces outside quotes (a path with a space is quoted), and `%` starts a specifier."""
    return " ".join(_systemd_path(arg) for arg in args)


def _systemd_path(path: str) -> str:
    """One word of a systemd line that systemd splits at spaces (`ExecStart=`,
    `ReadWritePaths=`): quoted where it needs it, `%` written `%%`."""
    return _systemd_text(shlex.quote(path))


def _systemd_text(text: str) -> str:
    """`text` in a unit setting taken whole (`WorkingDirectory=`, `Description=`): only its
    `%` needs escaping, or systemd reads it as a specifier (`%h`, the home folder)."""
    return text.replace("%", "%%")
