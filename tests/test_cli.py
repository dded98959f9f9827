"""`kpi` end to end: real processes, a real local server, a real SQLite store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from tests.cli import run_kpi
from tests.conftest import BLOG_LINKS, TOKEN

Site = tuple[str, web.Application]


def write_config(folder: Path, url: str, extra_sources: str = "") -> Path:
    config = folder / "kpi.yaml"
    config.write_text(f"""\
timezone: Europe/Berlin
north_star: crm.paying
defaults: {{timeout: 3, retries: 1}}
kpis:
  crm.paying: {{title: Paying customers, unit: USD}}
sources:
  - name: crm
    type: http_json
    url: {url}/auth/bearer
    auth: {{bearer: "${{CRM_TOKEN}}"}}
    metrics:
      paying: value
  - name: blog
    type: html
    url: {url}/blog
    metrics:
      posts: {{css: "a.anthrazit", count: true}}
{extra_sources}
destinations:
  - {{type: csv, path: out.csv, every: day}}
""")
    return config


def test_run_history_and_exit_codes(site: Site, workdir: Path) -> None:
    url, _ = site
    write_config(workdir, url)
    first = run_kpi(workdir, "run", env={"CRM_TOKEN": TOKEN})
    assert first.returncode == 0, first.stderr
    assert "Paying customers" in first.stdout and "$1" in first.stdout and "new" in first.stdout
    assert first.stdout.index("Paying customers") < first.stdout.index(
        "blog.posts"
    )  # north star first
    second = run_kpi(workdir, "run", "--format", "json", env={"CRM_TOKEN": TOKEN})
    assert second.returncode == 0
    doc = json.loads(second.stdout)
    assert {v["kpi"]: (v["value"], v["change"]) for v in doc["values"]} == {
        "crm.paying": (1.0, 0.0),
        "blog.posts": (BLOG_LINKS, 0.0),
    }
    history = run_kpi(workdir, "history", "--format", "json")
    assert history.returncode == 0
    data = json.loads(history.stdout)
    assert data["period"] == "day" and data["timezone"] == "Europe/Berlin"
    assert [p["value"] for p in data["kpis"]["blog.posts"]] == [BLOG_LINKS]
    csv_out = run_kpi(workdir, "history", "blog.posts", "--format", "csv", "--period", "week")
    assert csv_out.stdout.splitlines()[0] == "period,kpi,value"
    assert csv_out.stdout.splitlines()[1].endswith(f",blog.posts,{float(BLOG_LINKS)!r}")
    table = run_kpi(workdir, "history")
    assert "Paying customers" in table.stdout
    header, *rows = (workdir / "out.csv").read_text().splitlines()
    assert header.startswith("period,") and {"crm.paying", "blog.posts"} <= set(header.split(","))
    assert len(rows) == 1  # two runs on one day: one row, updated


def test_failed_source_exits_1_and_stores_what_worked(site: Site, workdir: Path) -> None:
    url, _ = site
    write_config(
        workdir,
        url,
        extra_sources=f"""\
  - name: broken
    type: html
    url: {url}/empty
    metrics:
      posts: {{css: "a.anthrazit", count: true}}
""",
    )
    result = run_kpi(workdir, "run", env={"CRM_TOKEN": "wrong-token-abcdef"})
    assert result.returncode == 1
    assert "failed crm: HTTP 401" in result.stdout
    assert "failed broken.posts" in result.stdout and "allow_zero" in result.stdout
    assert "wrong-token-abcdef" not in result.stdout + result.stderr
    with sqlite3.connect(workdir / "kpi.db") as conn:
        assert conn.execute("SELECT kpi, value FROM observations").fetchall() == [
            ("blog.posts", BLOG_LINKS)
        ]
        stored = " ".join(m for (m,) in conn.execute("SELECT message FROM run_errors"))
        assert "HTTP 401" in stored
        dump = "\n".join(conn.iterdump())
    assert "wrong-token-abcdef" not in dump


def test_secrets_never_reach_output_or_store(site: Site, workdir: Path) -> None:
    url, _ = site
    secret_in_url = "query-secret-998877"
    write_config(
        workdir,
        url,
        extra_sources=f"""\
  - name: leaky
    type: http_json
    url: {url}/missing?api_key=${{LEAKY_KEY}}
    metrics:
      v: value
  - name: pod
    type: html
    url: {url}/private
    login: {{url: {url}/login, fields: {{email: me@example.com, password: "${{POD_PASSWORD}}"}}}}
    metrics:
      total: "#total"
