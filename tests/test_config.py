"""Config loading: ${VAR} expansion, .env, and a clear error for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpi_collector.config import load_config, parse_config
from kpi_collector.errors import ConfigError
from kpi_collector.secrets import Secret

GOOD = """\
timezone: Europe/Berlin
north_star: crm.paying_customers
kpis:
  crm.paying_customers: {title: Paying customers, target: 100}
sources:
  - name: crm
    type: http_json
    url: https://api.example.com/v1/stats
    auth: {bearer: "${CRM_TOKEN}"}
    metrics:
      paying_customers: data.customers.paying
  - name: blog
    type: html
    url: https://blog.example.com/
    metrics:
      posts: {css: "a.anthrazit", count: true}
destinations:
  - {type: csv, path: kpis.csv}
"""


def error_of(text: str, env: dict[str, str] | None = None, path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, path=path or Path("kpi.yaml"), env=env or {})
    return str(info.value)


def test_good_config() -> None:
    config = parse_config(GOOD, path=Path("kpi.yaml"), env={"CRM_TOKEN": "tok-123456"})
    assert [s.name for s in config.sources] == ["crm", "blog"]
    assert config.kpi_ids() == ["crm.paying_customers", "blog.posts"]
    auth = config.sources[0].auth  # type: ignore[attr-defined]
    assert isinstance(auth.bearer, Secret) and auth.bearer.get() == "tok-123456"
    assert "tok-123456" not in repr(config.sources[0])
    assert config.timezone == "Europe/Berlin"


def test_missing_variable_names_variable_key_and_line() -> None:
    message = error_of(GOOD)
    assert message.startswith("kpi.yaml:9:")
    assert "${CRM_TOKEN}" in message and "source 'crm': auth.bearer uses" in message
    assert ".env" in message


def test_variable_default_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CRM_TOKEN=from-dotenv-123\n")
    (tmp_path / "kpi.yaml").write_text(
        GOOD.replace("${CRM_TOKEN}", "${CRM_TOKEN}").replace(
            "https://blog.example.com/", "${BLOG_URL:-https://blog.example.org/}"
        )
    )
    monkeypatch.delenv("CRM_TOKEN", raising=False)
    monkeypatch.delenv("BLOG_URL", raising=False)
    config = load_config(tmp_path / "kpi.yaml")
    assert config.sources[0].auth.bearer.get() == "from-dotenv-123"  # type: ignore[attr-defined]
    assert config.sources[1].url == "https://blog.example.org/"  # type: ignore[attr-defined]
    monkeypatch.setenv("CRM_TOKEN", "from-env-456")
    config = load_config(tmp_path / "kpi.yaml")
    assert config.sources[0].auth.bearer.get() == "from-env-456"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("${PASS:-pa$$word}", "pa$word"),  # was "pa$$word": `$$` is a `$` in a default too
        ("${PASS:-$$$$}", "$$"),
        ("${PASS:-pa$word}", "pa$word"),  # a `$` naming no variable stays
        ("pa$$word", "pa$word"),
    ],
)
def test_a_literal_dollar_in_a_default_is_written_as_everywhere(written: str, read: str) -> None:
    text = GOOD.replace("${CRM_TOKEN}", written)
    config = parse_config(text, path=Path("kpi.yaml"), env={})
    assert config.sources[0].auth.bearer.get() == read  # type: ignore[attr-defined]
    given = parse_config(text, path=Path("kpi.yaml"), env={"PASS": "a$$b"})
    expected = "a$$b" if "${" in written else read  # a variable's value is taken as it is
    assert given.sources[0].auth.bearer.get() == expected  # type: ignore[attr-defined]


def test_a_dotenv_value_built_from_another_takes_the_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment wins over `.env`, also inside `.env`: `CRM_URL=https://${CRM_HOST}/v1`
    with `CRM_HOST` set by the deployment took the `.env`'s host (python-dotenv's order),
    while `${CRM_HOST}` in the config took the environment's."""
    (tmp_path / ".env").write_text(
        "CRM_HOST=localhost:8080\nCRM_URL=https://${CRM_HOST}/v1/stats\nCRM_TOKEN=t\n"
    )
    (tmp_path / "kpi.yaml").write_text(
        GOOD.replace("https://api.example.com/v1/stats", "${CRM_URL}").replace(
            "https://blog.example.com/", "https://${CRM_HOST}/blog"
        )
    )
    for name in ("CRM_HOST", "CRM_URL", "CRM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(tmp_path / "kpi.yaml")
    urls = [source.url for source in config.sources]  # type: ignore[attr-defined]
    assert urls == ["https://localhost:8080/v1/stats", "https://localhost:8080/blog"]
    monkeypatch.setenv("CRM_HOST", "crm.example.com")
    config = load_config(tmp_path / "kpi.yaml")  # a new value: not the cached config either
    urls = [source.url for source in config.sources]  # type: ignore[attr-defined]
    assert urls == ["https://crm.example.com/v1/stats", "https://crm.example.com/blog"]
    given = parse_config(
        (tmp_path / "kpi.yaml").read_text(), path=tmp_path / "kpi.yaml", env={"CRM_HOST": "h"}
    )
    assert given.sources[0].url == "https://h/v1/stats"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "read"),
    [
        # python-dotenv put X's value in: a password `pa${X}` went out as `paxx`
        ("CRM_TOKEN='pa${X}word'", "pa${X}word"),
        ("export CRM_TOKEN = 'pa${X}'  # a comment", "pa${X}"),
        ("'CRM_TOKEN'='${X}'", "${X}"),
        # double quotes and no quotes read a variable, as a shell does
        ('CRM_TOKEN="pa${X}"', "paxx"),
        ("CRM_TOKEN=pa${X}", "paxx"),
    ],
)
def test_a_single_quoted_dotenv_value_is_literal_as_in_a_shell(
    tmp_path: Path, line: str, read: str
) -> None:
    (tmp_path / ".env").write_text(f"X=xx\n{line}\n")
    config = parse_config(GOOD, path=tmp_path / "kpi.yaml", env={})
    assert config.sources[0].auth.bearer.get() == read  # type: ignore[attr-defined]


