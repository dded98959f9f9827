"""`make mutate`: mutation testing (mutmut) of the pure core, one module at a time, each run
only against the test files that cover it; a score per module written to benchmarks/MUTATION.md.

    .venv/bin/python scripts/mutate.py                 # every module
    .venv/bin/python scripts/mutate.py periods cron    # some of them
    .venv/bin/python scripts/mutate.py --report        # rewrite the report from the last runs

Each module runs in build/mutate/<name>/ (its own mutmut config and `mutants/` copy), so runs
never touch the work tree; a second run reuses the results of unchanged code. The score is
killed / (mutants - equivalent): `EQUIVALENT` lists the mutants no test can kill, with why.
Not part of `make test` (minutes per module); run it before calling an issue that touches
these modules resolved. Target: >= 85% on each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "mutate"
REPORT = ROOT / "benchmarks" / "MUTATION.md"
MUTMUT = Path(sys.executable).parent / "mutmut"
TARGET = 0.85


@dataclass(frozen=True)
class Module:
    source: str  # the file mutated, under src/
    tests: tuple[str, ...]  # the test files that cover it (the only ones run)
    what: str
    #: only these mutants (fnmatch on mutmut's names, e.g. "*ǁperiod_of__mutmut_*"): the
    #: functions of a bigger file that hold the logic measured; empty = the whole file
    only: tuple[str, ...] = ()


MODULES: dict[str, Module] = {
    "numbers": Module(
        "kpi_collector/collect/numbers.py",
        ("tests/test_numbers_extract.py", "tests/test_numbers_locale.py"),
        "parsing a page's number (units, locales, percentages)",
    ),
    "formula": Module("kpi_collector/config/formula.py", ("tests/test_formula.py",), "formulas"),
    "periods": Module(
        "kpi_collector/store/periods.py", ("tests/test_periods.py",), "day/week/month keys"
    ),
    "alert_rules": Module(
        "kpi_collector/config/alerts.py",
        ("tests/test_alert_config.py", "tests/test_alert_rules.py"),
        "alert rule checks",
    ),
    "alerts_engine": Module(
        "kpi_collector/alerts/engine.py",
        ("tests/test_alert_rules.py", "tests/test_alerts.py"),
        "alert evaluation, states and transitions",
    ),
    "redaction": Module("kpi_collector/secrets.py", ("tests/test_secrets.py",), "redaction"),
    "cron": Module(
        "kpi_collector/config/cron.py",
        ("tests/test_schedule_cron.py", "tests/test_cron_edges.py"),
        "cron",
    ),
    "delivery_periods": Module(
        "kpi_collector/deliver/engine.py",
        ("tests/test_delivery_periods.py",),
        "which period a delivery is for (period_of, delivery_from_result, _delivery)",
        only=("*ǁperiod_of__mutmut_*", "*ǁdelivery_from_result__mutmut_*", "*ǁ_delivery__mutmut_*"),
    ),
}

# Mutants that behave exactly like the original (no test can tell them apart): name -> why.
_C = "kpi_collector.config.cron."
_P = "kpi_collector.store.periods."
_F = "kpi_collector.config.formula."
_S = "kpi_collector.secrets."
_OWN_REMEMBER = "a Secret remembers its value when it is made: remember_values adds nothing"
_DEEP_IS_LONG = (
    "a formula more than 200 levels deep is longer than 60 characters: the short form of "
    "the message is never used"
)
_UNCHECKED = "unreachable: _Checker lets only the nodes handled above reach _eval"
_ALL_OPERATORS = "every ast operator is in _BINARY, _UNARY or _OPERATOR_NAMES: no fallback"
_N = "kpi_collector.collect.numbers."
_GROUP_SIZES = (
    "CLDR group sizes (Babel) are 2, 3, or 1000 for none, the secondary 1000 only with the "
    "primary 1000: the bounds 0/1 and 100/101 and the secondary test read them alike"
)
_SCALE_POWER = (
    "every CLDR compact form gives a power of ten above 1 (checked over every Babel locale): "
    "a scale of 1 or 2 never occurs"
)
_UTC_HOST = "astimezone(None) is the machine's zone; on a UTC machine (CI, here) it is UTC"
EQUIVALENT: dict[str, str] = {
    _C + "x__fields__mutmut_3": "MACROS.get(expr.lower(), expr) returns expr for any text "
    "that is no macro, so calling it for every expression changes nothing",
    _C + "xǁCronǁ__init____mutmut_18": "APScheduler reads the day-of-month `LAST` as `last`",
    _C + "xǁCronǁ__init____mutmut_37": "seven days written out (sun,...,sat) is every day, as *",
    _C + "xǁCronǁ__init____mutmut_41": "len(days) is at most 7: `== 8` only drops the * "
    "shorthand for the same seven days",
    _C + "xǁCronǁnext_after__mutmut_4": _UTC_HOST,
    _C + "xǁCronǁnext_after__mutmut_19": _UTC_HOST,
    _C + "xǁCronǁnext_after__mutmut_30": _UTC_HOST,
    _C + "xǁCronǁprevious__mutmut_11": _UTC_HOST,
    _C + "xǁCronǁnext_after__mutmut_21": "aware datetimes compare by instant, as their "
    "timestamps do",
    _C + "xǁCronǁnext_after__mutmut_23": "aware datetimes compare by instant, as their "
    "timestamps do",
    _C + "xǁCronǁprevious__mutmut_3": "the first look-back span only sets how many doublings "
    "find the previous time, not which time is found",
    _C + "xǁCronǁprevious__mutmut_25": "tripling instead of doubling the span finds the same "
    "previous time (the inner loop walks forward to the last one)",
    _C + "xǁCronǁprevious__mutmut_4": "the limit (8 years) is never reached exactly by 2 min "
    "doubled: < and <= stop at the same step",
    _C + "x__weekdays__mutmut_11": "`*` with 0-7 adds day 7 = Sunday (d % 7), already there",
    _P + "x_next_period__mutmut_21": "the 28th plus 5 days is in the next month as plus 4 "
    "is (the 2nd-5th), and replace(day=1) gives the same first day",
    _P + "x_bucket__mutmut_1": "the first row opens a period anyway (its ts is >= -inf); "
    "`start` is only read after that",
    _P + "x_bucket__mutmut_5": 'float("-INF") is float("-inf")',
    _P + "x_bucket__mutmut_6": "None and [] are both falsy at the first row, which sets "
    "values = [] before appending",
    _P + "x_bucket__mutmut_10": "values is empty only before the first row, when start is "
    "None too: `and` and `or` agree",
    _P + "x_bucket__mutmut_37": "after the loop, values is empty only when there were no rows, "
    "when start is None too",
    _F + "x__too_deep__mutmut_2": _DEEP_IS_LONG,
    _F + "x__too_deep__mutmut_4": _DEEP_IS_LONG,
    _F + "x__too_deep__mutmut_5": _DEEP_IS_LONG,
    _F + "x__depth__mutmut_2": "a tree has at least its root, at depth 1: the maximum is >= 1",
    _F + "xǁFormulaǁ_eval__mutmut_27": _UNCHECKED,
    _F + "xǁFormulaǁ_eval__mutmut_49": _UNCHECKED,
    _F + "xǁFormulaǁ_eval__mutmut_50": _UNCHECKED,
    _F + "xǁ_Checkerǁunsupported_operator__mutmut_3": _ALL_OPERATORS,
    _F + "xǁ_Checkerǁunsupported_operator__mutmut_5": _ALL_OPERATORS,
    _F + "xǁ_Checkerǁunsupported_operator__mutmut_7": _ALL_OPERATORS,
    _F + "x_order_formulas__mutmut_15": "only close[0], the best match, is used: asking for "
    "3 (the default) or 2 matches gives the same first one",
    _F + "x_order_formulas__mutmut_17": "only close[0], the best match, is used",
    **{
        _F + f"xǁFormulaǁevaluate__mutmut_{n}": "KpiError.transient is False unless a "
        "transient is given: passing None or nothing leaves it False"
        for n in (9, 11, 20, 22, 25, 27, 32, 34)
    },
    _S + "x_remember_values__mutmut_2": _OWN_REMEMBER,
    **{
        _S + f"x_remember_values__mutmut_{n}": "true/false are shorter than 8: a literal one is "
        "left shown by the length rule, a Secret one was remembered by its constructor"
        for n in (7, 9, 10, 11, 12)
    },
    **{
        _S + f"x_encodings__mutmut_{n}": "letters are always safe for quote(): adding X to "
        "`safe` changes no form"
        for n in (6, 11, 16, 21)
    },
    _S + "x_encodings__mutmut_10": 'quote_plus\'s default `safe` is "" already',
    _C + "x__second_copy__mutmut_1": "astimezone() gives fold=1 only in the second copy of a "
    "repeated hour, where the offsets differ: `or` and `and` agree on every time it sees",
    **{_N + f"x_groupings__mutmut_{n}": _GROUP_SIZES for n in (7, 8, 9, 10, 13, 14, 15, 16, 17)},
    _N + "x_affixes_and_scales__mutmut_14": "CLDR compact keys are powers of ten: `/` and `//` "
    "give the same power of ten, or both a scale <= 1 that is skipped",
    _N + "x_affixes_and_scales__mutmut_20": _SCALE_POWER,
    _N + "x_affixes_and_scales__mutmut_21": _SCALE_POWER,
    _N + "x_affixes_and_scales__mutmut_22": _SCALE_POWER,
    _N + "x_affixes_and_scales__mutmut_23": "no CLDR compact pattern has a negative suffix that "
    "differs from the positive one (checked over every Babel locale)",
    _N + "x_affixes_and_scales__mutmut_27": "every non-empty CLDR compact affix has a letter, "
    "and an empty one is falsy either way",
    _N + "x_number_spans__mutmut_12": "the end sentinel origin[len] is never read: a span's "
    "end is looked up at m.end() - 1",
    _N + "x__value__mutmut_3": "a token starts with a digit or one of . , \u066b (_TOKEN): "
    "never with X",
    _N + "x__value__mutmut_23": "len(own) == 1 returned just above: `>= 1` is `> 1` here",
    **{
        _N + f"x__value__mutmut_{n}": "unreachable: no CLDR locale uses a sign as both decimal "
        "and group, so its own conventions never read one token as two numbers"
        for n in range(24, 33)
    },
    _N + "xǁ_Normalǁ__missing____mutmut_20": "str.translate deletes a character mapped to None "
    'or to ""',
    **{
        _N + f"x__negative__mutmut_{n}": "where this changes the currency found, no sign "
        "precedes it either way (the scan only passes non-signs): the same `sign` is found"
        for n in (8, 28)
    },
    _N + "x__affix_pattern__mutmut_30": "east_asian_width is F, H, W, Na, A or N: of these only "
    'W and F are in "XXWFXX", as in "WF"',
    _N + "x__lookup__mutmut_13": "no two scale words of a CLDR locale differ only by spaces "
    "(checked over every Babel locale): the spaced key found has the key's value",
    _N + "x__lookup__mutmut_19": 'no scale word is "" or "XXXX": both look-ups find nothing',
    _N + "x__scale__mutmut_14": "a scale word with a space matches case-sensitively, so the "
    "text is its own key in scales: _lookup finds it with or without the space",
}

_LINE = re.compile(r"^\s*(kpi_collector\.\S+__mutmut_\d+): ([\w ]+)$")


def _config(module: Module) -> str:
    pyproject = (ROOT / "pyproject.toml").read_text()
    pytest_section = pyproject.split("[tool.pytest.ini_options]", 1)[1].split("\n[", 1)[0]
    pytest_section = pytest_section.replace('testpaths = ["tests"]\n', "")
    return (
        "[tool.mutmut]\n"
        f'only_mutate = ["src/{module.source}"]\n'
        'source_paths = ["src"]\n'
        f"pytest_add_cli_args_test_selection = {json.dumps(list(module.tests))}\n"
        'also_copy = ["tests", "scripts"]\n'
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        "\n[tool.pytest.ini_options]" + pytest_section
    )


def run(name: str, module: Module, children: int) -> dict[str, str]:
    folder = BUILD / name
    folder.mkdir(parents=True, exist_ok=True)
    for link in ("src", "tests", "scripts"):
        if not (folder / link).exists():
            (folder / link).symlink_to(ROOT / link)
    config = _config(module)
    if (folder / "pyproject.toml").exists() and (folder / "pyproject.toml").read_text() != config:
        shutil.rmtree(folder / "mutants", ignore_errors=True)
    (folder / "pyproject.toml").write_text(config)
    # the tests may have changed since the last run: copy them afresh
    shutil.rmtree(folder / "mutants" / "tests", ignore_errors=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    log = (folder / "run.log").open("w")
    done = subprocess.run(
        [str(MUTMUT), "run", "--max-children", str(children), *module.only],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if done.returncode:
        print(f"  mutmut failed for {name}: see {folder / 'run.log'}", file=sys.stderr)
    return results(name)


def results(name: str) -> dict[str, str]:
    folder = BUILD / name
    if not (folder / "mutants").exists():
        return {}
    done = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=folder,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = {}
    only = MODULES[name].only
    for line in done.stdout.splitlines():
        match = _LINE.match(line)
        if match and (not only or any(fnmatch(match.group(1), p) for p in only)):
            found[match.group(1)] = match.group(2).strip()
    return found


def score(found: dict[str, str]) -> tuple[int, int, int, list[str]]:
    """(killed, counted, equivalent, survivors): timeouts and segfaults count as killed."""
    equivalent = [m for m in found if m in EQUIVALENT]
    counted = [m for m in found if m not in EQUIVALENT]
    killed = [m for m in counted if found[m] in ("killed", "timeout", "segfault")]
    survivors = sorted(m for m in counted if m not in killed)
    return len(killed), len(counted), len(equivalent), survivors


def _kept(name: str, old: str) -> tuple[str | None, list[str]]:
    """`name`'s row and survivor lines in the report `old`: a module with no run in this
    build/mutate/ (another checkout ran it) keeps what the last report said of it."""
    prefix = MODULES[name].source.removesuffix(".py").replace("/", ".") + "."
    row = next((ln for ln in old.splitlines() if ln.startswith(f"| {name} | ")), None)
    survivors = [ln for ln in old.splitlines() if ln.startswith(f"- `{prefix}")]
    return row, survivors


def report(all_found: dict[str, dict[str, str]], old: str = "") -> str:
    lines = [
        "# Mutation scores",
        "",
        "`make mutate` (scripts/mutate.py, mutmut): each module mutated alone and run against",
        "the test files that cover it. Score = killed / (mutants - equivalent), where timeouts",
        "count as killed and mutants not checked (a run cut short) as alive. Target >= 85%.",
        f"Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the runs in build/mutate/ (2 shared"
        " cores; `.venv/bin/python scripts/mutate.py MODULE` reruns one module).",
        "",
        "| module | file | tests run | mutants | equivalent | killed | score |",
        "|---|---|---|---|---|---|---|",
    ]
    survivors_all: list[str] = []
    for name in MODULES:
        if name not in all_found:
            row, kept = _kept(name, old)
            if row is not None:
                lines.append(row)
                survivors_all += kept
            continue
        found = all_found[name]
        module = MODULES[name]
        killed, counted, equivalent, survivors = score(found)
        pct = f"{100 * killed / counted:.1f}%" if counted else "n/a"
        tests = ", ".join(t.removeprefix("tests/") for t in module.tests)
        lines.append(
            f"| {name} | `{module.source}` | {tests} | {counted + equivalent} | {equivalent} "
            f"| {killed} | {pct} |"
        )
        survivors_all += [f"- `{m}` ({found[m]})" for m in survivors]
    lines += ["", "## Equivalent mutants", ""]
    lines += [f"- `{m}`: {why}" for m, why in sorted(EQUIVALENT.items())] or ["(none)"]
    lines += ["", "## Survivors", "", "`mutmut show NAME` in build/mutate/MODULE shows one.", ""]
    lines += survivors_all or ["(none)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    only_report = "--report" in argv
    names = [a for a in argv if not a.startswith("--")] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}", file=sys.stderr)
        return 2
    children = int(os.environ.get("MUTATE_CHILDREN", "2"))
    for name in names:
        if not only_report:
            print(f"mutating {name} ({MODULES[name].source})", flush=True)
            run(name, MODULES[name], children)
    all_found = {n: results(n) for n in MODULES if (BUILD / n / "mutants").exists()}
    REPORT.write_text(report(all_found, REPORT.read_text() if REPORT.exists() else ""))
    print(REPORT.read_text())
    low = [n for n, f in all_found.items() if score(f)[1] and score(f)[0] / score(f)[1] < TARGET]
    return 1 if low else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