""",
    )
    env = {"CRM_TOKEN": TOKEN, "LEAKY_KEY": secret_in_url, "POD_PASSWORD": "not-the-password-1"}
    outputs = []
    for args in (
        ("run",),
        ("run", "--format", "json"),
        ("validate",),
        ("history", "--format", "json"),
    ):
        result = run_kpi(workdir, *args, env=env)
        outputs.append(result.stdout + result.stderr)
    text = "\n".join(outputs)
    assert "login refused" in text and "HTTP 404" in text
    for secret in (TOKEN, secret_in_url, "not-the-password-1"):
        assert secret not in text
        with sqlite3.connect(workdir / "kpi.db") as conn:
            assert secret not in "\n".join(conn.iterdump())


def test_only_and_dry_run(site: Site, workdir: Path) -> None:
    url, _ = site
    write_config(workdir, url)
    env = {"CRM_TOKEN": TOKEN}
    dry = run_kpi(workdir, "run", "--only", "blog", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "blog.posts" in dry.stdout and "Paying" not in dry.stdout
    assert not (workdir / "kpi.db").exists() and not (workdir / "out.csv").exists()
    unknown = run_kpi(workdir, "run", "--only", "nope", env=env)
    assert unknown.returncode == 2 and "no source named 'nope'" in unknown.stderr
    stored = run_kpi(workdir, "run", "--only", "blog", "--no-deliver", env=env)
    assert stored.returncode == 0
    assert (workdir / "kpi.db").exists() and not (workdir / "out.csv").exists()


def test_only_needs_the_variables_of_what_it_runs(site: Site, workdir: Path) -> None:
    """`kpi run --only blog` failed on `${CRM_TOKEN}` of the `crm` source it does not run;
    a source left out may name unset variables, as a switched-off one may. The destinations
    get the run's values: theirs are still needed."""
    url, _ = site
    config = write_config(workdir, url)
    blog = run_kpi(workdir, "run", "--only", "blog", "--dry-run")  # CRM_TOKEN unset
    assert blog.returncode == 0, blog.stderr
    assert "blog.posts" in blog.stdout
    crm = run_kpi(workdir, "run", "--only", "crm", "--dry-run")
    assert crm.returncode == 2 and "${CRM_TOKEN}, which is not set" in crm.stderr
    assert run_kpi(workdir, "run", "--dry-run").returncode == 2
    backfill = run_kpi(workdir, "backfill", "--only", "blog")  # the same for a backfill
    assert backfill.returncode == 0, backfill.stderr
    assert "blog: cannot give past values (skipped)" in backfill.stdout
    crm_backfill = run_kpi(workdir, "backfill", "--only", "crm")
    assert crm_backfill.returncode == 2 and "${CRM_TOKEN}" in crm_backfill.stderr
    config.write_text(config.read_text().replace("path: out.csv", "path: '${OUT_CSV}'"))
    destination = run_kpi(workdir, "run", "--only", "blog", "--dry-run")
    assert destination.returncode == 2 and "${OUT_CSV}, which is not set" in destination.stderr