def test_an_empty_environment_variable_hiding_the_dotenvs_says_so(tmp_path: Path) -> None:
    """`CRM_TOKEN=` in the environment hides `CRM_TOKEN=t` of `.env` (the environment wins);
    the message said 'is set but empty; set it in the environment or in .env', though it
    was set in .env."""
    (tmp_path / ".env").write_text("CRM_TOKEN=from-dotenv\n")
    message = error_of(GOOD, env={"CRM_TOKEN": ""}, path=tmp_path / "kpi.yaml")
    assert "from-dotenv" not in message
    assert message.endswith(
        "source 'crm': auth.bearer uses ${CRM_TOKEN}, which is set but empty in the "
        "environment, and the environment wins over .env, which sets it; unset it in the "
        "environment (or give it a value), or give a default: ${CRM_TOKEN:-...}"
    )
    (tmp_path / ".env").write_text("CRM_TOKEN=\n")  # empty in .env, unset in the environment
    message = error_of(GOOD, env={}, path=tmp_path / "kpi.yaml")
    assert message.endswith(
        "source 'crm': auth.bearer uses ${CRM_TOKEN}, which is set but empty in .env; give "
        "it a value there or in the environment, or give a default: ${CRM_TOKEN:-...}"
    )
    message = error_of(GOOD, env={"CRM_TOKEN": ""}, path=tmp_path / "kpi.yaml")
    assert message.endswith(
        "source 'crm': auth.bearer uses ${CRM_TOKEN}, which is set but empty in the "
        "environment; give it a value there, or unset it there and set it in .env beside the "
        "config, or give a default: ${CRM_TOKEN:-...}"
    )


def test_disabled_source_may_use_unset_variables() -> None:
    text = GOOD.replace(
        "    type: http_json\n", "    type: http_json\n    enabled: false\n"
    ).replace("https://api.example.com/v1/stats", "${CRM_URL}")
    config = parse_config(text, path=Path("kpi.yaml"), env={})
    assert [s.name for s in config.sources] == ["blog"]  # left out: it could not run anyway
    enabled = text.replace("    enabled: false\n", "")
    assert "${CRM_URL}" in error_of(enabled)


@pytest.mark.parametrize(
    ("switch", "env"),
    [
        ("${CRM_ON:-false}", {}),
        ("${CRM_ON}", {"CRM_ON": "False"}),
        ('"${CRM_ON:-0}"', {}),
        ("'no'", {}),  # quoted: a text, read as false as pydantic reads it
    ],
)
def test_a_source_switched_off_by_a_variable_may_use_unset_variables(
    switch: str, env: dict[str, str]
) -> None:
    """`enabled: "${CRM_ON:-false}"` (a source switched on per machine) is `enabled: false`
    once read; its token's unset variable was still an error ("uses ${CRM_TOKEN}, which is
    not set"), unlike a source with `enabled: false` written out."""
    text = GOOD.replace("    type: http_json\n", f"    type: http_json\n    enabled: {switch}\n")
    config = parse_config(text, path=Path("kpi.yaml"), env=env)
    assert [s.name for s in config.sources] == ["blog"]  # left out: it could not run anyway
    deploy = parse_config(text, path=Path("kpi.yaml"), env=env, need_secrets=False)
    assert deploy.unchecked == ()  # switched off: no deployment snippet needs it


def test_a_source_switched_on_by_a_variable_needs_its_variables() -> None:
    text = GOOD.replace(
        "    type: http_json\n", "    type: http_json\n    enabled: ${CRM_ON:-false}\n"
    )
    assert "${CRM_TOKEN}, which is not set" in error_of(text, {"CRM_ON": "true"})
    config = parse_config(text, path=Path("kpi.yaml"), env={"CRM_ON": "1", "CRM_TOKEN": "t"})
    assert [s.name for s in config.sources] == ["crm", "blog"]
    unset = text.replace("${CRM_ON:-false}", "${CRM_ON}")
    assert "source 'crm': enabled uses ${CRM_ON}, which is not set" in error_of(unset)
    # commands that only read the store leave it out, as any entry with unset variables
    reading = parse_config(unset, path=Path("kpi.yaml"), env={}, need_secrets=False)
    assert [s.name for s in reading.sources] == ["blog"]
    wrong = error_of(text, {"CRM_ON": "maybe", "CRM_TOKEN": "t"})
    assert "source 'crm': enabled: 'maybe' is not true or false" in wrong


