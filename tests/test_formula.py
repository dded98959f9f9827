"""Derived KPI formulas: parsing, the allowed grammar, evaluation and dependency order."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpi_collector.config.formula import (
    Formula,
    FormulaDependencyError,
    FormulaError,
    FormulaEvaluationError,
    FormulaSyntaxError,
    evaluate_formulas,
    order_formulas,
)
from kpi_collector.errors import ConfigError, KpiError


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("revenue.mrr * 12", {"revenue.mrr": 1250.5}, 15006.0),
        ("a.x + b.y * 2", {"a.x": 1, "b.y": 3}, 7.0),
        ("(a.x + b.y) * 2", {"a.x": 1, "b.y": 3}, 8.0),
        ("a.x - b.y - 1", {"a.x": 10, "b.y": 3}, 6.0),
        ("a.x / b.y", {"a.x": 1, "b.y": 4}, 0.25),
        ("-a.x", {"a.x": 5}, -5.0),
        ("--a.x", {"a.x": 5}, 5.0),
        ("+a.x", {"a.x": 5}, 5.0),
        ("2 * -a.x", {"a.x": 5}, -10.0),
        ("1e3 + .5", {}, 1000.5),
        ("min(a.x, b.y, 7)", {"a.x": 9, "b.y": 8}, 7.0),
        ("max(a.x)", {"a.x": 9}, 9.0),
        ("abs(a.x - b.y)", {"a.x": 2, "b.y": 9}, 7.0),
        ("round(a.x)", {"a.x": 2.5}, 3.0),
        ("round(a.x / 3, 2)", {"a.x": 1}, 0.33),
        ("round(a.x, -2)", {"a.x": 1234}, 1200.0),
        ("pypi.downloads_last_day / 7", {"pypi.downloads_last_day": 70}, 10.0),
        ("tele_metry2.wau_v2 + 1", {"tele_metry2.wau_v2": 1}, 2.0),
        ("app.7d + app.class", {"app.7d": 1, "app.class": 2}, 3.0),
        ("`my-app.sign ups` * 2", {"my-app.sign ups": 4}, 8.0),
        ("a.b.c + 1", {"a.b.c": 1}, 2.0),
        ("total + 1", {"total": 1}, 2.0),
        ("a.x * a.x", {"a.x": 3}, 9.0),
    ],
)
def test_evaluates(text: str, values: dict[str, float], expected: float) -> None:
    result = Formula.parse(text).evaluate(values)
    assert isinstance(result, float)
    assert result == pytest.approx(expected)


def test_inputs_are_whole_kpi_ids() -> None:
    formula = Formula.parse("min(github.stars, `my-app.x`) / (pypi.downloads_last_day + 1) - c")
    assert formula.inputs == {"github.stars", "my-app.x", "pypi.downloads_last_day", "c"}
    assert Formula.parse("1 + 2").inputs == frozenset()
    assert str(formula) == formula.text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("a.x +", "not valid"),
        ("(a.x", "not valid"),
        ("a.x ** 2", "operator **"),
        ("a.x % 2", "operator %"),
        ("a.x // 2", "operator //"),
        ("~a.x", "operator ~"),
        ("not a.x", "operator not"),
        ("a.x < 2", "comparisons"),
        ("a.x and b.y", "and/or"),
        ("a.x if b.y else 1", "if/else"),
        ("lambda: 1", "lambda"),
        ("a.x[0]", "indexing"),
        ("[a.x]", "lists"),
        ("'text'", "not a number"),
        ("True", "not a number"),
        ("1j", "not a number"),
        ("__import__('os').system('true')", "'__'"),
        ("().__class__", "'__'"),
        ("open('x')", "open() cannot be called"),
        ("eval('1')", "eval() cannot be called"),
        ("a.x.bit_length()", "a.x.bit_length() cannot be called"),
        ("(a.x).real", "'.' is only allowed inside a KPI id"),
        ("min", "is a function"),
        ("min()", "at least 1"),
        ("abs(1, 2)", "takes 1 argument"),
        ("round(1, 2, 3)", "takes 1 to 2"),
        ("round(a.x, b.y)", "whole number of digits"),
        ("round(a.x, 1.5)", "whole number of digits"),
        ("max(a.x, key=abs)", "positional arguments only"),
        ("max(*a.x)", "positional arguments only"),
        ("`a.x", "unmatched backtick"),
        ("`` + 1", "empty"),
        ("a.x; b.y", "not valid"),
    ],
)
def test_rejects_with_a_clear_message(text: str, fragment: str) -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        Formula.parse(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_syntax_errors_are_config_errors_and_value_errors() -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        Formula.parse("a.x ** 2")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, KpiError)


def test_missing_input_names_it() -> None:
    formula = Formula.parse("a.x + b.y + c.z")
    with pytest.raises(FormulaEvaluationError, match=r"no value for b\.y, c\.z"):
        formula.evaluate({"a.x": 1})
    with pytest.raises(FormulaEvaluationError, match=r"no value for a\.x"):
        formula.evaluate({"a.x": None, "b.y": 1, "c.z": 1})  # type: ignore[dict-item]


def test_division_by_zero_is_an_evaluation_error() -> None:
    formula = Formula.parse("a.x / (b.y - 1)")
    with pytest.raises(FormulaEvaluationError, match="division by zero") as info:
        formula.evaluate({"a.x": 1, "b.y": 1})
    assert not isinstance(info.value, ConfigError)
    assert formula.evaluate({"a.x": 1, "b.y": 3}) == 0.5
    # 0 / 0 too (decimal calls it DivisionUndefined, not DivisionByZero: it escaped as
    # InvalidOperation and failed the whole backfill of a ratio over days without users)
    with pytest.raises(FormulaEvaluationError, match="division by zero"):
        formula.evaluate({"a.x": 0, "b.y": 1})


def test_non_finite_inputs_and_results_are_errors() -> None:
    with pytest.raises(FormulaEvaluationError, match=r"input a\.x is not a finite number \(nan\)"):
        Formula.parse("a.x * 2").evaluate({"a.x": math.nan})
    with pytest.raises(FormulaEvaluationError, match=r"input a\.x is not a finite number \(inf\)"):
        Formula.parse("min(a.x, 1)").evaluate({"a.x": math.inf})
    with pytest.raises(FormulaEvaluationError, match="too large"):
        Formula.parse("a.x * a.x").evaluate({"a.x": 1e200})


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        # halves away from zero, as spreadsheets round (ROUND in Excel, Sheets, LibreOffice)
        ("round(a.x)", {"a.x": 0.5}, 1.0),
        ("round(a.x)", {"a.x": 1.5}, 2.0),
        ("round(a.x)", {"a.x": 2.5}, 3.0),
        ("round(a.x)", {"a.x": -2.5}, -3.0),
        ("round(a.x)", {"a.x": -0.4}, 0.0),
        ("round(a.x, 1)", {"a.x": 0.25}, 0.3),
        ("round(a.x, 1)", {"a.x": 0.35}, 0.4),
        ("round(a.x, -1)", {"a.x": 25}, 30.0),
        ("round(a.x, -2)", {"a.x": 1250}, 1300.0),
        ("round(a.x, -2)", {"a.x": -1250}, -1300.0),
        # the number as written, not the float below it (2.675 is 2.67499999… as a float)
        ("round(a.x, 2)", {"a.x": 2.675}, 2.68),
        ("round(a.x, 2)", {"a.x": 1.005}, 1.01),
        ("round(a.x, 1)", {"a.x": 0.15}, 0.2),
        ("round(a.x * 100, 1)", {"a.x": 0.12345}, 12.3),
        ("round(a.x / b.y * 100, 1)", {"a.x": 1, "b.y": 8}, 12.5),
        ("round(a.x / b.y * 100, 0)", {"a.x": 1, "b.y": 8}, 13.0),
        ("round(a.x, 3)", {"a.x": 5.0}, 5.0),
        ("round(a.x)", {"a.x": 1e20}, 1e20),
    ],
)
def test_round_takes_halves_away_from_zero_on_the_decimal_value(
    text: str, values: dict[str, float], expected: float
) -> None:
    assert Formula.parse(text).evaluate(values) == expected


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a.x + b.y", {"a.x": 0.1, "b.y": 0.2}, 0.3),
        ("a.x * 3", {"a.x": 0.1}, 0.3),
        ("a.x - b.y", {"a.x": 1.1, "b.y": 1}, 0.1),
        ("a.x * 100", {"a.x": 1.15}, 115.0),
        ("a.x * 12", {"a.x": 19.99}, 239.88),
        ("(a.x - b.y) / b.y * 100", {"a.x": 1.1, "b.y": 1.0}, 10.0),
    ],
)
def test_arithmetic_is_on_the_decimal_values(
    text: str, values: dict[str, float], expected: float
) -> None:
    """Inputs are the numbers the sources wrote (0.1, not the binary float near it), as a
    spreadsheet shows them: 0.1 + 0.2 is 0.3, where float arithmetic stores
    0.30000000000000004."""
    assert Formula.parse(text).evaluate(values) == expected


@given(
    a=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    b=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    c=st.integers(min_value=-1000, max_value=1000),
)
def test_matches_python_arithmetic(a: float, b: float, c: int) -> None:
    formula = Formula.parse("max(x.a, x.b) - min(x.a, 3) * abs(x.c) + (x.a + x.b) / 4")
    expected = max(a, b) - min(a, 3) * abs(c) + (a + b) / 4
    assert formula.evaluate({"x.a": a, "x.b": b, "x.c": c}) == pytest.approx(expected)


def test_order_puts_dependencies_first() -> None:
    formulas = {
        "r.arr_eur": Formula.parse("r.arr * 0.9"),
        "r.arr": Formula.parse("r.mrr * 12"),
        "r.ratio": Formula.parse("r.arr_eur / r.arr"),
    }
    order = order_formulas(formulas, {"r.mrr"})
    assert sorted(order) == sorted(formulas)
    assert order.index("r.arr") < order.index("r.arr_eur") < order.index("r.ratio")
    # Callers may list the formula ids among the known ids too.
    assert order_formulas(formulas, {"r.mrr", *formulas}) == order


def test_order_rejects_unknown_ids_with_a_hint() -> None:
    formulas = {"r.arr": Formula.parse("r.mrrr * 12")}
    with pytest.raises(FormulaDependencyError) as info:
        order_formulas(formulas, {"r.mrr", "github.stars"})
    message = str(info.value)
    assert "r.arr" in message
    assert "r.mrrr" in message
    assert "did you mean r.mrr?" in message
    assert isinstance(info.value, ConfigError)


def test_order_names_the_cycle() -> None:
    formulas = {
        "a.one": Formula.parse("b.two + 1"),
        "b.two": Formula.parse("c.three * 2"),
        "c.three": Formula.parse("a.one - x.base"),
        "d.free": Formula.parse("x.base"),
    }
    with pytest.raises(
        FormulaDependencyError, match=r"cycle: a\.one -> b\.two -> c\.three -> a\.one"
    ):
        order_formulas(formulas, {"x.base"})


def test_self_reference_is_a_cycle() -> None:
    with pytest.raises(FormulaDependencyError, match=r"cycle: a\.x -> a\.x"):
        order_formulas({"a.x": Formula.parse("a.x + 1")}, set())


def test_evaluate_formulas_isolates_failures() -> None:
    formulas = {
        "r.arr": Formula.parse("r.mrr * 12"),
        "r.per_customer": Formula.parse("r.mrr / r.customers"),
        "r.per_customer_year": Formula.parse("r.per_customer * 12"),
        "g.double": Formula.parse("g.stars * 2"),
    }
    computed, errors = evaluate_formulas(formulas, {"r.mrr": 100.0, "r.customers": 0.0})
    assert computed == {"r.arr": 1200.0}
    assert set(errors) == {"r.per_customer", "r.per_customer_year", "g.double"}
    assert "division by zero" in str(errors["r.per_customer"])
    assert "r.per_customer failed" in str(errors["r.per_customer_year"])
    assert "no value for g.stars" in str(errors["g.double"])
    assert all(isinstance(e, FormulaError) for e in errors.values())


# --- overflow and cycles, by hand (issue 21) ---------------------------------------------------


def test_an_overflow_fails_that_kpi_and_its_dependents_only() -> None:
    """1e308 * 10 is inf in floating point; round(inf) raises OverflowError: that formula
    fails with a clear message, the formula using it fails, the unrelated one is computed."""
    formulas = {
        "f.big": Formula.parse("round(a.x * 10)"),
        "f.after": Formula.parse("f.big + 1"),
        "f.half": Formula.parse("a.x / 2"),
    }
    computed, errors = evaluate_formulas(formulas, {"a.x": 1e308})
    assert computed == {"f.half": 5e307}
    assert sorted(errors) == ["f.after", "f.big"]
    assert str(errors["f.big"]) == "formula 'round(a.x * 10)': the result is too large"
    assert str(errors["f.after"]) == "formula 'f.big + 1': its input f.big failed"
    assert isinstance(errors["f.big"], FormulaEvaluationError)


def test_an_infinite_result_is_not_stored() -> None:
    with pytest.raises(FormulaEvaluationError, match=r"the result is too large$"):
        Formula.parse("a.x * 10").evaluate({"a.x": 1e308})


def test_a_diamond_is_no_cycle() -> None:
    """d uses b and c, both use a: a is visited twice, once done; the order puts each formula
    after its inputs (checked by hand: a, then b and c, then d)."""
    formulas = {
        "f.d": Formula.parse("f.b + f.c"),
        "f.b": Formula.parse("f.a * 2"),
        "f.c": Formula.parse("f.a * 3"),
        "f.a": Formula.parse("s.x + 1"),
    }
    assert order_formulas(formulas, ["s.x"]) == ["f.a", "f.b", "f.c", "f.d"]
    computed, errors = evaluate_formulas(formulas, {"s.x": 1.0})
    assert errors == {}
    assert computed == {"f.a": 2.0, "f.b": 4.0, "f.c": 6.0, "f.d": 10.0}


def test_a_cycle_behind_a_formula_outside_it() -> None:
    formulas = {
        "f.out": Formula.parse("f.p + 1"),
        "f.p": Formula.parse("f.q + 1"),
        "f.q": Formula.parse("f.p - 1"),
    }
    with pytest.raises(FormulaDependencyError, match=r"cycle: f\.p -> f\.q -> f\.p$"):
        order_formulas(formulas, [])
    with pytest.raises(FormulaDependencyError):
        evaluate_formulas(formulas, {})


# --- exact limits and messages (killing the mutants `make mutate` showed alive) ---------------


def test_the_length_limit_is_5000_characters() -> None:
    at_limit = "a.x" + " " * (5000 - len("a.x + 1")) + " + 1"
    assert len(at_limit) == 5000
    assert Formula.parse(at_limit).evaluate({"a.x": 1.0}) == 2.0
    with pytest.raises(FormulaSyntaxError) as caught:
        Formula.parse(at_limit + " ")
    assert str(caught.value) == (
        "a formula of 5,001 characters is too long (at most 5,000); "
        "split it into several derived KPIs"
    )


def test_the_depth_limit_is_200_levels() -> None:
    """`- - a.x` with k minus signs is k UnaryOp levels, then the Name, then its Load
    context: k + 2 levels. 198 signs are 200 levels (allowed), 199 are 201."""
    assert Formula.parse("-" * 198 + "a.x").evaluate({"a.x": 3.0}) == 3.0
    text = "-" * 199 + "a.x"
    with pytest.raises(FormulaSyntaxError) as caught:
        Formula.parse(text)
    shown = text[:57] + "..."
    assert str(caught.value) == (
        f"formula {shown!r}: nested more than 200 levels deep; split it into several derived KPIs"
    )


def test_every_evaluation_error_is_permanent() -> None:
    cases = [
        ("a.x + b.y", {"a.x": 1.0}),
        ("a.x / b.y", {"a.x": 1.0, "b.y": 0.0}),
        ("round(a.x * 10)", {"a.x": 1e308}),
        ("a.x * 10", {"a.x": 1e308}),
    ]
    for text, values in cases:
        with pytest.raises(FormulaEvaluationError) as caught:
            Formula.parse(text).evaluate(values)
        assert caught.value.transient is False, text
    with pytest.raises(FormulaEvaluationError) as caught:
        Formula.parse("a.x + b.y + c.z").evaluate({"b.y": 1.0})
    assert str(caught.value) == "formula 'a.x + b.y + c.z': no value for a.x, c.z"
    with pytest.raises(FormulaEvaluationError) as caught:
        Formula.parse("a.x / b.y").evaluate({"a.x": 1.0, "b.y": 0.0})
    assert str(caught.value) == "formula 'a.x / b.y': division by zero"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a formula must be a non-empty text, e.g. 'revenue.mrr * 12'"),
        (
            "(a.x + 1).y",
            "formula '(a.x + 1).y': '.' is only allowed inside a KPI id such as github.stars",
        ),
        (
            "a.x if b.y else 1",
            "formula 'a.x if b.y else 1': if/else is not allowed; use numbers, "
            "KPI ids, + - * /, parentheses, min, max, abs, round",
        ),
        (
            "a.x[0]",
            "formula 'a.x[0]': indexing is not allowed; use numbers, KPI ids, + - * /, "
            "parentheses, min, max, abs, round",
        ),
        ("*a.x", "formula '*a.x' is not valid: invalid syntax"),
        (
            "{a.x: 1}",
            "formula '{a.x: 1}': dicts are not allowed; use numbers, KPI ids, + - * /, "
            "parentheses, min, max, abs, round",
        ),
        (
            "round(a.x, 1.5)",
            "formula 'round(a.x, 1.5)': round()'s second argument must be a whole number of digits",
        ),
        (
            "(a.x)(1)",
            "formula '(a.x)(1)': a.x() cannot be called; the functions are min, max, abs, round",
        ),
        (
            "(a.x + 1)(2)",
            "formula '(a.x + 1)(2)': this expression() cannot be called; the "
            "functions are min, max, abs, round",
        ),
        (
            "a.x ** 2",
            "formula 'a.x ** 2': operator ** is not supported; use + - * / and parentheses",
        ),
        ("~a.x", "formula '~a.x': operator ~ is not supported; use + - * / and parentheses"),
        ("x__y + 1", "formula 'x__y + 1': names with '__' are not allowed"),
    ],
)
def test_syntax_errors_say_exactly_what(text: str, message: str) -> None:
    with pytest.raises(FormulaSyntaxError) as caught:
        Formula.parse(text)
    assert str(caught.value) == message


LONG = "9" * 4400


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # was accepted: Python reads 1e999 as infinity, and every run failed with "too large"
        (
            "a.x * 1e999",
            "formula 'a.x * 1e999': 1e999 is past the largest number (about 1.8e308); "
            "write a smaller one",
        ),
        (
            "a.x * 2E+400 + 1",
            "formula 'a.x * 2E+400 + 1': 2E+400 is past the largest number (about 1.8e308); "
            "write a smaller one",
        ),
        # was "divides by zero whatever the KPIs' values" for a number that is not 0
        (
            "a.x / 1e-400",
            "formula 'a.x / 1e-400': 1e-400 is too small a number: it is read as 0; "
            "write a larger one",
        ),
        # was Python's advice: "use sys.set_int_max_str_digits() to increase the limit"
        (
            f"a.x + {LONG}",
            f"formula 'a.x + {LONG[:51]}...': a number of 4,400 digits is past the largest "
            "number (about 1.8e308); write a smaller one",
        ),
        (
            "a.x + 1" + "0" * 400,
            f"formula 'a.x + 1{'0' * 50}...': a number of 401 digits is past the largest "
            "number (about 1.8e308); write a smaller one",
        ),
    ],
)
def test_numbers_a_formula_cannot_hold_are_refused_at_parse(text: str, message: str) -> None:
    with pytest.raises(FormulaSyntaxError) as caught:
        Formula.parse(text)
    assert str(caught.value) == message


def test_numbers_a_formula_can_hold_are_accepted() -> None:
    assert Formula.parse("a.x * 1e308").evaluate({"a.x": 1.0}) == 1e308
    assert Formula.parse("a.x + 0.0 + 0e5 + 5e-324").evaluate({"a.x": 1.0}) == 1.0
    assert Formula.parse("a.x + 1" + "0" * 300).evaluate({"a.x": 0.0}) == 1e300


def test_a_long_formula_is_shown_cut_in_its_messages() -> None:
    """Each message is one line a person reads: a formula of 5,000 characters is cut."""
    text = "max(" + ", ".join(["a.x"] * 800) + ") + b"
    with pytest.raises(FormulaError) as caught:
        order_formulas({"c.y": Formula.parse(text)}, ["a.x"])
    assert len(str(caught.value)) < 200
    with pytest.raises(FormulaEvaluationError) as failed:
        Formula.parse(text).evaluate({"a.x": 1.0})
    assert len(str(failed.value)) < 200


def test_other_nodes_are_named_by_their_type() -> None:
    """A node with no friendly name is named by its class; an ellipsis is a Constant that
    is no number."""
    with pytest.raises(FormulaSyntaxError, match=r"^formula '\.\.\.': Ellipsis is not a number$"):
        Formula.parse("...")
    with pytest.raises(FormulaSyntaxError) as caught:
        Formula.parse("max(v for v in a.x)")
    assert str(caught.value) == (
        "formula 'max(v for v in a.x)': GeneratorExp not allowed; use numbers, KPI ids, "
        "+ - * /, parentheses, min, max, abs, round"
    )


def test_unknown_ids_get_one_close_hint_each() -> None:
    formulas = {"f.y": Formula.parse("a.tarts + zzz.qqq + a.start")}
    with pytest.raises(FormulaDependencyError) as caught:
        order_formulas(formulas, ["a.stars", "a.start"])
    assert str(caught.value) == (
        "formula for f.y ('a.tarts + zzz.qqq + a.start') uses unknown KPI id(s): "
        "a.tarts (did you mean a.start?), zzz.qqq"
    )


def test_a_formula_names_every_failed_input() -> None:
    formulas = {
        "f.a": Formula.parse("s.x / s.zero"),
        "f.b": Formula.parse("s.missing + 1"),
        "f.c": Formula.parse("f.a + f.b"),
    }
    computed, errors = evaluate_formulas(formulas, {"s.x": 1.0, "s.zero": 0.0})
    assert computed == {}
    assert str(errors["f.c"]) == "formula 'f.a + f.b': its input f.a, f.b failed"


def test_nesting_deeper_than_the_parser_goes_is_the_same_clear_error() -> None:
    text = "-" * 4990 + "a.x"  # within 5,000 characters, far past 200 levels
    with pytest.raises(FormulaSyntaxError) as caught:
        Formula.parse(text)
    assert str(caught.value) == (
        f"formula {text[:57] + '...'!r}: nested more than 200 levels deep; "
        "split it into several derived KPIs"
    )


def test_underscores_around_a_quoted_id_are_a_dunder_name() -> None:
    """`_`a.b`_` would become `___kpi_id_0_` once the id is replaced: refused like any
    name with '__'."""
    with pytest.raises(FormulaSyntaxError) as caught:
        Formula.parse("_`a.b`_")
    assert str(caught.value) == "formula '_`a.b`_': names with '__' are not allowed"


@pytest.mark.parametrize("text", ["a.x / 0", "a.x / (1 - 1)", "a.x / round(0.4)", "a.x / -0.0"])
def test_a_divisor_that_is_zero_whatever_the_values_is_refused_at_parse(text: str) -> None:
    """It was accepted by `kpi validate` and failed on every run."""
    with pytest.raises(FormulaSyntaxError) as info:
        Formula.parse(text)
    assert str(info.value) == f"formula {text!r}: divides by zero whatever the KPIs' values"


def test_a_divisor_with_a_kpi_id_or_not_zero_is_accepted() -> None:
    for text in ("a.x / b.y", "a.x / (b.y - 1)", "a.x / 2", "a.x / (1 - 0.5)"):
        assert Formula.parse(text).inputs


@pytest.mark.parametrize(
    ("text", "values"),
    [("round(a.x)", {"a.x": -0.4}), ("a.x * -1", {"a.x": 0}), ("-a.x", {"a.x": 0.0})],
)
def test_a_zero_result_is_never_negative_zero(text: str, values: dict[str, float]) -> None:
    """-0.0 compares equal to 0 but is written `-0.0` (CSV, JSON): a zero is 0.0."""
    result = Formula.parse(text).evaluate(values)
    assert result == 0 and math.copysign(1.0, result) == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("round(a.x, -1000000)", 0.0),  # was "the result is too large" (Decimal's Emax)
        ("round(a.x, 1000000)", 123.456),
        ("round(a.x, -400)", 0.0),
        ("round(a.x, -2)", 100.0),
    ],
)
def test_round_to_any_number_of_places(text: str, expected: float) -> None:
    assert Formula.parse(text).evaluate({"a.x": 123.456}) == expected


# --- unicode and whitespace as people write them -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        # an id starting with a letter outside ASCII was "'.' is only allowed inside a KPI id"
        ("über.visits * 2", {"über.visits": 2}, 4.0),
        ("min(ä.b, ö.c)", {"ä.b": 3, "ö.c": 1}, 1.0),
        # a source name starting with a digit: was "invalid decimal literal"
        ("7signal.users * 2", {"7signal.users": 3}, 6.0),
        ("1.5e3 + 2.5 * a.x", {"a.x": 2}, 1505.0),  # numbers stay numbers
        # Python reads names NFKC-normalised: µs (micro sign) was "no value for μs" (mu),
        # ﬁ (a ligature) "no value for fi"
        ("µs + 1", {"µs": 2}, 3.0),
        ("ﬁ * 2", {"ﬁ": 2}, 4.0),
        # a YAML block (`formula: |`) keeps its line breaks: was "invalid syntax"
        ("a.x *\n  12\n", {"a.x": 2}, 24.0),
        ("(a.x\r\n + b.y)", {"a.x": 2, "b.y": 1}, 3.0),
        # copied from a document: a no-break or thin space, the typographic signs
        ("a.x\u00a0*\u202f2", {"a.x": 2}, 4.0),
        ("a.x \u2212 b.y", {"a.x": 5, "b.y": 2}, 3.0),
        ("a.x \u00d7 2 \u00f7 4", {"a.x": 5}, 2.5),
        # a zero-width space or a byte order mark, invisible in the config
        ("\ufeffa.x *\u200b2", {"a.x": 5}, 10.0),
    ],
)
def test_unicode_ids_whitespace_and_signs(
    text: str, values: dict[str, float], expected: float
) -> None:
    formula = Formula.parse(text)
    assert formula.inputs == set(values)
    assert formula.evaluate(values) == expected


def test_an_id_in_backticks_keeps_its_own_characters() -> None:
    # inside backticks nothing is rewritten: the id is as the source names it
    formula = Formula.parse("`a#b.c\u00a0d` + `x.y \u2212 z`")
    assert formula.inputs == {"a#b.c\u00a0d", "x.y \u2212 z"}


@pytest.mark.parametrize("text", ["a.x # * 100", "a.x\n# note\n+ b.y", "a.x#"])
def test_a_comment_is_refused_not_dropped(text: str) -> None:
    """`a.x # * 100` computed a.x: Python read the rest as a comment and dropped it."""
    with pytest.raises(FormulaSyntaxError, match="'#' is not allowed"):
        Formula.parse(text)


@pytest.mark.parametrize("text", ["__kpi_id_0 + a.x", "__import__('os')", "ü.x + __x"])
def test_names_with_double_underscores_stay_refused(text: str) -> None:
    with pytest.raises(FormulaSyntaxError, match="'__'"):
        Formula.parse(text)


def test_a_config_with_unicode_ids_in_formulas_loads_and_computes(tmp_path: Path) -> None:
    """End to end through the config's checks: before, both formulas were config errors
    ('.' is only allowed inside a KPI id; unknown KPI id μs)."""
    from kpi_collector.config import parse_config

    text = (
        "sources:\n"
        "  - {name: über, type: python, function: mykpis:a}\n"
        "kpis:\n"
        '  µs: {formula: "über.x * 2"}\n'
        "  r.total:\n"
        "    formula: |\n"
        "      µs \u2212\n"
        "      über.x\n"
    )
    config = parse_config(text, path=tmp_path / "kpi.yaml", env={})
    formulas = {k: Formula.parse(s.formula) for k, s in config.kpis.items() if s.formula}
    computed, errors = evaluate_formulas(formulas, {"über.x": 5})
    assert errors == {}
    assert computed == {"µs": 10.0, "r.total": 5.0}


# --- in a run: an input of a source switched off -----------------------------------------------

SWITCHED_OFF = """\
sources:
  - {name: a, type: python, function: "kpi_numbers:a"}
  - {name: b, type: python, function: "kpi_numbers:b"}
  - {name: c, type: python, function: "kpi_numbers:b", enabled: false}