def test_config_errors_exit_2_with_one_clear_line(workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text(
        "sources:\n  - {name: a, type: html, url: 'https://x/', metrics: {p: {csss: a}}}\n"
    )
    result = run_kpi(workdir, "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "config error: kpi.yaml:2: source 'a': unknown key 'metrics.p.csss'; did you mean 'css'?"
    ]
    assert not (workdir / "kpi.db").exists()
    missing = run_kpi(workdir / "..", "validate")
    assert missing.returncode == 2 and "kpi init" in missing.stderr
    usage = run_kpi(workdir, "history", "--period", "year")
    assert usage.returncode == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        # click printed four lines: the usage, a hint, a blank line, then the error
        (("rnu",), "Error: No such command 'rnu'; did you mean 'run'? (see 'kpi --help')"),
        (("zzzzz",), "Error: No such command 'zzzzz'. (see 'kpi --help')"),
        (
            ("run", "--dryrun"),
            "Error: No such option '--dryrun'. Did you mean '--dry-run'? (see 'kpi run --help')",
        ),
        (
            ("history", "--period", "year"),
            "Error: Invalid value for '--period': 'year' is not one of 'day', 'week', 'month'.",
        ),
        # a value missing after an option pointed at 'kpi --help', not the command's help
        (
            ("history", "--period"),
            "Error: Option '--period' requires an argument. (see 'kpi history --help')",
        ),
        (
            ("-c", "kpi.yaml", "-q", "alerts", "list", "--format"),
            "Error: Option '--format' requires an argument. (see 'kpi alerts list --help')",
        ),
        (
            ("--config=kpi.yaml", "run", "--only"),
            "Error: Option '--only' requires an argument. (see 'kpi run --help')",
        ),
        # NaN passed the range check (nan < 0 is false) and a busy store was waited on forever
        (
            ("run", "--wait", "nan"),
            "Error: Invalid value for '--wait': 'nan' is not a number of seconds; give e.g. 30",
        ),
        (
            ("backfill", "--wait", "-NaN"),
            "Error: Invalid value for '--wait': '-NaN' is not a number of seconds; give e.g. 30",
        ),
    ],
)
def test_command_line_mistakes_are_one_line(
    workdir: Path, args: tuple[str, ...], expected: str
) -> None:
    (workdir / "kpi.yaml").write_text("sources: []\n")
    result = run_kpi(workdir, *args)
    assert (result.returncode, result.stderr, result.stdout) == (2, expected + "\n", "")


def test_kpi_without_a_command_shows_the_help(workdir: Path) -> None:
    result = run_kpi(workdir)
    assert (
        result.returncode == 2 and "Usage: kpi [OPTIONS] COMMAND" in result.stdout + result.stderr
    )


def test_config_path_option_and_env(site: Site, workdir: Path) -> None:
    url, _ = site
    folder = workdir / "elsewhere"
    folder.mkdir()
    config = write_config(folder, url)
    by_option = run_kpi(workdir, "-c", str(config), "validate", env={"CRM_TOKEN": TOKEN})
    assert by_option.returncode == 0 and "crm.paying, blog.posts" in by_option.stdout
    by_env = run_kpi(
        workdir, "validate", "--format", "json", env={"KPI_CONFIG": str(config), "CRM_TOKEN": TOKEN}
    )
    assert json.loads(by_env.stdout)["kpis"] == ["crm.paying", "blog.posts"]


def test_init_then_validate(workdir: Path) -> None:
    result = run_kpi(workdir, "init")
    assert result.returncode == 0
    assert (workdir / ".env.example").exists()
    validated = run_kpi(workdir, "validate")
    assert validated.returncode == 0, validated.stderr
    assert "github.stars" in validated.stdout
    again = run_kpi(workdir, "init")
    assert again.returncode == 2 and "--force" in again.stderr


def test_init_source_prints_that_types_sample(workdir: Path) -> None:
    result = run_kpi(workdir, "init", "--source", "github")
    assert result.returncode == 0, result.stderr
    sample = Path(__file__).resolve().parents[1] / "src/kpi_collector/sources/github/sample.yaml"
    assert result.stdout == sample.read_text(encoding="utf-8")
    assert not (workdir / "kpi.yaml").exists()  # prints only