def test_read_only_commands_leave_out_entries_with_unset_variables() -> None:
    text = GOOD.replace("https://blog.example.com/", "https://blog.example.com/${BLOG_PATH}")
    config = parse_config(text, path=Path("kpi.yaml"), env={}, need_secrets=False)
    assert config.sources == [] and [d.type for d in config.destinations] == ["csv"]
    broken = text.replace(
        "{type: csv, path: kpis.csv}", "{type: csv, path: kpis.csv, every: hourly}"
    )
    with pytest.raises(ConfigError, match=r"^kpi\.yaml:18: destination 'csv'"):
        parse_config(broken, path=Path("kpi.yaml"), env={}, need_secrets=False)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # unknown key with a suggestion
        (
            ("count: true}", "count: true, alow_zero: true}"),
            "kpi.yaml:16: source 'blog': unknown key 'metrics.posts.alow_zero'; did you mean 'allow_zero'?",
        ),
        # unknown top-level key
        (
            ("timezone: Europe/Berlin", "timezone: Europe/Berlin\nschedul: daily"),
            "unknown key 'schedul'; did you mean 'schedule'?",
        ),
        # wrong type
        (("target: 100", "target: lots"), "kpis.crm.paying_customers.target"),
        # unknown source type
        (("type: html", "type: htlm"), "kpi.yaml:13: unknown source type 'htlm'; known types:"),
        # missing required key
        (("    url: https://blog.example.com/\n", ""), "source 'blog': missing required key 'url'"),
        # duplicate names
        (("name: blog", "name: crm"), "duplicate source name 'crm'"),
        (
            (
                "{type: csv, path: kpis.csv}",
                "{type: csv, path: kpis.csv}\n  - {type: csv, path: b.csv}",
            ),
            "kpi.yaml:19: duplicate destination name 'csv' (also destinations[0]); give each destination its own `name:`",
        ),
        # bad time zone
        (("Europe/Berlin", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        # bad YAML
        (("kpis:", "kpis: [unclosed"), "not valid YAML"),
        # kpis naming a missing source
        (
            (
                "crm.paying_customers: {title",
                "shop.orders: {title: Orders}\n  crm.paying_customers: {title",
            ),
            "no source named 'shop'",
        ),
        # kpis naming a missing metric
        (
            (
                "crm.paying_customers: {title",
                "blog.comments: {title: C}\n  crm.paying_customers: {title",
            ),
            "has no metric 'comments'",
        ),
        # bad north star
        (
            ("north_star: crm.paying_customers", "north_star: sales.total"),
            "north_star 'sales.total'",
        ),
        # bad destination option
        (
            ("{type: csv, path: kpis.csv}", "{type: csv, path: kpis.csv, every: fortnight}"),
            "destination 'csv': every",
        ),
        # unknown destination type
        (("{type: csv, path: kpis.csv}", "{type: fax}"), "unknown destination type 'fax'"),
        # a source without type
        (("    type: html\n", ""), "has no `type:`"),
        # an invalid extractor
        (('{css: "a.anthrazit", count: true}', '{css: "a", xpath: "//a"}'), "give one extractor"),
        # an invalid cron
        (("timezone: Europe/Berlin", "timezone: Europe/Berlin\nschedule: daily"), "cron"),
    ],
)
def test_config_errors(change: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    message = error_of(text, env={"CRM_TOKEN": "x-token"})
    assert expected in message, message


def test_missing_file_says_how_to_fix(workdir: Path) -> None:
    with pytest.raises(ConfigError, match="kpi init"):
        load_config()


def test_formula_errors() -> None:
    text = GOOD.replace(
        "kpis:\n", "kpis:\n  crm.arr: {formula: 'crm.paying_customers * crm.price'}\n"
    )
    assert "crm.price" in error_of(text, env={"CRM_TOKEN": "x-token"})
    text = GOOD.replace(
        "kpis:\n", "kpis:\n  x.a: {formula: 'x.b + 1'}\n  x.b: {formula: 'x.a + 1'}\n"
    )
    assert "cycle" in error_of(text, env={"CRM_TOKEN": "x-token"}).lower()


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: [1, 2.5, true, null, '3', 2026-01-01, ~]\nc: {d: [x, {e: f}]}\n",
        "base: &b {timeout: 5}\nsource: {<<: *b, name: x}\nagain: *b\n",  # merge keys
        "1: one\n? [a, b]\n: two\n",  # keys that are not strings
        "tagged: !!str 12\nbinary: !!binary aGk=\n",
        "",
        "just text\n",
        "- [1, [2, [3]]]\n- {a: , b: ''}\n- ! 12\n",
        "n: [0o17, 0x1f, 1_000, 1e3, .inf, -.5, 2026-01-02 03:04:05, yes, No, Null]\n",
        "k: |\n  two\n  lines\n'quoted key': \"x\\ty\"\n",
        "a: 1\n---\nb: 2\n",  # two documents
        "a: 1\na: 2\n",  # a key twice
    ],
)
def test_fast_yaml_building_matches_pyyaml(text: str) -> None:
    import yaml

    from kpi_collector.config.loader import _parse_yaml

    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:  # unhashable keys, two documents: both must refuse
        with pytest.raises(yaml.YAMLError):
            _parse_yaml(text)
        return
    if text.count("a: ") == 2:  # PyYAML keeps the last; a config may not say it twice
        with pytest.raises(ConfigError, match=r"kpi.yaml:2: duplicate key 'a' \(first at line 1\)"):
            _parse_yaml(text)
        return
    assert _parse_yaml(text) == expected


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("a: 1\nb: [x, {c: d}]\n", True),
        ("base: &b {t: 5}\nsource: *b\n", False),  # an anchor and an alias
        ("tagged: !!str 12\n", False),
        ("1: one\n", False),
        ("a: 1\na: 2\n", False),  # refused by the node tree's checks, with both lines
        ("n: " + "9" * 1001 + "\n", False),
        ("a: 1\n---\nb: 2\n", False),
    ],
)
def test_plain_documents_are_built_from_events(text: str, plain: bool) -> None:
    """A plain config is built from the parser's events without a node tree; anything else
    goes the node tree's way, which has the checks and the messages."""
    import yaml

    from kpi_collector.config.loader import _NotPlain, _plain_events

    loader = yaml.CSafeLoader(text)
    try:
        if plain:
            assert _plain_events(loader) == yaml.safe_load(text)
        else:
            with pytest.raises(_NotPlain):
                _plain_events(loader)
    finally:
        loader.dispose()


