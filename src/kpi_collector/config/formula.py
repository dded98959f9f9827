"""Derived KPIs: a safe evaluator for formulas such as ``revenue.mrr * 12`` over other KPI ids.

A formula is parsed with :mod:`ast` and only a small set of nodes is accepted (numbers, KPI
ids, ``+ - * /``, unary minus, parentheses and the functions ``min max abs round``); nothing
is ever passed to ``eval``. It is computed on the decimal values the sources wrote (an input
0.1 is 0.1, not the binary float near it), as a spreadsheet does: 0.1 + 0.2 is 0.3, and
``round`` takes halves away from zero (``round(2.5)`` is 3, ``round(2.675, 2)`` is 2.68). KPI ids are written as they are (``github.stars``); an id with
characters Python does not allow in a name (``my-app.signups``) is written in backticks.
Outside backticks any whitespace (line breaks, a no-break space) is a space and ``− × ÷`` are
``- * /``; ``#`` is refused (Python would drop the rest of the line as a comment).

    FormulaError (KpiError, ValueError)
    ├── FormulaSyntaxError      (also ConfigError) the text is not a formula this module accepts
    ├── FormulaDependencyError  (also ConfigError) unknown KPI ids or a cycle between formulas
    └── FormulaEvaluationError  a missing input or a division by zero, for one KPI only
"""

from __future__ import annotations

import ast
import decimal
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from difflib import get_close_matches

from kpi_collector.errors import ConfigError, KpiError

__all__ = [
    "Formula",
    "FormulaDependencyError",
    "FormulaError",
    "FormulaEvaluationError",
    "FormulaSyntaxError",
    "evaluate_formulas",
    "order_formulas",
]


class FormulaError(KpiError, ValueError):
    """Base of every formula error."""


class FormulaSyntaxError(FormulaError, ConfigError):
    """The text is not a formula: bad syntax or a construct that is not allowed."""


class FormulaDependencyError(FormulaError, ConfigError):
    """A formula refers to an unknown KPI id, or formulas refer to each other in a cycle."""


class FormulaEvaluationError(FormulaError):
    """A formula could not be computed from the values at hand (missing input, division by 0)."""


#: digits a formula computes with: the exact product of two stored numbers (17 digits
#: each) and more; the result is rounded once, to the stored float
_PRECISION = 60


def round_half_away(value: Decimal, digits: int = 0) -> Decimal:
    """`value` rounded to `digits` decimals (tens, hundreds for negative `digits`), halves
    away from zero as spreadsheets round: 2.5 → 3, -2.5 → -3, 2.675 (2) → 2.68."""
    # past 400 places either way a stored number (at most 1.8e308, at least 5e-324) is
    # itself or 0: clamped, so that no place is past what Decimal's exponents reach
    digits = max(-400, min(400, digits))
    exponent = value.as_tuple().exponent
    if not value.is_finite() or (isinstance(exponent, int) and exponent >= -digits):
        return value  # no digits past the place rounded to: nothing to round
    # enough digits for the whole part and the kept decimals, whatever the magnitude
    context = decimal.Context(prec=max(_PRECISION, value.adjusted() + digits + 2))
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP, context=context)


_FUNCTIONS: dict[str, Callable[..., Decimal]] = {
    "min": lambda *args: min(args),
    "max": lambda *args: max(args),
    "abs": abs,
    "round": lambda value, digits=Decimal(0): round_half_away(value, int(digits)),
}
_ARITY: dict[str, tuple[int, int | None]] = {
    "min": (1, None),
    "max": (1, None),
    "abs": (1, 1),
    "round": (1, 2),
}
_BINARY: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
}
_UNARY: dict[type[ast.unaryop], str] = {ast.USub: "-", ast.UAdd: "+"}
_OPERATOR_NAMES: dict[type[ast.AST], str] = {
    ast.Pow: "**",
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Invert: "~",
    ast.Not: "not",
}

_NODE_NAMES: dict[type[ast.AST], str] = {
    ast.Compare: "comparisons are",
    ast.BoolOp: "and/or are",
    ast.IfExp: "if/else is",
    ast.Lambda: "lambda is",
    ast.Subscript: "indexing is",
    ast.JoinedStr: "f-strings are",
    ast.List: "lists are",
    ast.Tuple: "tuples are",
    ast.Dict: "dicts are",
    ast.Set: "sets are",
    ast.NamedExpr: ":= is",
}

