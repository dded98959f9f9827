"""What `kpi` prints (issue 13): layouts that fit the terminal, names checked with a hint,
numbers written as people write them. Real processes and a real SQLite store."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kpi_collector.commands.history import history_lines
from kpi_collector.errors import ConfigError
from kpi_collector.store import HistoryStore
from kpi_collector.store.history import StoredObservation
from tests.cli import run_kpi

KPI = [sys.executable, "-m", "kpi_collector"]


CONFIG = f"""\
kpis:
  billing.revenue: {{title: Monthly recurring revenue from paying customers, unit: USD}}
  crm.paying: {{title: Paying customers}}
sources:
  - name: crm
    type: command
    command: [{sys.executable!r}, -c, 'print(1)']
    metric: paying
  - name: billing
    type: command
    command: [{sys.executable!r}, -c, 'print(1)']
    metric: revenue
  - name: github
    type: command
    command: [{sys.executable!r}, -c, 'print(1)']
    metric: stars
destinations:
  - {{type: csv, path: out.csv}}
"""
# 14 days of three KPIs; values written by hand, as the table must show them
DAYS = [datetime(2026, 3, d, 9, tzinfo=UTC) for d in range(1, 15)]
REVENUE = [1_234_567.5 + 1000 * i for i in range(14)]  # $1,234,567.50, $1,235,567.50, ...
PAYING = [100 + i for i in range(14)]
STARS = [98_765 + i for i in range(14)]


@pytest.fixture
def filled(workdir: Path) -> Path:
    (workdir / "kpi.yaml").write_text(CONFIG)
    store = HistoryStore(f"sqlite:///{workdir / 'kpi.db'}")
    try:
        points = [
            StoredObservation(kpi, day.timestamp(), value, kpi.partition(".")[0])
            for kpi, values in (
                ("billing.revenue", REVENUE),
                ("crm.paying", PAYING),
                ("github.stars", STARS),
            )
            for day, value in zip(DAYS, values, strict=True)
        ]
        assert store.add_observations(points) == 42
    finally:
        store.close()
    return workdir


def test_history_lines_fit_and_split_into_blocks() -> None:
    rows = [("Stars", {"2026-03-01": "98,765", "2026-03-02": "98,766", "2026-03-03": "1"})]
    periods = ["2026-03-01", "2026-03-02", "2026-03-03"]
    # 5 for the name, then 12 per period (2 + 10): two fit in 30 columns, the third goes below
    assert history_lines(rows, periods, width=30, corner="KPI") == [
        "KPI    2026-03-01  2026-03-02",
        "Stars      98,765      98,766",
        "",
        "KPI    2026-03-03",
        "Stars           1",
    ]
    # a title longer than the room wraps; the value stays whole on the first line
    assert history_lines([("Paying customers", {"d": "12,345"})], ["d"], width=17) == [
        " " * 16 + "d",
        "Paying     12,345",
        "customers",
    ]


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_history_never_cuts_a_value_or_label(filled: Path, columns: int) -> None:
    out = run_kpi(filled, "history", env={"COLUMNS": str(columns)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    tokens = out.stdout.split()
    assert "…" not in out.stdout
    for day in DAYS:
        assert f"2026-03-{day.day:02d}" in tokens
    expected = [f"${v:,.2f}" for v in REVENUE] + [str(v) for v in PAYING]
    expected += [f"{v:,}" for v in STARS]
    for value in expected:
        assert value in tokens, value
    words = " ".join(tokens)
    assert "Paying customers" in words
    if columns >= 80:
        assert "Monthly recurring revenue from paying customers" in out.stdout
    # each day's column is 15 wide ("  $1,234,567.50"); the names take 47 (the longest title),
    # at 40 columns only 25 (the title wraps): 1, 2 and 10 days side by side
    blocks = {40: 14, 80: 7, 200: 2}[columns]
    assert sum(line.startswith("KPI ") for line in lines) == blocks
    hint = f"(14 days in {blocks} blocks of {columns} columns: --since 14d, --period week or"
    assert out.stderr.startswith(hint) if blocks > 3 else out.stderr == ""


def test_unknown_kpi_or_source_is_a_usage_error_with_a_hint(filled: Path) -> None:
    typo = run_kpi(filled, "history", "gihub.stars")
    assert typo.returncode == 2
    assert typo.stderr.splitlines() == [
        "Error: no KPI named 'gihub.stars' (did you mean 'github.stars'?); KPIs: crm.paying, "
        "billing.revenue, github.stars"
    ]
    assert typo.stdout == ""
    nothing_close = run_kpi(filled, "history", "zzz", "--format", "json")
    assert nothing_close.returncode == 2 and "no KPI named 'zzz';" in nothing_close.stderr
    known = run_kpi(filled, "history", "github.stars", "--format", "csv")
    assert known.returncode == 0 and known.stdout.count("github.stars") == 14
    for command in ("run", "backfill"):
        only = run_kpi(filled, command, "--only", "gihub")
        assert only.returncode == 2, (command, only.stderr)
        assert "no source named 'gihub' (did you mean 'github'?)" in only.stderr
    job = run_kpi(filled, "schedule", "--run", "mian")
    assert job.returncode == 2
    assert "no scheduled job named 'mian' (did you mean 'main'?); jobs: main" in job.stderr
    wrong = run_kpi(filled, "deliver", "-d", "cvs")
    assert wrong.returncode == 2
    assert "no enabled destination named 'cvs' (did you mean 'csv'?)" in wrong.stderr


def test_serve_on_a_taken_port_names_the_holder(filled: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_kpi(filled, "serve", "--port", str(port))
    assert out.returncode == 2
    assert "dashboard on" not in out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"port {port} on 127.0.0.1 is taken by process {os.getpid()} (" in lines[0]
    assert "--port N" in lines[0]


@contextlib.contextmanager
def _serving(folder: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """`kpi OPTIONS serve --port 0` in `folder`, without our KPI_* variables, its output
    piped; stopped (SIGTERM) at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    server = subprocess.Popen(
        [*KPI, *options, "serve", "--port", "0"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield server
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_prints_the_url_it_listens_on(filled: Path) -> None:
    import urllib.request

    with _serving(filled) as server:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("dashboard on http://127.0.0.1:"), line
        url = line.split()[2]
        assert not url.endswith(":0/")
        # the URL is printed once the socket listens: the first request is answered
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200


def _stored_rows(db: Path) -> int:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db)) as conn:  # closed: an open file here would hold the folder
        return int(conn.execute("SELECT count(*) FROM observations").fetchone()[0])