ONE = "sources:\n  - {name: c, type: command, command: [echo, '1']EXTRA}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 reads these as numbers or booleans: the message shows them as written
        (
            ONE.replace("EXTRA", "") + "title: 12:30\n",
            "kpi.yaml:3: title: 12:30 (YAML reads it as 750) is not a text; quote it: '12:30'",
        ),
        (
            ONE.replace("EXTRA", "") + "locale: no\n",
            "kpi.yaml:3: locale: no (YAML reads it as false) is not a text; quote it: 'no'",
        ),
        (
            # a program's environment may hold a secret: its value is never shown
            ONE.replace("EXTRA", ", env: {MODE: 0755}"),
            "kpi.yaml:2: source 'c': env.MODE: a number is not a text; quote it",
        ),
        # a boolean where a number goes was read as 1 (a one-second timeout)
        (
            ONE.replace("EXTRA", ", timeout: true"),
            "kpi.yaml:2: source 'c': timeout: true is not a number",
        ),
        (
            ONE.replace("EXTRA", ", retries: yes"),
            "kpi.yaml:2: source 'c': retries: yes (YAML reads it as true) is not a number",
        ),
        (ONE.replace("EXTRA", "") + "jitter: on\n", "kpi.yaml:3: jitter: on (YAML reads it as"),
        (
            "sources:\n  - {name: h, type: html, url: 'https://a.example/', "
            "metrics: {a: {css: b, expect: {min: true}}}}\n",
            "source 'h': metrics.a.expect.min: true is not a number",
        ),
        # NaN and infinities: a timeout that never ends, a threshold that never fires
        (
            ONE.replace("EXTRA", ", timeout: .inf"),
            "kpi.yaml:2: source 'c': timeout: .inf (YAML reads it as inf) is not a finite number",
        ),
        (
            ONE.replace("EXTRA", "") + "alerts:\n  - {kpi: c.value, below: .nan}\n",
            "kpi.yaml:4: alerts.0.below: .nan (YAML reads it as nan) is not a finite number",
        ),
        (
            ONE.replace("EXTRA", "") + "kpis:\n  c.value: {target: .NaN}\n",
            "kpis.c.value.target: .NaN (YAML reads it as nan) is not a finite number",
        ),
        # a misspelt required key is named with the fix, not as the key that is missing
        (
            "sources:\n  - {name: h, type: http_json, url: 'https://a.example/', metric: {a: b}}\n",
            "kpi.yaml:2: source 'h': unknown key 'metric'; did you mean 'metrics'? "
            "(and 1 more problem in this source 'h')",
        ),
    ],
)
def test_values_read_as_something_else_are_refused_as_written(text: str, expected: str) -> None:
    message = error_of(text)
    assert expected in message, message


def test_celery_executor_numbers_refuse_booleans() -> None:
    text = (
        ONE.replace("EXTRA", "")
        + "store: postgresql+psycopg://u@h/d\nexecutor: {type: celery, broker: 'redis://h', "
        "batch_size: true}\n"
    )
    assert "kpi.yaml:4: executor.batch_size: true is not a number" in error_of(text)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("${X:=5}", "${X:=5} is not a variable this config reads"),
        ("${X-5}", "${X-5} is not a variable this config reads"),
        ("a${X", "${X is never closed"),
        ("${X:-${Y}}", "${X:-${Y}: a default cannot hold another variable"),
    ],
)
def test_a_variable_reference_of_another_form_is_an_error_not_text(
    written: str, expected: str
) -> None:
    """Each was kept as it is written: `echo '${X:=5}'` ran with that text."""
    text = ONE.replace("'1']EXTRA", f"'{written}']")
    message = error_of(text, env={"X": "1", "Y": "2"})
    assert message == (
        f"kpi.yaml:2: source 'c': command.1: {expected}; write ${{NAME}} or "
        "${NAME:-default} (a literal $ is $$)"
    )
    assert parse_config(ONE.replace("'1']EXTRA", "'$${X:=5}']"), env={}).sources


def test_a_variable_in_a_key_is_an_error_not_a_key() -> None:
    text = ONE.replace("EXTRA", ", env: {'${K}': v}")
    assert error_of(text, env={"K": "A"}) == (
        "kpi.yaml:2: sources.0.env.${K}: variables are read in values only, not in keys; "
        "write the key as it is (a literal $ is $$)"
    )


def test_a_section_whose_entries_are_all_commented_out_is_empty() -> None:
    """`destinations:` with each entry commented out (as the starter's, to try it without
    one) is YAML's empty value: it was "destinations: an empty value is not a list"."""
    text = GOOD.replace(
        "destinations:\n  - {type: csv, path: kpis.csv}\n",
        "destinations:\n  # - {type: csv, path: kpis.csv}\nalerts:\ndefaults:\nhealth:\n",
    )
    config = parse_config(text, path=Path("kpi.yaml"), env={"CRM_TOKEN": "t"})
    assert config.destinations == [] and config.settings.alerts == []
    assert config.defaults.timeout == 20
    empty = parse_config("sources:\nkpis:\n", path=Path("kpi.yaml"), env={})
    assert empty.sources == [] and empty.kpis == {}


def test_a_literal_dollar_in_a_key_is_written_as_in_a_value() -> None:
    """The error above says a key's literal `$` is `$$`, as in values; the key kept both."""
    text = ONE.replace("EXTRA", ", env: {'PRICE_$$': v, 'RAW_$${K}': w}")
    config = parse_config(text, path=Path("kpi.yaml"), env={"K": "A"})
    assert dict(config.sources[0].env) == {"PRICE_$": "v", "RAW_${K}": "w"}  # type: ignore[attr-defined]
    twins = ONE.replace("EXTRA", ", env: {'PRICE_$$': v, 'PRICE_$': w}")
    assert error_of(twins) == (
        "kpi.yaml:2: sources.0.env.PRICE_$$: the same key as 'PRICE_$' ($$ is a literal $); "
        "keep one of them"
    )