# A dotted KPI id (``github.stars``, ``pypi.downloads_last_day``, ``app.7d_users``) or any id
# in backticks. Replaced by placeholders before parsing, so that id segments that are Python
# keywords or start with a digit still work and the AST carries each id whole.
# A name without a dot that is not plain ASCII (a formula's own id, `µs`) is replaced too:
# Python reads names NFKC-normalised (µ, the micro sign, as μ, Greek mu), so the AST would
# carry another id than the one written.
_ID_PATTERN = re.compile(
    r"`(?P<quoted>[^`]*)`"
    r"|(?<![\w.])(?P<dotted>\d*[^\W\d]\w*(?:\.\w+)+)(?!\w)"  # 7signal.users too
    r"|(?<![\w.])(?P<bare>[^\W\d]\w*)(?![\w.])"
)
_QUOTED = re.compile(r"(`[^`]*`)")
# what a formula copied from a document may hold: any whitespace (a no-break space, the line
# breaks of a YAML block `|`) is a space, and the typographic signs are the operators
_SPACE = re.compile(r"\s")
_SIGNS = str.maketrans(
    {"\u2212": "-", "\u00d7": "*", "\u00f7": "/"}
    | dict.fromkeys(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])  # zero-width: none
)
_PLACEHOLDER = "__kpi_id_{}"
_PLACEHOLDER_PATTERN = re.compile(r"__kpi_id_(\d+)")

Node = ast.expr
MAX_FORMULA_CHARS = 5000
MAX_FORMULA_DEPTH = 200  # levels of the expression tree: a sum of n terms is about n deep


def _cut(text: str) -> str:
    """A formula as a message shows it: quoted, cut to 60 characters (one line to read)."""
    return repr(text if len(text) <= 60 else f"{text[:57]}...")


def _too_deep(text: str) -> str:
    return (
        f"formula {_cut(text)}: nested more than {MAX_FORMULA_DEPTH} levels deep; "
        f"split it into several derived KPIs"
    )


def _past_largest(written: str) -> str:
    shown = f"a number of {len(written):,} digits" if len(written) > 30 else written
    return f"{shown} is past the largest number (about 1.8e308); write a smaller one"