def test_init_unknown_source_lists_the_types_and_the_closest(workdir: Path) -> None:
    result = run_kpi(workdir, "init", "--source", "gihub")
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown source type 'gihub'; known types: active_users, codecov," in result.stderr
    assert result.stderr.rstrip().endswith("did you mean 'github'?")


def test_init_source_without_a_sample_says_so(workdir: Path) -> None:
    result = run_kpi(workdir, "init", "--source", "dice")  # the test plugin ships none
    assert result.returncode == 2
    assert "source type 'dice' (kpi_plugin_example) ships no sample.yaml" in result.stderr


def test_help_lists_every_command(workdir: Path) -> None:
    result = run_kpi(workdir, "--help")
    assert result.returncode == 0
    for command in ("init", "validate", "run", "history", "backfill", "demo"):
        assert f"  {command} " in result.stdout


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\nfrom kpi_collector.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pydantic', 'sqlalchemy', 'aiohttp', 'pandas', 'rich', 'yaml') if m in sys.modules]\n"
        "print('heavy:' + ','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "heavy:"


def test_demo(workdir: Path) -> None:
    result = run_kpi(workdir, "demo", "--dir", "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Paying customers" in result.stdout and "try next" in result.stdout
    with sqlite3.connect(workdir / "demo" / "kpi.db") as conn:
        days = conn.execute(
            "SELECT count(DISTINCT date(ts, 'unixepoch')) FROM observations"
        ).fetchone()[0]
        errors = conn.execute("SELECT count(*) FROM run_errors").fetchone()[0]
    assert days == 91 and errors == 0, "the demo must run clean"
    history = run_kpi(
        workdir, "-c", "demo/kpi.yaml", "history", "--period", "week", "--format", "json"
    )
    assert len(json.loads(history.stdout)["kpis"]["github.stars"]) >= 13


@pytest.mark.parametrize("command", ["run", "validate"])
def test_plugin_types_from_entry_points(workdir: Path, command: str) -> None:
    (workdir / "kpi.yaml").write_text(
        "sources:\n  - {name: d20, type: dice, sides: 20}\ndestinations:\n  - {type: memory}\n"
    )
    result = run_kpi(workdir, command)
    assert result.returncode == 0, result.stderr
    assert "d20.sides" in result.stdout


def test_errors_are_one_line_without_secrets_or_markup(workdir: Path) -> None:
    secret = "supersecretvalue1"
    (workdir / "kpi.yaml").write_text(
        "sources:\n  - {name: a, type: http_json, url: 'api.example.com/s?access=${MY_API_TOKEN}', metrics: {v: v}}\n"
    )
    bad_url = run_kpi(workdir, "validate", env={"MY_API_TOKEN": secret})
    assert bad_url.returncode == 2 and "is not an http(s) URL" in bad_url.stderr
    assert secret not in bad_url.stderr
    (workdir / "kpi.yaml").write_text(
        "store: sqlite:////proc/version/sub/kpi.db\n"
        "sources:\n  - {name: a, type: python, function: one:f}\n"
    )
    (workdir / "one.py").write_text("def f():\n    return {'v': 1}\n")
    no_dir = run_kpi(workdir, "run", "--no-deliver")
    assert no_dir.returncode == 1 and "Traceback" not in no_dir.stderr
    assert len(no_dir.stderr.strip().splitlines()) == 1


def test_titles_are_text_not_markup(workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text(
        "kpis:\n  f.posts: {title: 'Users [beta] [/beta]'}\n"
        f"sources:\n  - {{name: f, type: command, command: [{sys.executable!r}, -c, 'print(3)'], metric: posts}}\n"
    )
    assert run_kpi(workdir, "run").returncode == 0
    table = run_kpi(workdir, "history")
    assert table.returncode == 0, table.stderr
    assert "Users [beta] [/beta]" in table.stdout


def test_validate_says_which_kpis_only_a_run_can_name(workdir: Path) -> None:
    """A `python` source without `metrics:` gives the KPIs its function returns: `kpi
    validate` printed "KPIs (0): " with nothing after it, as if the config collected nothing
    (and "KPIs (1): rev.arr" as if the formula's inputs were not KPIs)."""
    (workdir / "acme.py").write_text("def stats():\n    return {'mrr': 100}\n")
    (workdir / "kpi.yaml").write_text(
        "sources:\n  - {name: billing, type: python, function: 'acme:stats'}\n"
    )
    validated = run_kpi(workdir, "validate")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.splitlines()[-1] == (
        "KPIs (0): those source 'billing' gives at run time (its function's names)"
    )
    (workdir / "kpi.yaml").write_text(
        "kpis:\n  rev.arr: {formula: billing.mrr * 12}\n"
        + (workdir / "kpi.yaml").read_text().replace("'acme:stats'}", "'acme:stats'}\n")
        + "  - {name: app, type: python, function: 'acme:stats'}\n"
    )
    validated = run_kpi(workdir, "validate")
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.splitlines()[-1] == (
        "KPIs (1): rev.arr, and those sources 'billing', 'app' give at run time (their "
        "function's names)"
    )


def test_init_help_names_every_file_it_writes(workdir: Path) -> None:
    """`kpi init --help` said it writes kpi.yaml and .env.example, not kpi.schema.json;
    `--force` said it overwrites kpi.yaml only, and replaced .env.example too."""
    assert run_kpi(workdir, "init").returncode == 0
    written = sorted(p.name for p in workdir.iterdir())
    assert written == [".env.example", "kpi.schema.json", "kpi.yaml"]
    shown = " ".join(run_kpi(workdir, "init", "--help").stdout.split())
    for name in written:
        assert name in shown.partition("Options:")[0], name
    (workdir / ".env.example").write_text("OURS=1\n")
    assert run_kpi(workdir, "init", "--force").returncode == 0
    assert (workdir / ".env.example").read_text() != "OURS=1\n"  # --force replaces it
    assert "Overwrite an existing kpi.yaml and .env.example." in shown


@pytest.mark.parametrize("folder", [".", "fresh", "a b"])
def test_init_next_step_names_commands_that_read_the_config_it_wrote(
    workdir: Path, folder: str
) -> None:
    """With --dir, `kpi init` said "then `kpi validate`", which reads ./kpi.yaml: another
    config, or none. The validate it names now checks the file it wrote."""
    import shlex

    done = run_kpi(workdir, "init", "--dir", folder)
    assert done.returncode == 0, done.stderr
    next_line = done.stdout.splitlines()[-1]
    assert next_line.startswith("next: edit ")
    commands = next_line.split("`")[1::2]
    assert len(commands) == 2 and commands[1].endswith(" run")
    validate = run_kpi(workdir, *shlex.split(commands[0])[1:])
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.startswith(str(Path(folder) / "kpi.yaml") + ": ok")


def test_annotate_help_names_the_dates_it_takes(workdir: Path) -> None:
    """`--date` said (YYYY-MM-DD) only; it takes every form `--since` takes."""
    (workdir / "kpi.yaml").write_text("sources: []\n")
    shown = " ".join(run_kpi(workdir, "annotate", "--help").stdout.split())
    for form in ("2026-01-31", "yesterday", "30d"):
        assert form in shown, form
        assert run_kpi(workdir, "annotate", "note", "--date", form).returncode == 0


def test_init_says_what_it_wrote_and_what_it_kept(workdir: Path) -> None:
    """With a `.env.example` there already, `kpi init` kept it (rightly: it may be the
    team's) but said "wrote kpi.yaml, .env.example and kpi.schema.json"."""
    (workdir / ".env.example").write_text("OURS=1\n")
    result = run_kpi(workdir, "init")
    assert result.returncode == 0, result.stderr
    assert (workdir / ".env.example").read_text() == "OURS=1\n"
    assert result.stdout.splitlines()[0] == (
        "wrote kpi.yaml and kpi.schema.json (for editors); kept the .env.example there"
    )
    fresh = workdir / "fresh"
    assert run_kpi(workdir, "init", "--dir", "fresh").stdout.splitlines()[0] == (
        f"wrote {Path('fresh') / 'kpi.yaml'}, {Path('fresh') / '.env.example'} and "
        f"{Path('fresh') / 'kpi.schema.json'} (for editors)"
    )
    assert (fresh / ".env.example").exists()


def test_only_a_switched_off_source_says_it_is_switched_off(workdir: Path) -> None:
    """`kpi run --only billing` for a source with `enabled: false` said "no source named
    'billing'; sources: app", with billing right there in kpi.yaml."""
    (workdir / "acme.py").write_text("def stats():\n    return {'mrr': 100}\n")
    (workdir / "kpi.yaml").write_text(
        "sources:\n"
        "  - {name: billing, type: python, function: 'acme:stats', enabled: false}\n"
        "  - {name: app, type: python, function: 'acme:stats'}\n"
    )
    result = run_kpi(workdir, "run", "--only", "billing", "--dry-run")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "source 'billing' is switched off (`enabled: false`)" in line, line
    assert "no source named" not in line
    typo = run_kpi(workdir, "run", "--only", "bill", "--dry-run")
    assert typo.returncode == 2 and "no source named 'bill'" in typo.stderr


def test_run_without_an_enabled_source_says_so_and_records_nothing(workdir: Path) -> None:
    """With `sources: []` (or every source `enabled: false`) `kpi run` recorded an empty run
    and said "run 1: 0 values, 0 errors", exit 0: a success that collected nothing. It is a
    config problem (exit 2, nothing ran), as `kpi schedule --print` already says."""
    for sources in (
        "sources: []\n",
        "sources:\n  - {name: a, type: command, command: [echo, '1'], metric: users, "
        "enabled: false}\n",
    ):
        (workdir / "kpi.yaml").write_text(sources)
        result = run_kpi(workdir, "run")
        assert result.returncode == 2, result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert "nothing to run: the config has no enabled source" in line
        assert not (workdir / "kpi.db").exists()


def test_annotate_reads_today_and_relative_dates_in_the_configs_time_zone(workdir: Path) -> None:
    """`kpi annotate x --date today` (or yesterday, 7d) counted from the UTC date, not the
    config's: in Kiritimati (UTC+14) from 10:00 UTC, or in Baker Island (UTC-12) before
    12:00 UTC, the note landed a day off. Relative dates count from the config's today."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from kpi_collector.config import load_config
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.annotations import list_annotations

    # a zone whose date differs from UTC's now (one of the two always does)
    zone = "Etc/GMT-14" if datetime.now(UTC).hour >= 10 else "Etc/GMT+12"
    (workdir / "kpi.yaml").write_text(f"timezone: {zone}\nsources: []\n")
    before = datetime.now(ZoneInfo(zone)).date()
    for form in ("today", "yesterday", "7d"):
        done = run_kpi(workdir, "annotate", form, "--date", form)
        assert done.returncode == 0, done.stderr
    after = datetime.now(ZoneInfo(zone)).date()
    store = HistoryStore(load_config(workdir / "kpi.yaml").store_url)
    try:
        notes = {n.text: n.day for n in list_annotations(store)}
    finally:
        store.close()
    for form, back in (("today", 0), ("yesterday", 1), ("7d", 7)):
        assert notes[form] in {before - timedelta(days=back), after - timedelta(days=back)}, form