@pytest.mark.parametrize(
    ("dotenv", "expected"),
    [
        # python-dotenv logged a warning and left TOKEN out; the line's text is never shown
        (
            b"X=1\nTOKEN = 'never-closed-s3cret\n",
            ".env:2: cannot read this line; write NAME=value, and close a quote a value "
            "opens ('...' or \"...\")",
        ),
        # was a UnicodeDecodeError traceback
        (b"X=caf\xe9\n", ".env:1: not UTF-8 text; save the .env file as UTF-8"),
    ],
)
def test_a_dotenv_file_that_cannot_be_read_is_one_config_error(
    tmp_path: Path, dotenv: bytes, expected: str
) -> None:
    (tmp_path / "kpi.yaml").write_text(ONE.replace("'1']EXTRA", "'${X}']"))
    (tmp_path / ".env").write_bytes(dotenv)
    with pytest.raises(ConfigError) as info:
        parse_config((tmp_path / "kpi.yaml").read_text(), path=tmp_path / "kpi.yaml", env={})
    assert str(info.value) == f"{tmp_path / '.env'}{expected.removeprefix('.env')}"
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # `a` (metric b.value) and `a.b` (metric value) both gave the KPI id a.b.value
        (
            "sources:\n  - {name: a, type: command, command: [echo, '1'], metric: b.value}\n"
            "  - {name: a.b, type: command, command: [echo, '1']}\n",
            "kpi.yaml:3: source 'a.b': a source name cannot hold '.', since KPI ids are "
            "<source name>.<metric>; name it e.g. 'a_b'",
        ),
        (
            "sources:\n  - {name: h, type: http_json, url: 'https://a.example/', "
            "metrics: {'': a}}\n",
            "kpi.yaml:2: source 'h': a metric has an empty name; give it one, e.g. users: ...",
        ),
        # a derived KPI with the id of a collected one: which value is stored was a guess
        (
            ONE.replace("EXTRA", "") + "kpis:\n  c.value: {formula: '2 + 2'}\n",
            "kpi.yaml:4: kpis.c.value.formula: source 'c' collects c.value already; give the "
            "derived KPI an id of its own, e.g. c.value_derived",
        ),
        # at the formula's line (was the line of `kpis:`), with the backticks such ids need
        (
            "sources:\n  - {name: my-app, type: command, command: [echo, '1']}\n"
            "kpis:\n  my-app.twice: {formula: 'my-app.value * 2'}\n",
            "kpi.yaml:4: kpis.my-app.twice.formula: formula for my-app.twice ('my-app.value * 2')"
            " uses unknown KPI id(s): app.value (did you mean `my-app.value`? ids with other "
            "characters than letters, digits, _ and . go in backticks), my",
        ),
    ],
)
def test_kpi_ids_stay_unique_and_readable(text: str, expected: str) -> None:
    assert error_of(text) == expected


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # APScheduler's words named the value, not the field
        (
            "60 * * * *",
            "'60 * * * *' is not a valid cron expression: minute '60': the last value (60) is "
            "higher than the maximum value (59)",
        ),
        ("0 25 * * *", "'0 25 * * *' is not a valid cron expression: hour '25': "),
        # accepted, and never fired
        ("0 7 30 2 *", "'0 7 30 2 *' never fires: Feb has no day 30; use L for a month's last day"),
        (
            "0 7 31 4,6,9,11 *",
            "'0 7 31 4,6,9,11 *' never fires: Apr or Jun or Sep or Nov has no day 31",
        ),
        ("daily", "'daily' is not a cron expression; did you mean '@daily'?"),
    ],
)
def test_cron_mistakes_name_the_field_and_a_schedule_that_never_fires(
    cron: str, expected: str
) -> None:
    message = error_of(ONE.replace("EXTRA", "") + f"schedule: '{cron}'\n")
    assert message.startswith(f"kpi.yaml:3: schedule: {expected}"), message


