"""`type: command`: a program whose stdout is a number or a JSON object of numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kpi_collector.sources import Command
from tests.fakes.collect import run


def test_command_source(tmp_path: Path) -> None:
    result = run(
        Command(name="n", command=[sys.executable, "-c", "print('12,374')"]),
        Command(name="j", command=[sys.executable, "-c", 'print(\'{"a": 1, "b": "2.5k"}\')']),
        Command(name="f", command=[sys.executable, "-c", "import sys; sys.exit('no data today')"]),
    )
    assert result.values == {"n.value": 12374, "j.a": 1, "j.b": 2500}
    assert "exited with 1: no data today" in result.errors["f"]


def test_numbers_on_separate_lines_are_never_read_as_one() -> None:
    """A program's output is lines, not HTML: `12` and `374` printed on two lines (or in a
    JSON string) are two numbers, an error, never 12374; a line of text before the one
    number is fine."""
    result = run(
        Command(name="two", command=[sys.executable, "-c", "print(12); print(374)"]),
        Command(name="crlf", command=[sys.executable, "-c", "print('12\\r\\n374', end='')"]),
        Command(name="log", command=[sys.executable, "-c", "print('Loading...'); print('1,234')"]),
        Command(name="j", command=[sys.executable, "-c", 'print(\'{"a": "12\\\\n374", "b": 5}\')']),
    )
    assert result.values == {"log.value": 1234, "j.b": 5}
    assert "more than one number" in result.errors["two"]
    assert "more than one number" in result.errors["crlf"]
    assert "more than one number" in result.errors["j.a"]


def test_a_failing_program_is_a_short_one_line_error() -> None:
    """The last line of stderr is cut to a readable length; a program killed by a signal
    says which (not `exited with -9`)."""
    result = run(
        Command(name="long", command=["sh", "-c", "printf 'x%.0s' $(seq 1 3000) >&2; exit 1"]),
        Command(
            name="killed", command=[sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"]
        ),
    )
    assert result.errors["long"].startswith("'sh' exited with 1: xxx")
    assert len(result.errors["long"]) <= 300
    assert "killed by signal SIGKILL" in result.errors["killed"]


HELD_IMPORT = """
import asyncio, importlib.abc, importlib.util, sys, threading
from pathlib import Path
from kpi_collector.sources import Command
from tests.fakes.collect import run

# a first program, as any run may have started before
print(run(Command(name="first", command=[sys.executable, "-c", "print(1)"])).values)
# another thread of the run is importing a module when the program is forked (here
# ctypes, which the SQL drivers load, held mid-import until the run is over): the forked
# child must import nothing, or it waits for ever for a thread it does not have
sys.modules.pop("ctypes", None)
started, finish = threading.Event(), threading.Event()

class Slow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "ctypes" and threading.current_thread() is not threading.main_thread():
            return importlib.util.spec_from_loader(name, self)
        return None

    def exec_module(self, module):  # runs holding the module's import lock
        started.set()
        finish.wait()

sys.meta_path.insert(0, Slow())
importer = threading.Thread(target=lambda: __import__("ctypes"), daemon=True)
importer.start()
started.wait()
result = run(Command(name="n", command=[sys.executable, "-c", "print(7)"]))
finish.set()
print(result.values, result.errors)
"""


def test_a_program_starts_while_another_thread_is_importing() -> None:
    """The run was forked from while a thread imported a module (a SQL source loading its
    driver): the child imported ctypes to ask for PR_SET_PDEATHSIG and waited for ever on
    that module's lock, and so did the whole run."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", HELD_IMPORT],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,  # a guard against the hang, not a measure
    )
    assert done.returncode == 0, done.stderr
    assert "{'n.value': 7.0} {}" in done.stdout


def test_json_output_after_a_byte_order_mark_is_read_as_json() -> None:
    """A program on Windows-minded tooling prints a UTF-8 BOM first: `{"a": 1, "b": 2}` was
    then read as text, `more than one number`, and `{"a": 5}` stored as `value`."""
    bom = "import sys; sys.stdout.buffer.write(b'\\xef\\xbb\\xbf' + sys.argv[1].encode())"
    result = run(
        Command(name="one", command=[sys.executable, "-c", bom, '{"a": 5}']),
        Command(name="two", command=[sys.executable, "-c", bom, '{"a": 1, "b": 2}']),
        Command(name="plain", command=[sys.executable, "-c", bom, "42"]),
    )
    assert result.values == {"one.a": 5, "two.a": 1, "two.b": 2, "plain.value": 42}


def test_a_metric_missing_from_the_output_names_the_output() -> None:
    result = run(
        Command(
            name="j",
            command=[sys.executable, "-c", "print('{\"a\": 1}')"],
            metrics={"a": {}, "b": {"expect": {"min": 0}}},
        )
    )
    assert result.values == {"j.a": 1}
    assert result.errors["j.b"] == "b: the program's JSON output lacks it"


def test_json_output_with_a_key_twice_is_an_error_never_one_of_them() -> None:
    """`{"users": 5, "users": 7}` stored 7 (Python's reader keeps the last), though the
    program may have meant either: now an error naming the key, at any depth of the
    object read and whatever its escapes (`"us\\u0065rs"` is `users` too)."""
    printed = "import sys; print(sys.argv[1])"
    result = run(
        Command(name="top", command=[sys.executable, "-c", printed, '{"users": 5, "users": 7}']),
        Command(
            name="escaped",
            command=[sys.executable, "-c", printed, '{"users": 5, "us\\u0065rs": 7, "b": 1}'],
        ),
        Command(
            name="nested",
            command=[sys.executable, "-c", printed, '{"a": 1, "b": {"x": 1, "x": 2}}'],
        ),
        Command(name="fine", command=[sys.executable, "-c", printed, '{"a": 1, "b": {"a": 2}}']),
    )
    assert result.values == {"fine.a": 1}
    assert "'users' appears twice" in result.errors["top"]
    assert "'users' appears twice" in result.errors["escaped"]
    assert "'x' appears twice" in result.errors["nested"]
    assert "fine.b" in result.errors