def test_demo_refuses_a_folder_in_use_and_changes_nothing(workdir: Path) -> None:
    first = run_kpi(workdir, "demo", "--dir", "demo")
    assert first.returncode == 0, first.stderr
    db, config = workdir / "demo" / "kpi.db", workdir / "demo" / "kpi.yaml"
    rows, written = _stored_rows(db), config.read_bytes()
    with _serving(workdir, "-c", "demo/kpi.yaml") as server:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("dashboard on")  # the store is open
        again = run_kpi(workdir, "demo", "--dir", "demo")
    assert again.returncode == 1
    assert again.stdout == ""
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith(f"error: demo is in use by process {server.pid} (")
    assert (
        "serve --port 0): stop it first, or use `kpi demo --dir OTHER`; nothing was changed" in line
    )
    assert _stored_rows(db) == rows and config.read_bytes() == written
    # a run holding the store's lock (here: this process has the lock file open) is found too
    with (workdir / "demo" / "kpi.db.lock").open("a"):
        locked = run_kpi(workdir, "demo", "--dir", "demo")
    assert locked.returncode == 1 and f"in use by process {os.getpid()} (" in locked.stderr
    assert _stored_rows(db) == rows
    # once free, the demo is rebuilt
    assert run_kpi(workdir, "demo", "--dir", "demo").returncode == 0


def test_numbers_are_written_as_people_write_them() -> None:
    from kpi_collector.format import format_change, format_value, plural

    assert format_value(8450.5, "USD") == "$8,450.50"
    assert format_value(8450.0, "USD") == "$8,450"
    assert format_value(-3.5, "EUR") == "-€3.50"
    assert format_value(1234.567, "JPY") == "¥1,235"  # the yen has no minor unit
    assert format_value(0.2367, "ratio") == "23.67%"
    assert format_value(1.0, "ratio") == "100%"
    assert format_change(0.25, 0.2, "ratio") == "+5 pp (+25.00%)"
    assert format_change(8450.5, 8000.0, "USD") == "+$450.50 (+5.63%)"
    assert [plural(n, "error") for n in (0, 1, 2)] == ["0 errors", "1 error", "2 errors"]
    assert plural(1, "delivery", "deliveries") == "1 delivery"
    assert plural(1200, "delivery", "deliveries") == "1,200 deliveries"


def test_a_number_past_the_doubles_exact_digits_shows_no_invented_ones() -> None:
    """A stored double holds about 17 significant digits: a value from 1e16 up is written
    with those (Python's shortest form), not its binary expansion (1e300 was a 301-digit
    number, "1,000,000,000,000,000,052,504,760,...", that widened `kpi history` to 400
    columns); below 1e16 every digit is the value's own, as before."""
    from kpi_collector.format import format_value

    assert format_value(1e300) == "1e+300"
    assert format_value(-1.25e25) == "-1.25e+25"
    assert format_value(12345678901234567.0) == "1.2345678901234568e+16"
    assert format_value(3.5e16, "USD") == "$3.5e+16"
    # a whole number below 1e16 is written as one (it was "9,007,199,254,740,992.0")
    assert format_value(2.0**53) == "9,007,199,254,740,992"
    assert format_value(12345678.9) == "12,345,678.9"
    assert format_value(1e-300) == "1e-300"


def test_to_pandas_gives_float_columns_with_nan() -> None:
    import math
    from datetime import datetime

    from kpi_collector.run.result import RunResult

    started = datetime(2026, 3, 1, 9, tzinfo=UTC)
    result = RunResult(
        run_id=1,
        started_at=started,
        finished_at=started,
        values={"a.x": 10.0, "a.y": 3.0},
        previous={"a.x": 7.5},
    )
    frame = result.to_pandas()
    assert {c: str(frame[c].dtype) for c in ("value", "previous", "change")} == {
        "value": "float64",
        "previous": "float64",
        "change": "float64",
    }
    first, second = frame.change.tolist()
    assert first == 2.5 and math.isnan(second)
    assert math.isnan(frame.previous.tolist()[1])
    empty = RunResult(run_id=None, started_at=started, finished_at=started).to_pandas()
    assert str(empty.previous.dtype) == "float64" and len(empty) == 0


def test_run_says_what_was_delivered_and_counts_in_words(filled: Path) -> None:
    out = run_kpi(filled, "run")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "delivered to csv" in lines
    assert lines[-1].startswith("run ") and ": 3 values, 0 errors in " in lines[-1]
    (filled / "kpi.yaml").write_text(
        CONFIG.replace("print(1)", "import sys; sys.exit(3)", 1).replace(
            "destinations:\n  - {type: csv, path: out.csv}\n", ""
        )
    )
    failed = run_kpi(filled, "run")
    assert failed.returncode == 1
    assert ": 2 values, 1 error in " in failed.stdout.splitlines()[-1]
    assert "delivered" not in failed.stdout


def _verbose_config(folder: Path, url: str) -> None:
    (folder / "kpi.yaml").write_text(f"""\
defaults: {{timeout: 5, retries: 1}}
sources:
  - name: blog
    type: html
    url: {url}/blog
    metrics:
      posts: {{css: "a.anthrazit", count: true}}
      missing: "#no-such-element"
  - name: flaky
    type: http_json
    url: {url}/flaky
    metrics: {{value: value}}
  - name: stats
    type: http_json
    url: {url}/stats
    metrics: {{paying: data.customers.paying, gone: data.customers.gone}}
  - name: pod
    type: html
    url: {url}/private
    login: {{url: {url}/login, fields: {{email: me@example.com, password: "${{POD_PASSWORD}}"}}}}
    metrics:
      total: "#total"
""")