def test_days_some_month_has_still_fire() -> None:
    for cron in ("0 7 29 2 *", "0 7 31 * *", "0 7 30 2 1", "0 7 L 2 *"):
        assert parse_config(ONE.replace("EXTRA", "") + f"schedule: '{cron}'\n", env={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # was pydantic's "Input tag 'locl' found using 'type' does not match any of ..."
        (
            ONE.replace("EXTRA", "") + "executor: {type: locl}\n",
            "kpi.yaml:3: executor: type 'locl' is not one of: local, celery; did you mean 'local'?",
        ),
        # was "unknown key 'executor.local.brker'; remove it": the type's name in the path
        (
            ONE.replace("EXTRA", "") + "executor: {type: local, brker: x}\n",
            "kpi.yaml:3: unknown key 'executor.brker'; known keys: type",
        ),
        # was "metrics.a.map.1.[key]: true is not a text"
        (
            "sources:\n  - {name: h, type: html, url: 'https://a.example/', "
            "metrics: {a: {css: b, map: {yes: 1, no: 0}}}}\n",
            "kpi.yaml:2: source 'h': metrics.a.map: the key yes (YAML reads it as true) is not "
            "a text; quote it: 'yes' (and 1 more problem in this source 'h')",
        ),
        # was "String should match pattern '^\d+d$'"
        (
            ONE.replace("EXTRA", "")
            + "destinations:\n  - {type: slack, webhook_url: 'https://h.example/x', compare: 2w}\n",
            "kpi.yaml:4: destination 'slack': compare: '2w' is not a number of days; "
            "write it like 14d",
        ),
    ],
)
def test_pydantic_words_are_said_in_ours(text: str, expected: str) -> None:
    assert error_of(text) == expected


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        # each was accepted by `kpi validate` and failed at the first delivery
        (
            "{type: slack, webhook_url: 'hooks.example.com/services/T0/B0/s3cretpart'}",
            "kpi.yaml:4: destination 'slack': webhook_url: not an http(s) URL; copy the whole "
            "URL, https:// included",
        ),
        (
            "{type: slack, token: t-1, channel: c, api_url: 'slack.example/api'}",
            "kpi.yaml:4: destination 'slack': api_url: 'slack.example/api' is not an http(s) URL",
        ),
        (
            "{type: segment, write_key: k-1, api_url: 'ftp://segment.example'}",
            "kpi.yaml:4: destination 'segment': api_url: 'ftp://segment.example' is not an "
            "http(s) URL",
        ),
        # a webhook URL (a secret: never shown) with a space, a tab, a backslash or a port
        # out of range passed `kpi validate` and failed at every delivery
        (
            "{type: slack, webhook_url: 'https://hooks.example/T0/B0/s3cret part'}",
            "kpi.yaml:4: destination 'slack': webhook_url: the URL holds a space; a URL has "
            "none (write %20 in its path)",
        ),
        (
            "{type: discord, webhook_url: 'https://discord.example:99999/api/webhooks/1/s3cret'}",
            "kpi.yaml:4: destination 'discord': webhook_url: the URL has no valid port (a "
            "number from 1 to 65535)",
        ),
        (
            "{type: webhook, url: 'https://hooks.example\\\\s3cret'}",
            "kpi.yaml:4: destination 'webhook': url: the URL holds a backslash; a URL is "
            "written with /",
        ),
    ],
)
def test_destination_urls_are_checked_at_load(destination: str, expected: str) -> None:
    message = error_of(ONE.replace("EXTRA", "") + f"destinations:\n  - {destination}\n")
    assert message == expected
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # was "kpi.yaml: None: Keys should be strings"
        # a key at the top level was named without its line
        ("sources: []\n~: 1\n", "kpi.yaml:2: the key ~ is not a text; quote it: '~'"),
        ("sources: []\n\non: push\n", "kpi.yaml:3: the key on is not a text; quote it: 'on'"),
        (
            "sources:\n  - name: c\n    type: command\n    command: [echo, '1']\n    env:\n"
            "      A: x\n      1: y\n",
            "kpi.yaml:7: source 'c': env: the key 1 is not a text; quote it: '1'",
        ),
        ("kpis:\n  1: {title: x}\n", "kpi.yaml:2: kpis: the key 1 is not a text; quote it: '1'"),
        # a date YAML read from the text
        (
            "sources: []\ntitle: 2024-01-01\n",
            "kpi.yaml:2: title: 2024-01-01 is not a text; quote it: '2024-01-01'",
        ),
    ],
)
def test_keys_and_values_yaml_reads_as_no_text(text: str, expected: str) -> None:
    assert error_of(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 reads a leading 0 as octal and `a:b` as base 60: these were stored as
        # a timeout of 8 s, 90 s, a threshold of 64, with no word
        (
            ONE.replace("EXTRA", ", timeout: 010"),
            "kpi.yaml:2: source 'c': timeout: 010 (YAML reads it as 8: a leading 0 makes it "
            "octal); write it without the leading 0, or quote it: '010'",
        ),
        (
            ONE.replace("EXTRA", ", timeout: 1:30"),
            "kpi.yaml:2: source 'c': timeout: 1:30 (YAML reads it as 90: a number with : is "
            "base 60, like a time); write the number itself, or quote it: '1:30'",
        ),
        (
            ONE.replace("EXTRA", "") + "defaults:\n  retries: +010\n",
            "kpi.yaml:4: defaults.retries: +010 (YAML reads it as 8: a leading 0 makes it "
            "octal); write it without the leading 0, or quote it: '+010'",
        ),
        (
            ONE.replace("EXTRA", "") + "alerts:\n  - {kpi: c.value, below: 0100}\n",
            "kpi.yaml:4: alerts.0.below: 0100 (YAML reads it as 64: a leading 0 makes it "
            "octal); write it without the leading 0, or quote it: '0100'",
        ),
        (
            ONE.replace("EXTRA", "") + "kpis:\n  c.value: {target: 1:00:00.5}\n",
            "kpi.yaml:4: kpis.c.value.target: 1:00:00.5 (YAML reads it as 3600.5: a number with "
            ": is base 60, like a time); write the number itself, or quote it: '1:00:00.5'",
        ),
        (
            ONE.replace("EXTRA", "")
            + "destinations:\n  - {name: out, type: csv, path: k.csv, timeout: 05}\n",
            "kpi.yaml:4: destination 'out': timeout: 05 (YAML reads it as 5: a leading 0 makes "
            "it octal); write it without the leading 0, or quote it: '05'",
        ),
    ],
)
def test_numbers_yaml_reads_in_another_base_are_refused(text: str, expected: str) -> None:
    assert error_of(text) == expected


@pytest.mark.parametrize(
    ("kind", "shown"),
    [("[html]", "a list"), ("1", "1"), ("no", "no (YAML reads it as false)"), ("''", None)],
)
def test_a_type_that_is_no_name_says_so(kind: str, shown: str | None) -> None:
    """`type: [html]` or `type: 1` was "this source has no `type:`", which it has."""
    message = error_of(f"sources:\n  - {{name: a, type: {kind}}}\n")
    if shown is None:
        assert message == "kpi.yaml:2: this source has no `type:`; add one, e.g. `type: html`"
    else:
        assert message == (
            f"kpi.yaml:2: source 'a': type: {shown} is not a type's name; write one, e.g. "
            "`type: html`"
        )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # the Norway problem: `country: no` was sent as {"country": false}
        (
            "{name: crm, type: http_json, url: 'http://x/', method: POST, metrics: {a: b}, "
            "body: {filter: {country: no, active: true}}}",
            "kpi.yaml:2: source 'crm': body.filter.country: no (YAML 1.1 reads it as false); "
            "quote it: 'no', or write false",
        ),
        # a date has no JSON form: every run failed with "not JSON serializable"
        (
            "{name: crm, type: http_json, url: 'http://x/', method: POST, metrics: {a: b}, "
            "body: [{since: 2024-01-01}]}",
            "kpi.yaml:2: source 'crm': body.0.since: 2024-01-01 (YAML reads it as a date); "
            "quote it: '2024-01-01'",
        ),
        (
            "{name: f, type: python, function: 'mod:f', kwargs: {region: On}}",
            "kpi.yaml:2: source 'f': kwargs.region: On (YAML 1.1 reads it as true); quote it: "
            "'On', or write true",
        ),
    ],
)
def test_data_passed_on_as_written_refuses_what_yaml_reads_otherwise(
    entry: str, expected: str
) -> None:
    """Where a config holds data a source passes on as it is (a JSON body, a function's
    keyword arguments), no model type says `no` must be a text: YAML 1.1's yes/no/on/off
    and dates went out as booleans and dates nobody wrote."""
    assert error_of(f"sources:\n  - {entry}\n") == expected
    fine = (
        entry.replace("no,", "'no',").replace("2024-01-01", "'2024-01-01'").replace("On}", "'On'}")
    )
    parse_config(f"sources:\n  - {fine}\n", path=Path("kpi.yaml"), env={})


CREDENTIALS = """\
sources:
  - {name: gh, type: github, repo: a/b, token: TOKEN}
  - name: pod
    type: html
    url: http://127.0.0.1:9/
    login: {url: http://127.0.0.1:9/login, fields: {email: a, password: PASSWORD}}
    headers: {X-Api-Key: HEADER}
    metrics: {x: "#x"}
"""