kpis:
  r.ratio: {formula: "a.x / c.y"}
  r.double: {formula: "r.ratio * 2"}
  r.sum: {formula: "a.x + b.y"}
"""


def test_a_formula_over_a_source_switched_off_says_so_in_every_run(tmp_path: Path) -> None:
    """A formula over a KPI of a source switched off failed a full run with 'no value for
    c.y' (not why) and, in a run of some sources (`--only a`, a source's own schedule), was
    silently not computed; both runs now fail it saying the source is switched off."""
    from tests.cli import run_kpi

    (tmp_path / "kpi_numbers.py").write_text(
        "def a():\n    return {'x': 10}\n\ndef b():\n    return {'y': 5}\n"
    )
    (tmp_path / "kpi.yaml").write_text(SWITCHED_OFF)
    why = (
        "r.ratio: not computed because its input c.y comes from source c, switched off "
        "(`enabled: false`); switch it on or change the formula 'a.x / c.y'"
    )
    for args in (["run"], ["run", "--only", "a"]):
        done = run_kpi(tmp_path, *args, "--format", "json")
        assert done.returncode == 1, done.stderr
        doc = json.loads(done.stdout)
        errors = {e["where"]: e["message"] for e in doc["errors"]}
        assert errors["r.ratio"] == why
        assert "r.ratio failed" in errors["r.double"]
        assert "r.ratio" not in {v["kpi"] for v in doc["values"]}
        assert {v["kpi"]: v["value"] for v in doc["values"]}["r.sum"] == 15
    # a run that none of its inputs reaches leaves it alone, as before
    only_b = run_kpi(tmp_path, "run", "--only", "b", "--format", "json")
    assert only_b.returncode == 0, only_b.stdout


def test_a_source_cannot_take_the_name_derived_kpis_are_stored_under(tmp_path: Path) -> None:
    """A source named `formula` was accepted: the store records derived KPIs' values and
    failures under that name, so a failing formula counted as that source failing (its
    `failing_runs` alert fired while it worked) and a run that only computed formulas as
    one that collected it."""
    from kpi_collector.config import parse_config

    text = "sources:\n  - {name: formula, type: python, function: mykpis:a}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path=tmp_path / "kpi.yaml", env={})
    assert str(caught.value) == (
        f"{tmp_path / 'kpi.yaml'}:2: source 'formula': the name 'formula' is taken by derived "
        "KPIs (their values and failures are stored under it); name it e.g. 'formulas_src'"
    )


def test_a_source_giving_a_derived_kpis_id_keeps_its_number(tmp_path: Path) -> None:
    """A `python` source (metrics known only at run time) that returns `y` while `a.y` is a
    derived KPI: the formula's 20 replaced the source's 7 and was stored as the source's
    value, silently. The source's number stays, the formula fails saying why, and the
    formulas over a.y use the source's number."""
    from tests.cli import run_kpi

    (tmp_path / "kpi_gives.py").write_text("def a():\n    return {'x': 10, 'y': 7}\n")
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        '  - {name: a, type: python, function: "kpi_gives:a"}\n'
        "kpis:\n"
        '  a.y: {formula: "a.x * 2"}\n'
        '  r.z: {formula: "a.y + 1"}\n'
    )
    for args in (["run"], ["run", "--only", "a"]):
        done = run_kpi(tmp_path, *args, "--format", "json")
        assert done.returncode == 1, done.stderr
        doc = json.loads(done.stdout)
        values = {v["kpi"]: (v["value"], v["source"]) for v in doc["values"]}
        assert values == {"a.x": (10, "a"), "a.y": (7, "a"), "r.z": (8, None)}
        assert {e["where"]: e["message"] for e in doc["errors"]} == {
            "a.y": "a.y: source 'a' gives a.y itself, so the formula 'a.x * 2' is not "
            "computed; give the derived KPI an id of its own, e.g. a.y_derived"
        }
    history = run_kpi(tmp_path, "history", "--format", "csv")
    assert sorted(line.split(",")[1:] for line in history.stdout.splitlines()[1:]) == [
        ["a.x", "10.0"],
        ["a.y", "7.0"],
        ["r.z", "8.0"],
    ]


