"""Hostile configs (issue 12, section 3): whatever the file holds, `kpi validate` answers with
exit 0, or exit 2 and one `config error:` line, at once and in bounded memory; never a hang
or a traceback. The named examples, then a fuzz test over mutated real configs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kpi_collector.cli import run_command
from kpi_collector.commands.starter import STARTER_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        name, previous = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join([*lines, "sources: []"]) + "\n"


SUM_OF_20000 = " + ".join(["c.value"] * 20000)
EXAMPLES: dict[str, tuple[bytes, str]] = {
    "alias bomb": (
        billion_laughs().encode(),
        "kpi.yaml: YAML aliases (*name) expand this file to 4,412,961,518 values; "
        "refusing more than 100,000 added by aliases",
    ),
    "utf-16": (
        "sources: []\n".encode("utf-16"),
        "kpi.yaml: this file is UTF-16 text; save it as UTF-8",
    ),
    # without a byte order mark it was "character U+0000: control characters are not
    # allowed"; UTF-32 was called UTF-16
    "utf-16 without a BOM": (
        "sources: []\n".encode("utf-16-le"),
        "kpi.yaml: this file is UTF-16 text; save it as UTF-8",
    ),
    "utf-16 big-endian without a BOM": (
        "sources: []\n".encode("utf-16-be"),
        "kpi.yaml: this file is UTF-16 text; save it as UTF-8",
    ),
    "utf-32": (
        "sources: []\n".encode("utf-32"),
        "kpi.yaml: this file is UTF-32 text; save it as UTF-8",
    ),
    "utf-32 big-endian without a BOM": (
        "sources: []\n".encode("utf-32-be"),
        "kpi.yaml: this file is UTF-32 text; save it as UTF-8",
    ),
    "binary": (
        b"sources: []\n" + bytes(range(256)),
        "kpi.yaml:3: not UTF-8 text (byte 0x80); is it a binary file? save the config as UTF-8",
    ),
    "5,000-digit integer": (
        f"defaults: {{timeout: {'9' * 5000}}}\n".encode(),
        "kpi.yaml:1: a number with 5000 digits; quote it if it is meant as text",
    ),
    "20,000-term formula": (
        (
            "sources:\n  - {name: c, type: command, command: [echo, '1']}\n"
            f'kpis:\n  c.total: {{formula: "{SUM_OF_20000}"}}\n'
        ).encode(),
        "kpi.yaml:4: kpis.c.total.formula: a formula of 199,997 characters is too long "
        "(at most 5,000); split it into several derived KPIs",
    ),
    "formula nested 300 deep": (
        (
            "sources:\n  - {name: c, type: command, command: [echo, '1']}\n"
            f'kpis:\n  c.total: {{formula: "{" + ".join(["c.value"] * 300)}"}}\n'
        ).encode(),
        "kpi.yaml:4: kpis.c.total.formula: formula 'c.value + c.value + c.value + c.value + "
        "c.value + c.value...': nested more than 200 levels deep; split it into several "
        "derived KPIs",
    ),
    "brackets 100,000 deep": (
        ("sources: " + "[" * 100_000 + "]" * 100_000 + "\n").encode(),
        "kpi.yaml: brackets nested more than 64 deep; a config is a few levels deep",
    ),
    "alias inside itself": (
        b"sources: []\nloop: &a [1, *a]\n",
        "kpi.yaml:2: a YAML alias refers to the value it is inside",
    ),
    "duplicate key": (
        b"timezone: UTC\nsources:\n  - {name: c, type: command, command: [echo, '1']}\n"
        b"timezone: Europe/Berlin\n",
        "kpi.yaml:4: duplicate key 'timezone' (first at line 1); keep one of them",
    ),
    "duplicate key in a flow mapping": (
        b"sources:\n  - {name: c, type: command, name: d, command: [echo, '1']}\n",
        "kpi.yaml:2: duplicate key 'name' (first at line 2); keep one of them",
    ),
    "unknown store": (
        b"store: nope://x\nsources: []\n",
        "kpi.yaml:1: store: unknown database kind 'nope' in 'nope://x'; use sqlite:///kpi.db, "
        "postgresql+psycopg://... or mysql+pymysql://...",
    ),
    "store that is not a URL": (
        b"store: just words\nsources: []\n",
        "kpi.yaml:1: store: 'just words' is not a database URL; use sqlite:///kpi.db, "
        "postgresql+psycopg://... or mysql+pymysql://...",
    ),
    "NUL character": (
        b"sources: []\ntitle: a\x00b\n",
        "kpi.yaml:2: not valid YAML: character U+0000: control characters are not allowed",
    ),
    # PyYAML's words, which said neither what was wrong nor how to fix it
    "a lone = (YAML 1.1's value key)": (
        b"sources:\n  - {name: a, type: html, url: 'http://x/', metrics: {b: {css: p, regex: =}}}\n",
        "kpi.yaml:2: not valid YAML: YAML 1.1 reads a lone = as a special value, not as the "
        "text; quote it: '='",
    ),
    "a lone << as a value": (
        b"sources: []\ntitle: <<\n",
        "kpi.yaml:2: not valid YAML: YAML 1.1 reads a lone << as a special value, not as the "
        "text; quote it: '<<'",
    ),
    "a tag this config does not read": (
        b"sources: []\ntitle: !Ref name\n",
        "kpi.yaml:2: not valid YAML: the tag !Ref is not read here: remove it, or quote the "
        "value if the ! is part of it",
    ),
    "a second document": (
        b"sources: []\n---\ntitle: x\n",
        "kpi.yaml:2: not valid YAML: a second YAML document starts here (---); a config is "
        "one document: remove this line",
    ),
    "two problems in one entry": (
        b"sources:\n  - {name: c, type: command, command: [echo, '1'], timeot: 1, retrys: 2}\n",
        "kpi.yaml:2: source 'c': unknown key 'timeot'; did you mean 'timeout'? "
        "(and 1 more problem in this source 'c')",
    ),
}


def validate(folder: Path, content: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`kpi validate` in this process (the CLI's own entry point): exit code and stderr."""
    path = folder / "kpi.yaml"
    path.write_bytes(content)
    here = Path.cwd()
    os.chdir(folder)  # errors name the file as given: kpi.yaml
    try:
        code = run_command(["-c", "kpi.yaml", "validate"])
    finally:
        os.chdir(here)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_each_hostile_config_is_one_config_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, message = EXAMPLES[name]
    code, err = validate(tmp_path, content, capsys)
    assert (code, err) == (2, f"config error: {message}\n")