def credentials(token: str = "t", password: str = "p", header: str = "h") -> str:
    return (
        CREDENTIALS.replace("TOKEN", token).replace("PASSWORD", password).replace("HEADER", header)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 reads these as numbers written another way, or as true/false: the
        # credential sent was '305441741', '1000', '3' or 'True', never the one written
        (
            credentials(token="0x1234abcd"),
            "kpi.yaml:2: source 'gh': token: YAML reads this value as a number (hexadecimal), "
            "not as the text written; quote it",
        ),
        (
            credentials(password="83_724_619"),
            "kpi.yaml:6: source 'pod': login.fields.password: YAML reads this value as a "
            "number (digits grouped with _), not as the text written; quote it",
        ),
        (
            credentials(password="0b1101"),
            "kpi.yaml:6: source 'pod': login.fields.password: YAML reads this value as a "
            "number (binary), not as the text written; quote it",
        ),
        (
            credentials(token="+8372461955"),
            "kpi.yaml:2: source 'gh': token: YAML reads this value as a number (a + sign), "
            "not as the text written; quote it",
        ),
        (
            credentials(password="0123456"),
            "kpi.yaml:6: source 'pod': login.fields.password: YAML reads this value as a "
            "number (octal: a leading 0), not as the text written; quote it",
        ),
        (
            credentials(token="yes"),
            "kpi.yaml:2: source 'gh': token: yes (YAML reads it as true) is not a text; "
            "quote it: 'yes'",
        ),
        # a number where a header goes: refused, its value (an API key) never shown
        (
            credentials(header="8372461955"),
            "kpi.yaml:7: source 'pod': headers.X-Api-Key: a number is not a text; quote it",
        ),
    ],
)
def test_a_credential_yaml_reads_as_another_value_is_refused_unshown(
    text: str, expected: str
) -> None:
    assert error_of(text) == expected


def test_a_number_in_another_form_is_refused_only_where_it_becomes_a_text() -> None:
    # an id a validator takes as a number and keeps as its digits: 0x75BCD15 became 123456789
    ga = "sources:\n  - {type: google_analytics, property_id: 0x75BCD15, credentials_file: a}\n"
    assert error_of(ga) == (
        "kpi.yaml:2: source 'google_analytics': property_id: YAML reads 0x75BCD15 as a number "
        "(hexadecimal), not as the text written; quote it: '0x75BCD15'"
    )
    # numbers where numbers go, under a name that looks like a credential's: as before
    text = (
        "sources:\n  - name: monkey\n    type: html\n    url: http://127.0.0.1:9/\n"
        "    metrics: {api_keys: {css: p, map: {TOKEN_OK: 1_000}, expect: {min: +1}}}\n"
        "kpis:\n  monkey.api_keys: {target: 1_000}\n"
    )
    config = parse_config(text, path=Path("kpi.yaml"), env={})
    assert config.kpis["monkey.api_keys"].target == 1000
    # and a wrong value there is shown, as any that is no credential
    assert error_of(text.replace("min: +1", "min: lots")) == (
        "kpi.yaml:5: source 'monkey': metrics.api_keys.expect.min: 'lots' is not a number"
    )


def test_a_credential_written_as_a_plain_number_is_that_text() -> None:
    config = parse_config(credentials(token="8372461955", password="0"), env={})
    assert config.sources[0].token.get() == "8372461955"
    assert config.sources[1].login.fields["password"].get() == "0"


@pytest.mark.parametrize(
    "value", ["10", "0.5", "1_000", "0x10", "'010'", "1e3", "10.0", "0.05", "+7"]
)
def test_numbers_written_in_base_ten_pass(value: str) -> None:
    config = parse_config(ONE.replace("EXTRA", f", retries: 2, timeout: {value}"), env={})
    assert config.sources[0].timeout is not None


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        # a name YAML reads as false or 0 was silently replaced by the type (`command`),
        # renaming the source's KPIs; a date or number was shown as Python writes it
        ("no", "no (YAML reads it as false)"),
        ("off", "off (YAML reads it as false)"),
        ("false", "false"),
        ("0", "0"),
        ("0.0", "0.0"),
        ("0755", "0755 (YAML reads it as 493)"),
        ("2024-01-01", "2024-01-01"),
        ("12", "12"),
    ],
)
def test_a_name_yaml_reads_as_no_text_is_refused(name: str, shown: str) -> None:
    source = f"sources:\n  - {{name: {name}, type: command, command: [echo, '1']}}\n"
    assert error_of(source) == (
        f"kpi.yaml:2: source 'command': name: {shown} is not a text; quote it: '{name}'"
    )
    destination = ONE.replace("EXTRA", "") + f"destinations:\n  - {{name: {name}, type: csv}}\n"
    assert error_of(destination) == (
        f"kpi.yaml:4: destination 'csv': name: {shown} is not a text; quote it: '{name}'"
    )


@pytest.mark.parametrize("name", ["~", "''", '""'])
def test_an_empty_name_is_the_type(name: str) -> None:
    config = parse_config(
        f"sources:\n  - {{name: {name}, type: command, command: [echo, '1']}}\n", env={}
    )
    assert [s.name for s in config.sources] == ["command"]


def test_an_expect_range_no_value_can_pass_is_refused() -> None:
    """Every value would have been an error and none stored."""
    text = (
        "sources:\n  - {name: h, type: html, url: 'https://a.example/', "
        "metrics: {a: {css: b, expect: {min: 5, max: 1}}}}\n"
    )
    assert error_of(text) == (
        "kpi.yaml:2: source 'h': metrics.a.expect: min 5 is more than max 1: no value could "
        "pass; swap them"
    )