def test_verbose_says_what_happens_and_keeps_the_failing_page(
    site: tuple[str, object], workdir: Path
) -> None:
    import re

    from tests.conftest import TOKEN

    url, _ = site
    _verbose_config(workdir, url)
    env = {"POD_PASSWORD": TOKEN}
    out = run_kpi(workdir, "-v", "run", env=env)
    assert out.returncode == 1
    err = out.stderr
    assert f"DEBUG kpi_collector.http: GET {url}/blog: HTTP 200," in err
    assert "DEBUG kpi_collector.extract: posts: CSS 'a.anthrazit' gave 7, read as 7" in err
    assert "DEBUG kpi_collector.extract: total: CSS '#total' gave '1.2k', read as 1200" in err
    assert f"login: reading the form on {url}/login" in err
    assert f"login: sending POST to {url}/login (fields: csrf, email, password)" in err
    assert f"login: accepted by {url}/login" in err
    assert "INFO kpi_collector.retry: retry 1 of 1 in " in err and "HTTP 500" in err
    # each source's outcome, whatever its type
    assert "DEBUG kpi_collector.run: pod (html): total=1200 in " in err
    assert "DEBUG kpi_collector.run: blog (html): posts=7; 1 failed in " in err
    assert TOKEN not in err + out.stdout
    saved = dict(
        re.findall(
            r"INFO kpi_collector.extract: (\w+): a metric could not be read "
            r"from \S+; the answer as fetched is saved in (\S+)",
            err,
        )
    )
    assert sorted(saved) == ["blog", "stats"], err
    pages = {name: Path(path) for name, path in saved.items()}
    try:
        assert pages["blog"].name.startswith("kpi-blog-") and pages["blog"].suffix == ".html"
        assert 'class="anthrazit"' in pages["blog"].read_text()
        assert pages["stats"].suffix == ".json"
        assert '"paying": 42' in pages["stats"].read_text()
        assert oct(pages["blog"].stat().st_mode & 0o777) == "0o600"
    finally:
        for page in pages.values():
            page.unlink()
    assert "failed blog.missing: missing: CSS selector '#no-such-element' matched nothing" in (
        out.stdout
    )


def test_quiet_and_log_level(site: tuple[str, object], workdir: Path) -> None:
    url, _ = site
    _verbose_config(workdir, url)
    env = {"POD_PASSWORD": "not-the-password-1"}
    # /flaky fails its first request only: the first run retries it
    info = run_kpi(workdir, "run", env={**env, "KPI_LOG_LEVEL": "info"})
    assert "INFO kpi_collector.retry: retry 1 of 1" in info.stderr
    assert "DEBUG" not in info.stderr
    plain = run_kpi(workdir, "run", env=env)
    assert plain.returncode == 1 and "DEBUG" not in plain.stderr and "INFO" not in plain.stderr
    assert "saved in" not in plain.stderr
    quiet = run_kpi(workdir, "-q", "run", env=env)
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert [line.split(":")[0] for line in quiet.stderr.splitlines()] == [
        "failed blog.missing",
        "failed stats.gone",
        "failed pod",
    ]
    bad = run_kpi(workdir, "run", env={**env, "KPI_LOG_LEVEL": "loud"})
    assert bad.returncode == 2 and bad.stderr.splitlines() == [
        "Error: KPI_LOG_LEVEL='loud' is not a log level; use one of debug, info, warning, error"
    ]
    both = run_kpi(workdir, "-v", "-q", "run", env=env)
    assert both.returncode == 2 and both.stderr == "Error: use one of -v and -q\n"


def _schema(workdir: Path) -> dict[str, object]:
    import json

    out = run_kpi(workdir, "schema")
    assert out.returncode == 0, out.stderr
    schema: dict[str, object] = json.loads(out.stdout)
    return schema


def _problems(schema: dict[str, object], text: str) -> list[str]:
    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(schema)
    return sorted(error.message for error in validator.iter_errors(yaml.safe_load(text)))


def test_schema_checks_configs_plugins_included(workdir: Path) -> None:
    import jsonschema

    schema = _schema(workdir)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # `kpi init` writes the schema beside a config that names it on its first line
    init = run_kpi(workdir, "init")
    assert init.returncode == 0, init.stderr
    starter = (workdir / "kpi.yaml").read_text()
    assert starter.splitlines()[0] == "# yaml-language-server: $schema=./kpi.schema.json"
    import json

    assert json.loads((workdir / "kpi.schema.json").read_text()) == schema
    assert _problems(schema, starter) == []
    assert _problems(schema, CONFIG) == []
    # the third-party plugin (tests/plugin, an entry point) is in it with its own keys
    assert _problems(schema, "sources:\n  - {type: dice, sides: 12}\n") == []
    # an integer, or a text the loader reads as one (`${SIDES}`): neither
    assert _problems(schema, "sources:\n  - {type: dice, sides: many}\n") == [
        "'many' is not valid under any of the given schemas"
    ]
    wrong_key = "sources:\n  - {type: github, repo: python/cpython, tokn: x}\n"
    assert _problems(schema, wrong_key) == [
        "Additional properties are not allowed ('tokn' was unexpected)"
    ]
    unknown_type = _problems(schema, "sources:\n  - {type: gihub, repo: a/b}\n")
    assert len(unknown_type) == 1 and unknown_type[0].startswith("'gihub' is not one of [")
    assert _problems(schema, "destinations:\n  - {type: memory}\ntimezone: 3\n") == [
        "3 is not of type 'string'"
    ]


#: values the loader takes in another type than the field's (a before-validator reads them):
#: `kpi schema` marked each an error in the editor, in a config `kpi validate` accepts
OTHER_FORMS = {
    "a change in percent written with %": (
        "alerts:\n  - {kpi: a.b, change: {days: 7, below: -20%, above: 50 %}}\n"
    ),
    "one destination to notify, not a list": (
        "destinations:\n  - {type: slack, webhook_url: 'https://hooks.example/x'}\n"
        "alerts:\n  - {kpi: a.b, below: 1, notify: slack}\n"
    ),
    "a GA4 property id as a number": (
        "sources:\n  - {type: google_analytics, property_id: 123456789, "
        "credentials_file: sa.json}\n"
    ),
    "a Discord server id as a number": (
        "sources:\n  - {type: discord, guild_id: 197038439483310086, bot_token: x}\n"
    ),
}


@pytest.mark.parametrize("form", list(OTHER_FORMS))
def test_values_the_loader_takes_in_another_type_fit_the_schema(form: str, workdir: Path) -> None:
    from kpi_collector.config import parse_config

    text = "sources:\n  - {name: a, type: html, url: 'http://x/', metrics: {b: '#b'}}\n"
    text = OTHER_FORMS[form] if "sources:" in OTHER_FORMS[form] else text + OTHER_FORMS[form]
    parse_config(text, path=workdir / "kpi.yaml", env={})  # the loader takes it
    assert _problems(_schema(workdir), text) == []