def _depth(root: ast.AST) -> int:
    """How deep the expression tree is (without recursion, whatever its depth)."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


@dataclass(frozen=True)
class Formula:
    """A parsed formula. Build it with :meth:`Formula.parse`."""

    text: str
    inputs: frozenset[str]
    _tree: Node = field(repr=False, compare=False)
    _ids: tuple[str, ...] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Formula:
        """Parse ``text``; raise :class:`FormulaSyntaxError` saying what is wrong."""
        if not isinstance(text, str) or not text.strip():
            raise FormulaSyntaxError("a formula must be a non-empty text, e.g. 'revenue.mrr * 12'")
        if len(text) > MAX_FORMULA_CHARS:
            raise FormulaSyntaxError(
                f"a formula of {len(text):,} characters is too long (at most "
                f"{MAX_FORMULA_CHARS:,}); split it into several derived KPIs"
            )
        plain = _plain(text)
        # the text around the ids (an ASCII name without a dot is Python's to read)
        outside = _ID_PATTERN.sub(
            lambda m: m.group() if m.group("bare") and m.group().isascii() else "", plain
        )
        if "__" in outside:
            raise FormulaSyntaxError(f"formula {_cut(text)}: names with '__' are not allowed")
        if "#" in outside:  # Python would read the rest as a comment and drop it silently
            raise FormulaSyntaxError(
                f"formula {_cut(text)}: '#' is not allowed (a formula has no comments; "
                "put notes in the KPI's description)"
            )
        ids: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            bare = match.group("bare")
            if bare is not None and (bare.isascii() or bare in _FUNCTIONS):
                return bare  # Python reads it as written; keywords stay keywords
            quoted = match.group("quoted")
            kpi_id = (quoted if quoted is not None else match.group("dotted") or bare).strip()
            if not kpi_id:
                raise FormulaSyntaxError(f"formula {_cut(text)}: empty `` quotes")
            if kpi_id not in ids:
                ids.append(kpi_id)
            return _PLACEHOLDER.format(ids.index(kpi_id))

        source = _ID_PATTERN.sub(placeholder, plain.strip())
        if "`" in source:
            raise FormulaSyntaxError(f"formula {_cut(text)}: unmatched backtick")
        try:
            tree = ast.parse(source, mode="eval")
        except SyntaxError as exc:
            if "integer string conversion" in exc.msg:  # Python's limit, 4300 digits
                longest = max(re.findall(r"\d+", source), key=len)
                raise FormulaSyntaxError(
                    f"formula {_cut(text)}: {_past_largest(longest)}"
                ) from None
            # exc.offset points into the rewritten text, so it is not shown.
            raise FormulaSyntaxError(f"formula {_cut(text)} is not valid: {exc.msg}") from None
        except (RecursionError, MemoryError):  # CPython's parser on very deep nesting
            raise FormulaSyntaxError(_too_deep(text)) from None
        if _depth(tree.body) > MAX_FORMULA_DEPTH:  # checking and evaluating recurse
            raise FormulaSyntaxError(_too_deep(text))
        checker = _Checker(text, tuple(ids), source)
        checker.visit(tree.body)
        return cls(text=text, inputs=frozenset(checker.used), _tree=tree.body, _ids=tuple(ids))

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Compute the formula; raise :class:`FormulaEvaluationError` for a missing input or
        a division by zero."""
        missing = sorted(kpi_id for kpi_id in self.inputs if values.get(kpi_id) is None)
        if missing:
            names = ", ".join(missing)
            raise FormulaEvaluationError(
                f"formula {_cut(self.text)}: no value for {names}", transient=False
            )
        inputs: dict[str, Decimal] = {}
        for kpi_id in sorted(self.inputs):
            number = float(values[kpi_id])
            if not math.isfinite(number):
                raise FormulaEvaluationError(
                    f"formula {_cut(self.text)}: the input {kpi_id} is not a finite number ({number})",
                    transient=False,
                )
            inputs[kpi_id] = _decimal(number)
        try:
            with decimal.localcontext(decimal.Context(prec=_PRECISION)):
                result = float(self._eval(self._tree, inputs))
        except ZeroDivisionError:
            raise FormulaEvaluationError(
                f"formula {_cut(self.text)}: division by zero", transient=False
            ) from None
        except decimal.InvalidOperation as exc:  # 0 / 0 is decimal's DivisionUndefined
            undefined = any(c is decimal.DivisionUndefined for c in (exc.args or [[]])[0])
            what = "division by zero" if undefined else "the result is not a number"
            raise FormulaEvaluationError(
                f"formula {_cut(self.text)}: {what}", transient=False
            ) from None
        except (OverflowError, decimal.Overflow):
            raise FormulaEvaluationError(
                f"formula {_cut(self.text)}: the result is too large", transient=False
            ) from None
        if result == 0:
            result = 0.0  # round(-0.4), -a.x of 0: a zero, never shown or stored as -0
        if not math.isfinite(result):  # a decimal past the largest float, ±1.8e308
            raise FormulaEvaluationError(
                f"formula {_cut(self.text)}: the result is too large", transient=False
            )
        return result

    def _eval(self, node: Node, values: Mapping[str, Decimal]) -> Decimal:
        # The tree was checked by _Checker at parse time, so only allowed nodes reach here.
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return _decimal(node.value)
        if isinstance(node, ast.Name):
            return values[self._id_of(node.id)]
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            left = self._eval(node.left, values)
            right = self._eval(node.right, values)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            return left / right
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = [self._eval(arg, values) for arg in node.args]
            return _FUNCTIONS[node.func.id](*args)
        raise AssertionError(f"unchecked node {ast.dump(node)}")  # pragma: no cover

    def _id_of(self, name: str) -> str:
        match = _PLACEHOLDER_PATTERN.fullmatch(name)
        return self._ids[int(match.group(1))] if match else name

    def __str__(self) -> str:
        return self.text