def test_an_empty_config_path_is_refused_not_taken_for_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kpi -c "$CONFIG"` with CONFIG unset read ./kpi.yaml, another config, without a word."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kpi.yaml").write_text("sources: []\n")
    with pytest.raises(ConfigError) as info:
        load_config("")
    assert str(info.value) == "the config path is empty; give the file's path, e.g. -c kpi.yaml"


@pytest.mark.parametrize("path", ["/dev/null", "/dev/zero"])
def test_a_config_path_that_is_no_file_says_what_it_is(path: str) -> None:
    """It said "no such config file" of a path that exists (a device, or a pipe from
    `kpi -c <(...)`)."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: not a regular file (a device or a pipe); write the config to a file and "
        "give its path"
    )


@pytest.mark.parametrize(
    "place", ["timeout: '${MY_PASSWORD}'", "env: {A: [x]}, retries: '${API_TOKEN}'"]
)
def test_a_long_secret_shown_cut_leaves_no_part_behind(place: str) -> None:
    """A value is cut to 60 characters in a message; cut before it was masked, the first 55
    characters of a 78-character secret stayed in the message, where masking no longer
    found the whole."""
    secret = "sk_live_" + "Q7" * 35
    text = f"sources:\n  - {{name: c, type: command, command: [echo, '1'], {place}}}\n"
    message = error_of(text, env={"MY_PASSWORD": secret, "API_TOKEN": secret})
    assert "***" in message
    assert "sk_live_" not in message and "Q7Q7" not in message


@pytest.mark.parametrize("value", ["$GITHUB_TOKEN", "Bearer $GITHUB_TOKEN", "x$GITHUB_TOKEN-y"])
def test_a_variable_written_without_braces_is_refused_when_it_is_set(value: str) -> None:
    """`$GITHUB_TOKEN` (the shell's short form) was kept as text and sent as the token: the
    service refused it, or a public page answered without it."""
    text = (
        f"sources:\n  - {{name: c, type: command, command: [echo, '1'], env: {{A: '{value}'}}}}\n"
    )
    assert error_of(text, env={"GITHUB_TOKEN": "tk-1"}) == (
        "kpi.yaml:2: source 'c': env.A: $GITHUB_TOKEN is kept as text, not read from the "
        "variable; write ${GITHUB_TOKEN}, or $$GITHUB_TOKEN for a literal $"
    )
    github = f"sources:\n  - {{type: github, repo: a/b, token: '{value}'}}\n"
    assert error_of(github, env={"GITHUB_TOKEN": "tk-1"}).startswith(
        "kpi.yaml:2: source 'github': token: $GITHUB_TOKEN is kept as text"
    )
    url = "sources:\n  - {name: h, type: http_json, url: 'https://x.example/$HOST_X', metrics: {a: b}}\n"
    assert "url: $HOST_X is kept as text" in error_of(url, env={"HOST_X": "h"})


@pytest.mark.parametrize(
    ("value", "kept"),
    [("$NOT_SET_X", "$NOT_SET_X"), ("$$GITHUB_TOKEN", "$GITHUB_TOKEN"), ("pa$", "pa$"),
     ("5$ or $5", "5$ or $5"), ("${GITHUB_TOKEN}", "tk-1")],
)  # fmt: skip
def test_a_dollar_that_names_no_set_variable_is_kept(value: str, kept: str) -> None:
    text = (
        f"sources:\n  - {{name: c, type: command, command: [echo, '1'], env: {{A: '{value}'}}}}\n"
    )
    config = parse_config(text, env={"GITHUB_TOKEN": "tk-1"})
    assert config.sources[0].env == {"A": kept}


def test_a_shell_variable_in_a_command_is_the_shells() -> None:
    text = "sources:\n  - {name: c, type: command, command: [sh, -c, 'echo $HOME']}\n"
    config = parse_config(text, env={"HOME": "/root"})
    assert config.sources[0].command == ["sh", "-c", "echo $HOME"]


def test_a_folder_given_as_the_config_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: a folder, not a config file; give the file's path, e.g. "
        f"{tmp_path / 'kpi.yaml'}"
    )


def test_a_url_with_a_space_is_refused_at_load() -> None:
    """It passed `kpi validate` and failed at the first request."""
    text = (
        "sources:\n  - {name: h, type: http_json, url: 'https://api.exa mple.com/x', "
        "metrics: {a: b}}\n"
    )
    assert error_of(text) == (
        "kpi.yaml:2: source 'h': url: 'https://api.exa mple.com/x' holds a space; a URL has "
        "none (write %20 in its path)"
    )


@pytest.mark.parametrize(
    ("store", "where"),
    [
        ("sqlite:///~/kpis/kpi.db", "home/kpis/kpi.db"),
        ("sqlite:///data/kpi.db", "project/data/kpi.db"),
        (None, "project/kpi.db"),
    ],
)
def test_a_sqlite_store_under_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str | None, where: str
) -> None:
    """`store: sqlite:///~/kpis/kpi.db` made a folder named `~` beside kpi.yaml (the next
    `rm -rf ~` there is a disaster), while a file destination's `path: ~/kpis.csv` is in the
    home folder: `~` is the home folder in both."""
    (tmp_path / "home").mkdir()
    (tmp_path / "project").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = tmp_path / "project" / "kpi.yaml"
    config.write_text((f"store: {store}\n" if store else "") + "sources: []\n")
    assert load_config(config).store_url == f"sqlite:///{(tmp_path / where).resolve()}"


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("0", 0.0), ('"0"', 0.0), ("0s", 0.0), ('"0.0m"', 0.0), ("90", 90.0), ("5m", 300.0)],
)
def test_no_jitter_however_zero_is_written(written: str, seconds: float) -> None:
    # `jitter: 0` was accepted and `jitter: "0"` or `0s` refused as "a duration must be
    # positive": zero is no jitter in every spelling
    config = parse_config(
        f"jitter: {written}\n" + ONE.replace("EXTRA", ""), path=Path("kpi.yaml"), env={}
    )
    assert config.settings.jitter_seconds == seconds


def test_a_negative_jitter_is_still_refused() -> None:
    with pytest.raises(ConfigError, match=r"kpi\.yaml:1: jitter: a duration must be positive"):
        parse_config('jitter: "-1m"\n' + ONE.replace("EXTRA", ""), path=Path("kpi.yaml"), env={})