def test_the_examples_in_a_real_process_exit_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    for name in ("alias bomb", "binary", "20,000-term formula", "unknown store"):
        content, message = EXAMPLES[name]
        (tmp_path / "kpi.yaml").write_bytes(content)
        done = subprocess.run(
            [sys.executable, "-m", "kpi_collector", "validate"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert (done.returncode, done.stderr, done.stdout) == (2, f"config error: {message}\n", "")


def test_an_unknown_store_fails_validate_not_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    (tmp_path / "kpi.yaml").write_text(
        "store: nope://x\nsources:\n  - {name: c, type: command, command: [echo, '1']}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "kpi_collector", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("config error: kpi.yaml:1: store: unknown database kind 'nope'")


def real_configs() -> list[str]:
    """The starter config and every YAML example in the README and docs/."""
    texts = [STARTER_CONFIG]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        texts += re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return [t for t in texts if "sources:" in t or "destinations:" in t]


REAL = real_configs()
# pieces a mutation puts in: YAML syntax, aliases, big and odd numbers, odd text
PIECES = st.sampled_from(
    [
        ":",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "<<: *a",
        "!!python/object ",
        "!!binary ",
        "? ",
        "|",
        ">",
        "'",
        '"',
        "#",
        "%YAML 1.2\n",
        "---\n",
        "...\n",
        "\t",
        "\n",
        "  ",
        "\x00",
        "\ufeff",
        "\u2028",
        "${X}",
        "${X:-1}",
        "$$",
        "9" * 5000,
        "1e999",
        "-0",
        "0x1F",
        ".nan",
        "~",
        "null",
        "true",
        "2026-13-45",
        "é",
        "😀",
        "\\",
        "sources:",
        "kpis:",
        "formula: ",
        "type: ",
        "name: a",
        "store: ",
        "nope://x",
        "sqlite:///",
        "+ c.value" * 50,
        "((((",
        "enabled: false",
        "every: ",
        "schedule: ",
        "* * * * *",
        "timezone: Mars/Olympus",
    ]
)


@st.composite
def mutated_config(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "repeat line", "swap lines"]))
        if action == "insert":
            text = text[:where] + draw(PIECES | st.text(max_size=8)) + text[where:]
        elif action == "delete":
            text = text[:where] + text[where + draw(st.integers(1, 40)) :]
        else:
            lines = text.splitlines(keepends=True) or [""]
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if action == "repeat line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    raw = text.encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 9)) == 0:  # now and then a damaged byte
        where = draw(st.integers(0, max(len(raw) - 1, 0)))
        raw = raw[:where] + bytes([draw(st.integers(0, 255))]) + raw[where + 1 :]
    return raw


@settings(
    max_examples=500,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=mutated_config())
def test_fuzzed_configs_exit_0_or_2_with_one_line(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = validate(tmp_path, content, capsys)  # an exception here is the traceback
    assert code in (0, 2), err
    if code == 0:
        assert err == ""
    else:
        assert err.startswith("config error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///kpi.db",
        "sqlite:////tmp/a b.db",
        "sqlite:///a@b:c",
        "sqlite:///",
        "sqlite:///\nx",
        "sqlite:///C:\\x.db",
        "sqlite:///:memory:",
        "sqlite:///%zz",
    ],
)
def test_plain_sqlite_urls_pass_as_sqlalchemy_would_pass_them(url: str) -> None:
    """The store check answers a query-less sqlite:/// URL without importing SQLAlchemy;
    SQLAlchemy itself takes each of these (make_url + get_dialect)."""
    import sqlalchemy as sa

    from kpi_collector.config.models import check_store_url

    sa.engine.make_url(url).get_dialect()
    check_store_url(url)


def test_a_plain_sqlite_config_loads_without_sqlalchemy(tmp_path: Path) -> None:
    """Loading a config with a sqlite:/// store leaves SQLAlchemy unimported: the store
    imports it in its own thread while the first requests are out."""
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "sources:\n"
        "  - {name: s, type: html, url: 'http://127.0.0.1:9/', metrics: {n: {css: a, count: true}}}\n"
    )
    code = (
        "import sys; from kpi_collector.config import load_config;"
        f" load_config({str(tmp_path / 'kpi.yaml')!r});"
        " print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