class _Checker:
    """Walks a parsed expression and rejects every node that is not explicitly allowed."""

    def __init__(self, text: str, ids: tuple[str, ...], source: str = "") -> None:
        self.text = text
        self.ids = ids
        self.source = source  # the text parsed (ids replaced), where the nodes' offsets point
        self.used: set[str] = set()

    def fail(self, message: str) -> FormulaSyntaxError:
        return FormulaSyntaxError(f"formula {_cut(self.text)}: {message}")

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise self.fail(f"{node.value!r} is not a number")
            self.check_number(node, node.value)
        elif isinstance(node, ast.Name):
            self.visit_name(node)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise self.fail(self.unsupported_operator(node.op))
            self.visit(node.left)
            self.visit(node.right)
            if isinstance(node.op, ast.Div) and _constant(node.right) == 0:
                # a divisor without KPI ids is zero on every run: a mistake, found at load
                raise self.fail("divides by zero whatever the KPIs' values")
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise self.fail(self.unsupported_operator(node.op))
            self.visit(node.operand)
        elif isinstance(node, ast.Call):
            self.visit_call(node)
        elif isinstance(node, ast.Attribute):
            # Dotted ids are replaced before parsing; an attribute left over hangs off
            # something that is not a name, e.g. ``(a.b).c``.
            raise self.fail("'.' is only allowed inside a KPI id such as github.stars")
        else:
            what = _NODE_NAMES.get(type(node), type(node).__name__)
            raise self.fail(
                f"{what} not allowed; use numbers, KPI ids, + - * /, parentheses, "
                "min, max, abs, round"
            )

    def check_number(self, node: ast.Constant, value: float) -> None:
        """Refuse a number no stored value can be: past the largest float (1e999 reads as
        infinity) or so small it reads as 0 (1e-400): the formula would fail every run,
        or divide by a zero nobody wrote."""
        written = ast.get_source_segment(self.source, node) or repr(value)
        try:
            number = float(value)
        except OverflowError:  # an int past the largest float
            number = math.inf
        if not math.isfinite(number):
            raise self.fail(_past_largest(written))
        mantissa = re.split(r"[eE]", written)[0]
        if number == 0 and re.search(r"[1-9]", mantissa):
            raise self.fail(f"{written} is too small a number: it is read as 0; write a larger one")

    def visit_name(self, node: ast.Name) -> None:
        match = _PLACEHOLDER_PATTERN.fullmatch(node.id)
        if match:
            self.used.add(self.ids[int(match.group(1))])
            return
        if node.id in _FUNCTIONS:
            raise self.fail(f"{node.id} is a function; call it as {node.id}(...)")
        # A bare name is a KPI id without a dot; order_formulas reports it if unknown.
        self.used.add(node.id)

    def visit_call(self, node: ast.Call) -> None:
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in _FUNCTIONS:
            called = self.describe(func)
            raise self.fail(f"{called}() cannot be called; the functions are min, max, abs, round")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise self.fail(f"{func.id}() takes plain positional arguments only")
        low, high = _ARITY[func.id]
        count = len(node.args)
        if count < low or (high is not None and count > high):
            expected = f"{low} to {high}" if high not in (low, None) else str(low)
            if high is None:
                expected = f"at least {low}"
            raise self.fail(f"{func.id}() takes {expected} argument(s), got {count}")
        if func.id == "round" and count == 2:
            digits = node.args[1]
            if isinstance(digits, ast.UnaryOp) and isinstance(digits.op, ast.USub | ast.UAdd):
                digits = digits.operand
            if not (isinstance(digits, ast.Constant) and type(digits.value) is int):
                raise self.fail("round()'s second argument must be a whole number of digits")
        for arg in node.args:
            self.visit(arg)

    def describe(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            match = _PLACEHOLDER_PATTERN.fullmatch(node.id)
            return self.ids[int(match.group(1))] if match else node.id
        return "this expression"

    @staticmethod
    def unsupported_operator(op: ast.AST) -> str:
        symbol = _OPERATOR_NAMES.get(type(op), type(op).__name__)
        return f"operator {symbol} is not supported; use + - * / and parentheses"


def _plain(text: str) -> str:
    """`text` with its whitespace as spaces and − × ÷ as - * /, except inside backticks
    (an id is as written)."""
    return "".join(
        part if part.startswith("`") else _SPACE.sub(" ", part).translate(_SIGNS)
        for part in _QUOTED.split(text)
    )


def _decimal(number: float) -> Decimal:
    """A stored number as the decimal its source wrote: the shortest decimal that is this
    float (0.1, where Decimal(0.1) is 0.1000000000000000055511151231257827...)."""
    return Decimal(number) if isinstance(number, int) else Decimal(repr(float(number)))


def _constant(node: Node) -> Decimal | None:
    """The value of a checked expression that names no KPI (`0`, `1 - 1`, `abs(-0)`), else
    None (also when it cannot be computed, e.g. its own division by zero)."""
    formula = Formula(text="", inputs=frozenset(), _tree=node, _ids=())
    try:
        with decimal.localcontext(decimal.Context(prec=_PRECISION)):
            return formula._eval(node, {})
    except (ArithmeticError, LookupError, TypeError, ValueError):
        return None


def order_formulas(formulas: Mapping[str, Formula], known_ids: Iterable[str]) -> list[str]:
    """The formula KPI ids in an order where each comes after the formulas it uses.

    ``known_ids`` are the ids that have values without a formula (it may also list the
    formula ids themselves). Raises :class:`FormulaDependencyError` for an input that is
    neither known nor another formula, and for cycles (the message names the cycle, e.g.
    ``a.x -> b.y -> a.x``).
    """
    available = set(known_ids) | set(formulas)
    for kpi_id, formula in formulas.items():
        unknown = sorted(formula.inputs - available)
        if unknown:
            hints = []
            for name in unknown:
                close = get_close_matches(name, sorted(available), n=1)
                if close and not re.fullmatch(r"[\w.]+", close[0]):
                    # `my-app.users` unquoted reads as my - app.users
                    hints.append(
                        f"{name} (did you mean `{close[0]}`? ids with other "
                        "characters than letters, digits, _ and . go in backticks)"
                    )
                else:
                    hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
            raise FormulaDependencyError(
                f"formula for {kpi_id} ({_cut(formula.text)}) uses unknown KPI id(s): "
                + ", ".join(hints)
            )

    order: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(kpi_id: str) -> None:
        if kpi_id in done or kpi_id not in formulas:
            return
        if kpi_id in path:
            cycle = [*path[path.index(kpi_id) :], kpi_id]
            raise FormulaDependencyError("formulas form a cycle: " + " -> ".join(cycle))
        path.append(kpi_id)
        for dependency in sorted(formulas[kpi_id].inputs):
            visit(dependency)
        path.pop()
        done.add(kpi_id)
        order.append(kpi_id)

    for kpi_id in formulas:
        visit(kpi_id)
    return order


def evaluate_formulas(
    formulas: Mapping[str, Formula],
    values: Mapping[str, float],
    order: Iterable[str] | None = None,
) -> tuple[dict[str, float], dict[str, FormulaError]]:
    """Evaluate every formula over ``values`` (and over each other) in dependency order.

    Returns ``(computed, errors)``: a formula that fails, and every formula that depends on
    it, gets an error; the others are computed. ``order`` defaults to the dependency order
    (cycles still raise :class:`FormulaDependencyError`).
    """
    if order is None:
        # Unknown ids are the config's business; here a missing value fails that KPI only.
        order = order_formulas(formulas, {i for f in formulas.values() for i in f.inputs})
    known: dict[str, float] = {k: v for k, v in values.items() if k not in formulas}
    computed: dict[str, float] = {}
    errors: dict[str, FormulaError] = {}
    for kpi_id in order:
        formula = formulas[kpi_id]
        failed = sorted(formula.inputs & errors.keys())
        if failed:
            errors[kpi_id] = FormulaEvaluationError(
                f"formula {_cut(formula.text)}: its input {', '.join(failed)} failed"
            )
            continue
        try:
            computed[kpi_id] = known[kpi_id] = formula.evaluate(known)
        except FormulaError as exc:
            errors[kpi_id] = exc
    return computed, errors