HTML = "sources:\n  - {name: a, type: html, url: 'http://x/', metrics: {b: {css: '#b'%s}}%s}\n"


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        # a variable where a number or a boolean goes: the loader reads it, the schema said
        # "'${T}' is not of type 'number'"
        (HTML % ("", ", timeout: '${T}'"), True),
        (HTML % ("", ", timeout: '${UNSET:-12}'"), True),
        (HTML % ("", ", enabled: '${X:-false}'"), True),
        (HTML % (", count: '${C}'", ""), True),
        (HTML % ("", ", timeout: '${T'"), False),
        (HTML % ("", ", timeout: soon"), False),
        (HTML % ("", ", timeout: ''"), False),
        (HTML % ("", ", timeout: '30'"), True),
        # `count: 1` is true to the loader (pydantic's bool), and the schema said boolean only
        (HTML % (", count: 1", ""), True),
        (HTML % (", count: 0", ""), True),
        (HTML % (", count: 2", ""), False),
        (HTML % (", count: 'true'", ""), True),
        (HTML % (", count: maybe", ""), False),
        ("defaults: {retries: '${R}', timeout: '${T:-5}'}\n", True),
        # a choice of texts: the loader checks what the variable gives
        (
            HTML % ("", "") + "destinations:\n  - {type: csv, path: o.csv, every: '${E:-day}'}\n",
            True,
        ),
        (HTML % ("", "") + "destinations:\n  - {type: csv, path: o.csv, every: hourly}\n", False),
        ("sources:\n  - {type: '${T}', url: 'http://x/'}\n", False),
        ("defaults: {retries: '${R}x'}\n", False),
    ],
)
def test_the_schema_takes_what_the_loader_takes(text: str, accepted: bool, tmp_path: Path) -> None:
    """`kpi schema` marked `timeout: ${T}`, `enabled: ${X:-false}` and `count: 1` errors in
    the editor, though `kpi validate` accepts them."""
    from kpi_collector.config import parse_config
    from kpi_collector.config.schema import config_schema

    env = {"T": "30", "X": "true", "C": "true", "R": "3"}
    try:
        parse_config(text, path=tmp_path / "kpi.yaml", env=env)
    except ConfigError:
        loaded = False
    else:
        loaded = True
    assert loaded is accepted, "the loader"
    assert (_problems(config_schema(), text) == []) is accepted, "the schema"


def test_a_plugin_that_fails_to_load_leaves_schema_and_init_working(workdir: Path) -> None:
    """An installed plugin whose module is gone (or raises on import) ended `kpi schema`
    and `kpi init` (which writes the schema) with "config error: source type 'broken' ...
    failed to load", though neither uses it; the schema describes it by its type alone."""
    import json

    checkout = workdir / "site"
    info = checkout / "kpi_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kpi-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[kpi_collector.sources]\nbroken = kpi_broken_gone:Broken\n"
    )
    env = {"PYTHONPATH": str(checkout)}
    out = run_kpi(workdir, "schema", env=env)
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema["$defs"]["sources.broken"] == {
        "type": "object",
        "properties": {"type": {"const": "broken"}},
    }
    assert "github" in schema["properties"]["sources"]["items"]["properties"]["type"]["enum"]
    project = workdir / "project"
    init = run_kpi(workdir, "init", "--dir", str(project), env=env)
    assert init.returncode == 0, init.stderr
    assert json.loads((project / "kpi.schema.json").read_text()) == schema
    # a config that uses it still says why it cannot
    (project / "kpi.yaml").write_text("sources:\n  - {type: broken}\n")
    used = run_kpi(project, "validate", env=env)
    assert used.returncode == 2 and "source type 'broken'" in used.stderr


def test_every_shipped_sample_entry_fits_the_schema(workdir: Path) -> None:
    import yaml

    from kpi_collector.config.plugins import (
        DESTINATION_GROUP,
        SOURCE_GROUP,
        destination_sample,
        names,
        source_sample,
    )

    schema = _schema(workdir)
    checked = 0
    for group, key, sample in (
        (SOURCE_GROUP, "sources", source_sample),
        (DESTINATION_GROUP, "destinations", destination_sample),
    ):
        for kind in names(group):
            if kind in ("dice", "memory", "store"):  # the test plugin's and `store` ship none
                continue
            entry = yaml.safe_load(sample(kind))
            document = entry if isinstance(entry, dict) else {key: entry}
            assert _problems(schema, yaml.safe_dump(document)) == [], kind
            checked += 1
    assert checked >= 25


def test_days_as_people_write_them() -> None:
    from datetime import date

    from kpi_collector.config.dates import parse_day

    today = date(2026, 3, 31)
    assert parse_day("2026-01-31", today) == date(2026, 1, 31)
    assert parse_day("today", today) == date(2026, 3, 31)
    assert parse_day("Yesterday", today) == date(2026, 3, 30)
    assert parse_day("30d", today) == date(2026, 3, 1)
    assert parse_day("30 days", today) == date(2026, 3, 1)
    assert parse_day("2w", today) == date(2026, 3, 17)
    assert parse_day("1mo", today) == date(2026, 2, 28)  # no 31 February: its last day
    assert parse_day("13 months ago", today) == date(2025, 2, 28)
    assert parse_day("1y", date(2024, 2, 29)) == date(2023, 2, 28)
    for bad in ("30", "3x", "last week", ""):
        with pytest.raises(ValueError, match="is not a date like 2026-01-31, today, yesterday"):
            parse_day(bad, today)


def test_since_takes_relative_days(filled: Path) -> None:
    import json
    from datetime import timedelta

    before = datetime.now(UTC).date()
    out = run_kpi(filled, "history", "--since", "yesterday", "--format", "json")
    after = datetime.now(UTC).date()
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["since"] in {str(before - timedelta(days=1)), str(after - timedelta(days=1))}
    assert doc["kpis"] == {}  # the stored days are in March 2026
    table = run_kpi(filled, "history", "--since", "2026-04-01")
    assert table.stdout == "nothing stored since 2026-04-01: give an earlier --since\n"
    days = (datetime.now(UTC).date() - DAYS[-3].date()).days  # the last three stored days
    recent = run_kpi(filled, "history", "crm.paying", "--since", f"{days}d", "--format", "csv")
    assert recent.returncode == 0, recent.stderr
    assert recent.stdout.splitlines()[1:] == [
        "2026-03-12,crm.paying,111.0",
        "2026-03-13,crm.paying,112.0",
        "2026-03-14,crm.paying,113.0",
    ]
    bad = run_kpi(filled, "history", "--since", "lastweek")
    assert bad.returncode == 2 and "'lastweek' is not a date like 2026-01-31" in bad.stderr
    (filled / "kpi.db").unlink()
    empty = run_kpi(filled, "history", "--since", "2026-04-01")
    assert empty.stdout == "no history yet: run `kpi run` first\n"


