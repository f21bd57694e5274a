"""Fuzz the criteria rule compiler: whatever text it is given, it refuses with RuleSyntaxError/RuleTypeError
or returns a rule whose evaluation never raises (any fact values, missing facts included)."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiserpa.policy.rules import FactSpec, RuleSyntaxError, RuleTypeError, Truth, compile_rule

FACTS: dict[str, FactSpec] = {
    "weeks": FactSpec("weeks", "number", unit="weeks"),
    "levels": FactSpec("levels", "integer"),
    "flag": FactSpec("flag", "boolean"),
    "kind": FactSpec("kind", "enum", values=("a", "b", "c")),
    "name": FactSpec("name", "string"),
    "dx": FactSpec("dx", "codes"),
    "onset": FactSpec("onset", "date"),
}
PARAMS: dict[str, Any] = {"min_weeks": 6, "kinds": ["a", "b"], "cutoff": 2.5}

# Tokens of the rule language and of Python it must refuse, so generated text is often almost valid.
TOKENS = [
    *FACTS,
    *PARAMS,
    "and",
    "or",
    "not",
    "in",
    "is",
    "None",
    "True",
    "False",
    "true",
    "false",
    "null",
    "count_true",
    "(",
    ")",
    "[",
    "]",
    ",",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "'a'",
    '"b"',
    "0",
    "1",
    "6",
    "2.5",
    "1e308",
    "-1",
    "days_since",
    "today",
    "lambda x: x",
    "__import__",
    ".",
    ":",
    "if",
    "else",
    "for",
    "x",
    "__class__",
    "@",
    "~",
    "//",
    "<<",
    "&",
    "|",
    "^",
    "{",
    "}",
    "'",
    "f'{x}'",
    "...",
    "yield",
    "await",
    "\\",
    "#",
    "\n",
]
token_text = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25).map(" ".join)
any_text = st.one_of(st.text(max_size=300), token_text, st.text(alphabet="()[]notand ", max_size=400))

fact_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.lists(st.text(max_size=8), max_size=4),
    st.dates(),
)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(text=any_text, env=st.dictionaries(st.sampled_from(sorted(FACTS)), fact_values, max_size=7))
def test_compile_rule_only_raises_rule_errors(text: str, env: dict[str, Any]) -> None:
    """Arbitrary text never crashes the compiler, and a compiled rule never crashes on evaluation."""
    try:
        rule = compile_rule(text, facts=FACTS, params=PARAMS)
    except (RuleSyntaxError, RuleTypeError):
        return
    # Facts are validated and coerced before rules run; still, a wrongly typed value must not crash.
    try:
        result = rule.evaluate(env)
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        # Only possible with values coercion would have refused; well-typed input is tested below.
        return
    assert isinstance(result, Truth)


well_typed = st.fixed_dictionaries(
    {},
    optional={
        "weeks": st.floats(min_value=-1e6, max_value=1e6),
        "levels": st.integers(min_value=-1000, max_value=1000),
        "flag": st.booleans(),
        "kind": st.sampled_from(["a", "b", "c"]),
        "name": st.text(max_size=10),
        "dx": st.lists(st.sampled_from(["M54.5", "G89.3", "x"]), max_size=3),
    },
)


@settings(max_examples=800, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(text=token_text, env=well_typed)
def test_compiled_rules_evaluate_well_typed_facts(text: str, env: dict[str, Any]) -> None:
    """A rule that compiles evaluates any well-typed (possibly partial) facts to met/unmet/unknown."""
    try:
        rule = compile_rule(text, facts=FACTS, params=PARAMS)
    except (RuleSyntaxError, RuleTypeError):
        return
    assert isinstance(rule.evaluate(env), Truth)


def test_pathological_inputs_are_refused_cleanly() -> None:
    """Deep nesting, huge text and NUL bytes are refused as rule errors, not crashes."""
    for text in (
        "(" * 5000 + "flag" + ")" * 5000,
        "not " * 3000 + "flag",
        "flag\x00",
        "x" * 10_000,
        "flag and " * 700 + "flag",
        "1" * 5000 + " > 0",
    ):
        with contextlib.suppress(RuleSyntaxError, RuleTypeError):
            compile_rule(text, facts=FACTS, params=PARAMS)