def test_secrets_in_the_arguments_are_masked_where_the_program_echoes_them() -> None:
    """A program told a password, a token or a URL with credentials in its arguments often
    repeats them when it fails (`invalid token abc...`, `cannot connect to
    postgresql://kpi:pw@db`): only `env:` values were masked, so the last line of its
    stderr put the secret into the error, the log and the store."""
    echo = "import sys; sys.exit('rejected: ' + ' '.join(sys.argv[1:]))"
    secrets = [
        "tok-3f9a1c77e2",
        "pw-hunter-2b",
        "Zx81ab99qq",
        "s3cr3t-pass",
        "k3y-q-77aa11",
        "bearer-99ffee11",
    ]
    result = run(
        Command(name="flag", command=[sys.executable, "-c", echo, "--token", secrets[0]]),
        Command(name="equals", command=[sys.executable, "-c", echo, f"--password={secrets[1]}"]),
        Command(name="api_key", command=[sys.executable, "-c", echo, "--api-key", secrets[2]]),
        Command(
            name="url",
            command=[sys.executable, "-c", echo, f"postgresql://kpi:{secrets[3]}@db.local/app"],
        ),
        Command(
            name="query",
            command=[sys.executable, "-c", echo, f"https://api.local/stats?api_key={secrets[4]}"],
        ),
        Command(
            name="header",
            command=[sys.executable, "-c", echo, "-H", f"Authorization: Bearer {secrets[5]}"],
        ),
        Command(name="plain", command=[sys.executable, "-c", echo, "--format", "json-lines"]),
    )
    text = " ".join(result.errors.values())
    for secret in secrets:
        assert secret not in text
    assert "rejected: --token ***" in result.errors["flag"]
    assert "rejected: --format json-lines" in result.errors["plain"]  # no secret, shown


def test_output_that_is_not_utf8_is_an_error_never_a_number_without_its_sign() -> None:
    """Bytes that are not UTF-8 were replaced by U+FFFD and the number beside them read:
    `\\x9612` (an en dash as minus, cp1252) stored 12 for -12, `12\\xb2` (12², cp1252) 12.
    Now output that is not UTF-8 is an error saying where and how to fix it; stderr is
    still read as far as it goes, for the error of a failing program."""
    write = "import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))"
    cases = {
        "dash": b"\x9612",
        "squared": b"12\xb2",
        "json": b'{"a": "\x965"}',
        "tail": b"42\n\xff",
    }
    result = run(
        *(
            Command(name=k, command=[sys.executable, "-c", write, v.hex()])
            for k, v in cases.items()
        ),
        Command(name="utf8", command=[sys.executable, "-c", write, "\u221212".encode().hex()]),
        Command(
            name="fails",
            command=[
                sys.executable,
                "-c",
                "import sys; sys.stderr.buffer.write(b'bad \\xff'); sys.exit(2)",
            ],
        ),
    )
    assert result.values == {"utf8.value": -12}
    for name in cases:
        assert "not UTF-8" in result.errors[name], name
    assert "byte 0x96 at offset 0" in result.errors["dash"]
    assert "LC_ALL" in result.errors["squared"]
    assert result.errors["fails"].startswith("'")
    assert "exited with 2: bad" in result.errors["fails"]


def test_a_program_that_prints_nothing_says_so_with_its_stderr() -> None:
    """A program that exits 0 having printed nothing (its query found no file, it wrote to
    stderr instead) failed with `value: the text is empty`, which names neither the
    program nor what it said. Now the error says it printed nothing, with the last line
    of its stderr, secrets masked."""
    result = run(
        Command(name="silent", command=[sys.executable, "-c", "pass"]),
        Command(
            name="warned",
            command=[
                sys.executable,
                "-c",
                "import sys; print('no rows for today', file=sys.stderr)",
            ],
        ),
        Command(name="blank", command=[sys.executable, "-c", "print('  ')"]),
    )
    assert result.values == {}
    assert "printed nothing" in result.errors["silent"]
    assert result.errors["warned"].endswith(
        "printed nothing on stdout; its stderr: no rows for today"
    )
    assert "printed nothing" in result.errors["blank"]


def test_coloured_output_is_read_as_a_terminal_shows_it() -> None:
    """A program that colours its output even into a pipe (`--color=always`, `jq -C`) made
    `ESC[32m1,234ESC[0m` "more than one number" (the 32 and 0 of the escape codes) and a
    coloured JSON object invalid JSON. Its escape sequences are now dropped first, as a
    terminal shows the text; digits outside an escape sequence still count."""
    green = "print('\\x1b[32m1,234\\x1b[0m')"
    json_c = (
        'print(\'\\x1b]0;title\\x07{\\x1b[1;39m"users"\\x1b[0m: \\x1b[0;32m42\\x1b[0m, "ok": 1}\')'
    )
    result = run(
        Command(name="green", command=[sys.executable, "-c", green]),
        Command(name="jq", command=[sys.executable, "-c", json_c]),
        Command(name="two", command=[sys.executable, "-c", "print('\\x1b[1m12\\x1b[0m and 374')"]),
    )
    assert result.values == {"green.value": 1234, "jq.users": 42, "jq.ok": 1}
    assert "more than one number in '12 and 374'" in result.errors["two"]