def test_shell_completion_offers_commands_and_kpi_ids(filled: Path) -> None:
    env = {"_KPI_COMPLETE": "bash_complete", "COMP_WORDS": "kpi history gith", "COMP_CWORD": "2"}
    out = run_kpi(filled, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["plain,github.stars"]
    env.update(COMP_WORDS="kpi sch", COMP_CWORD="1")
    assert sorted(run_kpi(filled, env=env).stdout.split()) == ["plain,schedule", "plain,schema"]


YAML_MISTAKES = [
    # (the file, the one line `kpi validate` must print); line numbers counted by hand
    (
        'timezone: UTC\nsources:\n  - {name: a, type: http_json, url: "http://x", metrics: {v: v}\n'
        "  - name: b\n    type: html\n",
        "kpi.yaml:3: not valid YAML: the `{` opened here is never closed: add `}` at its end, "
        "or quote a value that contains `{`, `}`, `,` or `: `",
    ),
    (
        "sources:\n  - name: crm\n    type: [github\n\n\n",
        "kpi.yaml:3: not valid YAML: the `[` opened here is never closed: add `]` at its end, "
        "or quote a value that contains `[`, `]`, `,` or `: `",
    ),
    (
        'sources:\n  - name: "crm\n    type: github\n',
        'kpi.yaml:2: not valid YAML: the quote " opened here is never closed: add the closing " '
        "(a value on several lines needs it too)",
    ),
    (
        "sources:\n  - name: crm\n\ttype: github\n",
        "kpi.yaml:3: not valid YAML: a tab indents this line; YAML indents with spaces only",
    ),
    (
        "sources:\n  - name: crm\n    type: github\n   repo: x\n",
        "kpi.yaml:4: not valid YAML: this line's indentation does not fit the lines above it: "
        "keys of one mapping, and the `-` of one list, start in the same column",
    ),
    (
        "timezone: UTC\nsources:\n  - name: crm\n    url: http://x/a: b\n",
        "kpi.yaml:4: not valid YAML: a second `: ` on this line; quote the value that contains "
        'it (url: "http://host/a: b")',
    ),
    ("kpis: {a.b: {}}]\n", "kpi.yaml:1: not valid YAML: this `]` closes nothing: remove it, "
     "or add the bracket it closes"),
    # libyaml's "found character that cannot start any token" does not name the tab
    (
        "sources:\n\t- {name: c, type: command, command: [echo, '1']}\n",
        "kpi.yaml:2: not valid YAML: a tab indents this line; YAML indents with spaces only",
    ),
    # was "a second `: ` on this line" for a line with one
    (
        "sources:\n  - name: crm\n      type: github\n",
        "kpi.yaml:3: not valid YAML: this line is indented deeper than the key above it, so it "
        "is read as part of that key's value: start it in the same column as the other keys",
    ),
    # a space that is not one (pasted from a web page or a chat) was "a second `: ` on
    # this line" or "this line's indentation does not fit"
    (
        "sources:\n\u00a0 - {name: c, type: command, command: [echo, '1']}\n",
        "kpi.yaml:2: not valid YAML: a no-break space (U+00A0) on this line, where YAML "
        "needs a plain space; retype it as a space",
    ),
    (
        "sources: []\n\ufefftitle: x\n",
        "kpi.yaml:2: not valid YAML: a zero width no-break space (U+FEFF) on this line, "
        "where YAML needs a plain space; retype it as a space",
    ),
    (
        "sources:\n  - name: c\n  \u3000 type: command\n",
        "kpi.yaml:3: not valid YAML: an ideographic space (U+3000) on this line, where YAML "
        "needs a plain space; retype it as a space",
    ),
    # was "the quote opened here is never closed" for a quote that is closed: a backslash
    # in "..." starts an escape (a Windows path), which YAML refuses
    (
        'sources:\n  - {name: c, type: command, command: [type, "C:\\data\\kpi.txt"]}\n',
        'kpi.yaml:2: not valid YAML: \\d in a "..." text is not an escape YAML reads: '
        "write a backslash as \\\\, or quote the value with '...' (where \\ is itself)",
    ),
    (
        'sources: []\ntitle: "caf\\xZZ"\n',
        'kpi.yaml:2: not valid YAML: \\x in a "..." text is not an escape YAML reads: '
        "write a backslash as \\\\, or quote the value with '...' (where \\ is itself)",
    ),
    (
        'sources: []\ntitle: "a \\ud800 b"\n',
        'kpi.yaml:2: not valid YAML: \\ud800 in a "..." text is not an escape YAML reads: '
        "write a backslash as \\\\, or quote the value with '...' (where \\ is itself)",
    ),
    (
        'sources: []\ntitle: "a\\\n  \\q"\n',
        'kpi.yaml:3: not valid YAML: \\q in a "..." text is not an escape YAML reads: '
        "write a backslash as \\\\, or quote the value with '...' (where \\ is itself)",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), YAML_MISTAKES)
def test_yaml_mistakes_point_at_their_line_with_a_fix(
    workdir: Path, text: str, expected: str
) -> None:
    (workdir / "kpi.yaml").write_text(text)
    out = run_kpi(workdir, "validate")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"config error: {expected}"]


WRONG_VALUES = [
    ("defaults: {timeout: abc}\n", "kpi.yaml:1: defaults.timeout: 'abc' is not a number"),
    (
        "defaults: {retries: 1.5}\n",
        "kpi.yaml:1: defaults.retries: 1.5 is not a whole number",
    ),
    (
        "defaults: {timeout: -1}\n",
        "kpi.yaml:1: defaults.timeout: -1 is too small; it must be greater than 0",
    ),
    ("misfire: sometimes\n", "kpi.yaml:1: misfire: 'sometimes' is not one of: skip or run_late"),
    (
        "kpis: [a.b]\n",
        "kpi.yaml:1: kpis: a list is not a mapping (key: value lines, or {key: value})",
    ),
    (
        "sources:\n  - name: crm\n    type: github\n    repo: a/b\n    enabled: maybe\n",
        "kpi.yaml:5: source 'crm': enabled: 'maybe' is not true or false",
    ),
    (
        "sources:\n  - type: github\n    repo: a/b\n    timeout: soon\n",
        "kpi.yaml:4: source 'github': timeout: 'soon' is not a number",
    ),
    (
        "defaults: {timeout: abc, retries: x}\n",
        "kpi.yaml:1: defaults.timeout: 'abc' is not a number (and 1 more problem in this file)",
    ),
    (
        # a missing variable names the source by its name, not its place in the list
        "sources:\n  - {name: a, type: command, command: [echo, '1'], metric: x}\n"
        "  - name: crm\n    type: http_json\n    url: http://x\n"
        '    auth: {bearer: "${CRM_TOKEN_FOR_TEST}"}\n    metrics: {v: v}\n',
        "kpi.yaml:6: source 'crm': auth.bearer uses ${CRM_TOKEN_FOR_TEST}, which is not set; "
        "set it in the environment or in .env beside the config, or give a default: "
        "${CRM_TOKEN_FOR_TEST:-...}",
    ),
]