def test_a_formula_over_complete_days_of_different_days_is_set_apart() -> None:
    """A formula over two sources of complete days, one whose service's day is still under
    way (its values the day before's), divided the 8th's visitors by the 9th's users, stamped
    as the 9th's: a ratio of no one day. It is set apart with the earliest day (the run
    computes it again from that day's stored values), and so is a formula over it; over
    inputs of one day it gets that day's stamp."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from kpi_collector.config.models import KpiSpec
    from kpi_collector.run.complete_days import CompleteDays, formula_stamps

    berlin = ZoneInfo("Europe/Berlin")

    def end(day: int) -> float:
        return datetime(2026, 3, day, 23, 59, 59, tzinfo=berlin).timestamp()

    plan = CompleteDays(date(2026, 3, 9), end(9), {}, {"web.visitors", "app.users", "r.mixed"})
    plan.kpis |= {"r.same", "r.over"}
    kpis = {
        "r.mixed": KpiSpec(formula="web.visitors / app.users"),
        "r.same": KpiSpec(formula="app.users * 2"),
        "r.over": KpiSpec(formula="r.mixed * 2"),
    }
    values = {"web.visitors": 10.0, "app.users": 5.0, "r.mixed": 2.0, "r.same": 10.0, "r.over": 4}
    stamps = {"web.visitors": end(8), "app.users": end(9)}
    found, mixed = formula_stamps(plan, values, stamps, kpis)
    assert found == {"r.same": end(9)}
    assert mixed == {"r.mixed": end(8), "r.over": end(8)}


def test_a_formula_over_a_stored_day_in_a_run_of_some_sources_is_of_that_day() -> None:
    """In a run of some sources (`--only web`) a formula over complete days takes the inputs
    the run did not collect from the store: it got the run's moment as its stamp, a day's
    ratio stored beside the days' as if of today. Such an input counts as the day's."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from kpi_collector.config.models import KpiSpec
    from kpi_collector.run.complete_days import CompleteDays, formula_stamps

    stamp = datetime(2026, 3, 9, 23, 59, 59, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    plan = CompleteDays(date(2026, 3, 9), stamp, {}, {"web.visitors", "app.users", "r.ratio"})
    kpis = {"r.ratio": KpiSpec(formula="web.visitors / app.users")}
    values = {"web.visitors": 10.0, "r.ratio": 2.0}  # app.users: stored, not collected
    assert formula_stamps(plan, values, {"web.visitors": stamp}, kpis) == ({"r.ratio": stamp}, {})