@pytest.mark.parametrize(("text", "expected"), WRONG_VALUES)
def test_wrong_values_are_echoed_in_our_words(workdir: Path, text: str, expected: str) -> None:
    (workdir / "kpi.yaml").write_text(text)
    out = run_kpi(workdir, "validate")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"config error: {expected}"]
    assert "Input should" not in out.stderr and "pydantic" not in out.stderr


def test_run_table_on_a_narrow_terminal_keeps_values_whole(filled: Path) -> None:
    import pty
    import re

    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    env.update(COLUMNS="40", LINES="50", TERM="xterm")
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [*KPI, "run", "--no-deliver"],
            cwd=filled,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.DEVNULL,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    finally:
        os.close(leader)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())
    lines = [line for line in screen.replace("\r", "").splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 40, lines
    assert "…" not in screen
    # the stored values of 14 March are the previous ones: 1 against $1,247,567.50
    assert re.search(r"│\s+\$1\s+│\s+-\$1,247,566\.50 \(-100\.00%\)", screen), screen


def test_a_word_token_is_masked_where_echoed_and_the_message_kept(workdir: Path) -> None:
    """The service refuses the token `wrong` and echoes it back (issue 13 §5)."""
    import json

    from aiohttp import web

    from kpi_collector.demo.server import BackgroundServer

    async def refuse(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        body = {"message": "API token missing or wrong", "received": sent, "token": "wrong"}
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_get("/stats", refuse)
    with BackgroundServer(app) as url:
        (workdir / "kpi.yaml").write_text(
            "sources:\n  - name: crm\n    type: http_json\n"
            f"    url: {url}/stats\n"
            '    auth: {bearer: "${CRM_TOKEN}"}\n    metrics: {paying: value}\n'
        )
        out = run_kpi(workdir, "run", "--format", "json", env={"CRM_TOKEN": "wrong"})
    assert out.returncode == 1
    (error,) = json.loads(out.stdout)["errors"]
    message = error["message"]
    assert "API token missing or wrong" in message
    assert "Bearer ***" in message and '"token": "***"' in message
    assert "Bearer wrong" not in out.stdout + out.stderr
    assert '"wrong"' not in out.stdout.replace('\\"', '"') + out.stderr


def test_schedule_logs_keep_timestamps_under_verbose(workdir: Path) -> None:
    import re

    (workdir / "kpi.yaml").write_text(
        f"sources:\n  - {{name: a, type: command, command: [{sys.executable!r}, -c, 'print(4)'], "
        "metric: x}\n"
    )
    out = run_kpi(workdir, "-v", "schedule", "--run", "main")
    assert out.returncode == 0, out.stderr
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}"
    assert re.search(rf"^{stamp} DEBUG   x: the source gave '4', read as 4$", out.stderr, re.M)
    assert re.search(rf"^{stamp} INFO    main: run 1: 1 value, 0 errors in ", out.stderr, re.M)


def test_a_holder_is_named_without_its_credentials(workdir: Path) -> None:
    """Another process's command line may carry a token: it is never repeated."""
    from kpi_collector.processes import describe_holders, file_holders

    held = workdir / "kpi.db"
    held.write_text("")
    (workdir / "hold.py").write_text(
        "import sys, time\nf = open(sys.argv[1])\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "hold.py", "kpi.db", "--token", "tok-abc-123", "API_KEY=k-456"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        text = describe_holders(file_holders([held]))
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert text == f"process {holder.pid} (hold.py kpi.db --token *** API_KEY=***)"
    assert "tok-abc-123" not in text and "k-456" not in text


def test_history_lines_count_wide_characters_as_two_cells() -> None:
    # 月間売上 is four characters, eight cells wide; the values line up under the dates
    lines = history_lines([("月間売上", {"d1": "1", "d2": "22"})], ["d1", "d2"], width=80)
    assert lines == ["          d1  d2", "月間売上   1  22"]
    # 9 columns: 6 cells for the name, 2 between, 1 for the value
    assert history_lines([("売上高合計", {"d": "5"})], ["d"], width=9) == [
        " " * 8 + "d",
        "売上高  5",
        "合計",
    ]


def test_serve_on_an_address_not_of_this_machine(filled: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine; nothing is sent
    out = run_kpi(
        filled, "serve", "--host", "192.0.2.1", "--port", "0", "--token", "t0k3n-for-test"
    )
    assert out.returncode == 2
    assert out.stderr == "Error: --host 192.0.2.1 is not an address of this machine\n"
    assert out.stdout == ""


@pytest.mark.parametrize("columns", [40, 60, 80])
def test_deliver_list_on_a_narrow_terminal_cuts_nothing(filled: Path, columns: int) -> None:
    """`kpi deliver --list` was a table that cut its cells to fit: at 40 columns a state read
    "pe…", a period "ru…" and the time "2026-12-01 1…"; at 80 the error's file name lost
    its end ("out.c…"). Every state, period, time and the whole error are there, as written."""
    assert run_kpi(filled, "run").returncode == 0
    (filled / "out.csv").write_text("not, a, file, of, ours\n")
    assert run_kpi(filled, "run").returncode == 1
    out = run_kpi(filled, "deliver", "--list", env={"COLUMNS": str(columns)})
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout
    tokens = out.stdout.split()
    assert {"run:1", "run:2", "done", "pending", "csv"} <= set(tokens)
    assert tokens.count(datetime.now(UTC).strftime("%Y-%m-%d")) == 2
    # the error, whole: words never broken, however the lines fall
    assert "out.csv is not a csv file this destination wrote (no `period` column)" in " ".join(
        tokens
    )


def test_run_table_in_a_pipe_aligns_wide_characters(workdir: Path) -> None:
    """Piped (cron mail, a log), `kpi run`'s table padded titles by their length in code
    points: a title in CJK (each character two cells wide) or with an emoji pushed its row's
    value out of the column. Columns line up on the screen, by terminal cells."""
    from rich.cells import cell_len

    (workdir / "acme.py").write_text("def stats():\n    return {'users': 1234, 'stars': 10}\n")
    (workdir / "kpi.yaml").write_text(
        "kpis:\n  app.users: {title: 月活跃用户}\n  app.stars: {title: '⭐ Stars'}\n"
        "sources:\n  - {name: app, type: python, function: 'acme:stats'}\n"
    )
    out = run_kpi(workdir, "run", "--dry-run")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()[:3]
    assert header.split() == ["KPI", "value", "change"]
    value_end = cell_len(header[: header.index("value") + len("value")])
    for row, value in zip(rows, ("1,234", "10"), strict=True):
        assert cell_len(row[: row.index(value) + len(value)]) == value_end, out.stdout


def test_a_pending_delivery_is_said_once(filled: Path) -> None:
    """A destination down for the whole run printed "... (after 4 attempts; stays pending)
    (pending; retried on the next run)": the same news twice on one line."""
    (filled / "out.csv").mkdir()  # the file destination cannot write: transient, retried
    out = run_kpi(filled, "run")
    assert out.returncode == 1
    [line] = [line for line in out.stdout.splitlines() if line.startswith("delivery failed")]
    assert line.count("pending") == 1, line
    assert "retried on the next run" in line and "Is a directory" in line


@pytest.mark.parametrize("mine", ["kpi.yaml", ".env", "kpi.db", "kpis.csv"])
def test_demo_refuses_a_folder_of_the_user_s_own_and_changes_nothing(
    workdir: Path, mine: str
) -> None:
    """`kpi demo --dir .` in a project folder replaced its kpi.yaml and .env (secrets) and
    deleted its kpi.db (the history) and kpis.csv, silently, exit 0. A folder holding a file
    the demo would replace, and no demo config, is refused in one line, nothing changed; a
    demo folder is rebuilt as before."""
    project = workdir / "project"
    project.mkdir()
    (project / mine).write_bytes(b"mine\n")
    refused = run_kpi(workdir, "demo", "--dir", "project")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert f"project holds {mine}, which is not the demo's" in line
    assert "`kpi demo --dir` a new or empty folder; nothing was changed" in line
    assert sorted(p.name for p in project.iterdir()) == [mine]
    assert (project / mine).read_bytes() == b"mine\n"
    assert run_kpi(workdir, "demo", "--dir", "demo").returncode == 0
    assert run_kpi(workdir, "demo", "--dir", "demo").returncode == 0  # the demo's own: again


def test_the_summary_counts_failed_deliveries(filled: Path) -> None:
    """A run whose values were all collected but whose delivery failed ended "run 2: 3
    values, 0 errors in 0.31s", exit 1: the summary line said all was well."""
    assert run_kpi(filled, "run").returncode == 0
    (filled / "out.csv").write_text("not, a, file, of, ours\n")
    out = run_kpi(filled, "run")
    assert out.returncode == 1
    assert ": 3 values, 0 errors, 1 delivery failed in " in out.stdout.splitlines()[-1]


def test_history_csv_never_hands_a_spreadsheet_a_formula(tmp_path: Path) -> None:
    # KPI ids come from source and metric names a function gives: `=cmd.-2+3` opened in
    # Excel or Sheets ran as a formula (OWASP "CSV Injection"); numbers stay numbers
    (tmp_path / "kpi.yaml").write_text(
        'store: sqlite:///kpi.db\nsources:\n  - {name: "=cmd", type: python, function: m:f}\n'
    )
    (tmp_path / "m.py").write_text('def f():\n    return {"-2+3": -5, "@x": 1, "ok": 2}\n')
    assert run_kpi(tmp_path, "run", "--no-deliver").returncode == 0
    done = run_kpi(tmp_path, "history", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = [line.split(",")[1:] for line in done.stdout.splitlines()[1:]]
    assert sorted(rows) == [["'=cmd.-2+3", "-5.0"], ["'=cmd.@x", "1.0"], ["'=cmd.ok", "2.0"]]


def test_commands_that_only_read_never_create_the_store(tmp_path: Path) -> None:
    # `kpi history`, `kpi deliver` and `kpi deliver --list` on a config nothing ran with
    # created its SQLite store and the folder it names, so a later look found an empty store
    # where a misspelt `store:` should have shown
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///data/kpi.db\n"
        "sources:\n  - {name: crm, type: python, function: m:f}\n"
        "destinations:\n  - {type: csv, path: out.csv, every: day}\n"
    )
    (tmp_path / "m.py").write_text('def f():\n    return {"paying": 3}\n')
    answers = {
        ("history",): "no history yet: run `kpi run` first\n",
        ("history", "--format", "csv"): "period,kpi,value\n",
        ("deliver",): "nothing pending\n",
        ("deliver", "--list"): "no deliveries yet\n",
        ("deliver", "--list", "--format", "json"): "[]\n",
        # was "nothing pending", no JSON document
        ("deliver", "--format", "json"): '{"ok": true, "deliveries": []}\n',
    }
    for args, expected in answers.items():
        done = run_kpi(tmp_path, *args)
        assert (done.returncode, done.stdout) == (0, expected), (args, done.stderr)
        assert not (tmp_path / "data").exists(), args
    for out in ("r.md", "r.html"):  # a report of nothing is no report, and creates nothing
        done = run_kpi(tmp_path, "report", "--out", out)
        assert (done.returncode, done.stderr) == (
            1,
            "no history yet: run `kpi run` first; no report written\n",
        )
        assert not (tmp_path / out).exists() and not (tmp_path / "data").exists()
    # a KPI no run stored yet (a function's names are known once it ran) is unknown
    unknown_kpi = run_kpi(tmp_path, "history", "crm.paying")
    assert unknown_kpi.returncode == 2 and "no KPI named 'crm.paying'" in unknown_kpi.stderr
    refused = run_kpi(tmp_path, "deliver", "--retry", "2026-11-30")
    assert refused.returncode == 2 and "nothing has run with this config yet" in refused.stderr
    unknown = run_kpi(tmp_path, "deliver", "-d", "slak")
    assert unknown.returncode != 0 and "slak" in unknown.stderr
    assert not (tmp_path / "data").exists()
    # once a run wrote it, they read it
    assert run_kpi(tmp_path, "run", "--no-deliver").returncode == 0
    assert "crm.paying" in run_kpi(tmp_path, "history").stdout
    assert run_kpi(tmp_path, "report", "--out", "r.md").returncode == 0


BAD_TIMEOUT = "sources:\n  - {name: c, type: command, command: [echo, '1'], timeout: -1}\n"
UNREACHABLE_STORE = (
    "store: postgresql+psycopg://kpi@127.0.0.1:1/x\n"
    "sources:\n  - {name: c, type: command, command: [echo, '1']}\n"
)


@pytest.mark.parametrize(
    ("config", "args", "code", "line"),
    [
        (BAD_TIMEOUT, ("validate", "--format", "json"), 2, "config error: "),
        (BAD_TIMEOUT, ("run", "--format=json"), 2, "config error: "),
        (BAD_TIMEOUT, ("history", "--format", "json"), 2, "config error: "),
        (BAD_TIMEOUT, ("deliver", "--format", "json"), 2, "config error: "),
        (BAD_TIMEOUT, ("alerts", "list", "--format", "json"), 2, "config error: "),
        ("sources: []\n", ("history", "--since", "nope", "--format", "json"), 2, "Error: "),
        ("sources: []\n", ("history", "zzz", "--format", "json"), 2, "Error: "),
        (UNREACHABLE_STORE, ("history", "--format", "json"), 1, "error: "),
    ],
)
def test_json_output_is_a_json_document_on_errors_too(
    workdir: Path, config: str, args: tuple[str, ...], code: int, line: str
) -> None:
    """With `--format json`, an error that stopped the command printed nothing on standard
    output: a script reading it found no document. It now finds `ok: false`, the exit code
    and the error's line, which stderr still shows as before."""
    (workdir / "kpi.yaml").write_text(config)
    out = run_kpi(workdir, *args)
    assert out.returncode == code
    (shown,) = out.stderr.splitlines()
    assert shown.startswith(line)
    assert json.loads(out.stdout) == {
        "ok": False,
        "exit_code": code,
        "error": shown.removeprefix(line),
    }


def test_json_errors_keep_secrets_out(workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text(
        "store: postgresql+psycopg://kpi:s3cretpass@127.0.0.1:1/x\n"
        "sources:\n  - {name: c, type: command, command: [echo, '1']}\n"
    )
    out = run_kpi(workdir, "history", "--format", "json")
    assert out.returncode == 1 and json.loads(out.stdout)["ok"] is False
    assert "s3cretpass" not in out.stdout + out.stderr


def test_history_of_a_kpi_without_values_says_so(filled: Path) -> None:
    """`kpi history site.visits` for a KPI the config makes but no run stored yet said "no
    history yet: run `kpi run` first" over a store full of other KPIs' history, and with
    `--since` "nothing stored since ...: give an earlier --since", which no date fixes.
    It says that this KPI has no values stored yet."""
    (filled / "kpi.yaml").write_text(
        CONFIG.replace(
            "destinations:",
            f"  - {{name: site, type: command, command: [{sys.executable!r}, -c, 'print(1)'],"
            " metric: visits}\ndestinations:",
        )
    )
    plain = run_kpi(filled, "history", "site.visits")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "no values stored for site.visits yet\n"
    since = run_kpi(filled, "history", "site.visits", "--since", "2026-03-01")
    assert since.stdout == "no values stored for site.visits yet\n"
    # a KPI with values, but none since the day asked: an earlier day shows them
    later = run_kpi(filled, "history", "crm.paying", "site.visits", "--since", "2026-04-01")
    assert later.stdout == "nothing stored since 2026-04-01: give an earlier --since\n"


def test_the_run_table_colours_a_change_by_higher_is_better(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal the `kpi run` table coloured every rise green and every fall red: churn
    rising (`higher_is_better: false`) read as good news, unlike on the dashboard and in the
    email. The colour follows the KPI's direction of good."""
    import io

    from kpi_collector.commands.core import show_result
    from kpi_collector.config import load_config
    from kpi_collector.pipeline import Pipeline

    value = tmp_path / "value"
    read = f"print(open({str(value)!r}).read())"
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "kpis: {churn.value: {title: Churn, higher_is_better: false}, "
        "users.value: {title: Users}}\n"
        "sources:\n"
        f"  - {{name: churn, type: command, command: [{sys.executable!r}, -c, {read!r}]}}\n"
        f"  - {{name: users, type: command, command: [{sys.executable!r}, -c, {read!r}]}}\n"
    )
    config = load_config(tmp_path / "kpi.yaml")
    value.write_text("5")
    Pipeline.from_config(config).process(now=datetime(2026, 3, 1, 9, tzinfo=UTC))
    value.write_text("7")
    pipeline = Pipeline.from_config(config)
    result = pipeline.process(now=datetime(2026, 3, 2, 9, tzinfo=UTC))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    show_result(pipeline, result)
    green, red = "\x1b[32m", "\x1b[31m"
    churn = next(line for line in screen.getvalue().splitlines() if "Churn" in line)
    users = next(line for line in screen.getvalue().splitlines() if "Users" in line)
    assert red in churn and green not in churn  # up, and up is bad
    assert green in users and red not in users


def test_history_json_stays_json_when_a_sum_passes_the_largest_double(tmp_path: Path) -> None:
    """Two values of 1e308 in a day of a `sum` KPI add up past the largest double: `kpi
    history --format json` printed `Infinity`, which is no JSON (a strict parser refuses the
    whole document). Such a period's value is null; the CSV leaves its cell empty and the
    table says overflow."""
    import json

    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\nkpis: {big.value: {agg: sum}}\n"
        f"sources: [{{name: big, type: command, command: [{sys.executable!r}, -c, 'print(1)']}}]\n"
    )
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        day = datetime(2026, 3, 2, 9, tzinfo=UTC).timestamp()
        store.add_observations(
            [StoredObservation("big.value", day - 86400, 1.5, "big")], backfilled=False
        )
        run = store.begin_run(started_at=day)
        store.finish_run(
            run,
            observations=[("big.value", day, 1e308, "big"), ("big.value", day + 60, 1e308, "big")],
        )
    finally:
        store.close()
    out = run_kpi(tmp_path, "history", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert doc["kpis"]["big.value"] == [
        {"period": "2026-03-01", "value": 1.5},
        {"period": "2026-03-02", "value": None},
    ]
    csv = run_kpi(tmp_path, "history", "--format", "csv")
    assert csv.stdout.splitlines()[1:] == ["2026-03-01,big.value,1.5", "2026-03-02,big.value,"]
    table = run_kpi(tmp_path, "history")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[-1].split() == ["big.value", "1.5", "overflow"]
