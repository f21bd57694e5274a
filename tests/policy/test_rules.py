"""The rule language: whitelist, type checks and Kleene three-valued logic."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wiserpa.policy.rules import (
    FactSpec,
    RuleSyntaxError,
    RuleTypeError,
    Truth,
    compile_rule,
    kleene_and,
    kleene_or,
)

FACTS: dict[str, FactSpec] = {
    "weeks": FactSpec("weeks", "number", unit="weeks"),
    "levels": FactSpec("levels", "integer", unit="levels"),
    "flag": FactSpec("flag", "boolean"),
    "other": FactSpec("other", "boolean"),
    "kind": FactSpec("kind", "enum", values=("a", "b", "c")),
    "name": FactSpec("name", "string"),
    "dx": FactSpec("dx", "codes"),
    "onset": FactSpec("onset", "date"),
    "seen": FactSpec("seen", "date"),
}


def ev(text: str, facts: dict[str, Any], params: dict[str, Any] | None = None) -> Truth:
    return compile_rule(text, facts=FACTS, params=params or {}).evaluate(facts)


# ------------------------------------------------------------------------------------------------ whitelist


@pytest.mark.parametrize(
    "text",
    [
        "flag.real",  # attribute access
        "weeks.__class__",
        "dx[0] == 'x'",  # subscript
        "(lambda: true)()",
        "lambda x: x",
        "__import__('os').system('true')",
        "len(dx) > 1",  # calls other than count_true
        "open('x')",
        "count_true(flag, other=1) > 0",
        "count_true(*dx) > 0",
        "count_true() > 0",
        "weeks * 2 > 4",  # only + and -
        "weeks ** 2 > 4",
        "weeks if flag else 3",
        "[x for x in dx]",
        "{'a': 1}",
        "flag is None",
        "flag := true",
        "f'{name}' == 'x'",
        "kind == ['a']",
        "",
        "   ",
        "weeks >=",
        "import os",
    ],
)
def test_rejects_syntax_outside_whitelist(text: str) -> None:
    with pytest.raises((RuleSyntaxError, RuleTypeError)):
        compile_rule(text, facts=FACTS)


def test_syntax_error_names_offending_text() -> None:
    with pytest.raises(RuleSyntaxError, match=r"flag\.real"):
        compile_rule("weeks > 1 and flag.real", facts=FACTS)
    with pytest.raises(RuleSyntaxError, match="__import__"):
        compile_rule("__import__('os')", facts=FACTS)


def test_bare_dunder_name_is_undeclared() -> None:
    with pytest.raises(RuleTypeError, match="undeclared"):
        compile_rule("__import__ == 1", facts=FACTS)


def test_deeply_nested_text_is_refused_not_crashing() -> None:
    with pytest.raises(RuleSyntaxError):
        compile_rule("not " * 500 + "flag", facts=FACTS)
    with pytest.raises(RuleSyntaxError):
        compile_rule("(" * 2000 + "flag" + ")" * 2000, facts=FACTS)


# ---------------------------------------------------------------------------------------------- type checks


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("missing_fact == 1", "undeclared"),
        ("flag == 1", "cannot compare"),
        ("flag > false", "needs numbers"),
        ("kind == 'zzz'", "not one of the values"),
        ("'zzz' != kind", "not one of the values"),
        ("kind in ['a', 'zzz']", "not among the values"),
        ("weeks == 'four'", "cannot compare"),
        ("weeks in ['a', 'b']", "do not match"),
        ("kind in ['a', 1]", "mixes"),
        ("flag in ['a']", "cannot be looked up"),
        ("weeks in dx", "only a string"),
        ("name > 'a'", "needs numbers"),
        ("dx == 'x'", "only be used with 'in'"),
        ("onset > 3", "cannot compare"),
        ("weeks + flag > 1", "arithmetic"),
        ("weeks and flag", "not a true/false"),
        ("count_true(weeks) > 0", "not a true/false"),
        ("weeks", "not a true/false"),
        ("kind in threshold", "needs a list"),
    ],
)
def test_type_errors(text: str, why: str) -> None:
    with pytest.raises(RuleTypeError, match=why):
        compile_rule(text, facts=FACTS, params={"threshold": 4})


def test_param_shadowing_a_fact_or_reserved_name_is_refused() -> None:
    with pytest.raises(RuleTypeError):
        compile_rule("weeks > 1", facts=FACTS, params={"weeks": 3})
    with pytest.raises(RuleTypeError):
        compile_rule("flag", facts=FACTS, params={"true": False})


def test_params_are_typed_like_literals() -> None:
    assert ev("weeks >= min_weeks", {"weeks": 4}, {"min_weeks": 4}) is Truth.MET
    assert ev("kind in allowed", {"kind": "b"}, {"allowed": ["a", "b"]}) is Truth.MET
    with pytest.raises(RuleTypeError):
        compile_rule("kind in allowed", facts=FACTS, params={"allowed": ["a", "nope"]})
    with pytest.raises(RuleTypeError):
        compile_rule("kind == wanted", facts=FACTS, params={"wanted": "nope"})
    with pytest.raises(RuleTypeError):
        compile_rule("weeks >= min_weeks", facts=FACTS, params={"min_weeks": "4"})


def test_names_and_params_used() -> None:
    rule = compile_rule("weeks >= m and (flag or kind == 'a') and weeks < 99", facts=FACTS, params={"m": 4})
    assert rule.names == ("weeks", "flag", "kind")
    assert rule.params_used == ("m",)


# ------------------------------------------------------------------------------------------------ semantics


def test_literals_in_either_case() -> None:
    assert ev("flag == true", {"flag": True}) is Truth.MET
    assert ev("flag == True", {"flag": True}) is Truth.MET
    assert ev("flag == false", {"flag": True}) is Truth.UNMET
    assert ev("flag != False", {"flag": True}) is Truth.MET


def test_comparisons_chains_and_arithmetic() -> None:
    assert ev("1 <= levels <= 2", {"levels": 2}) is Truth.MET
    assert ev("1 <= levels <= 2", {"levels": 3}) is Truth.UNMET
    assert ev("weeks + 1 <= 4", {"weeks": 3}) is Truth.MET
    assert ev("weeks - levels > 0", {"weeks": 3, "levels": 4}) is Truth.UNMET
    assert ev("-weeks < 0", {"weeks": 3}) is Truth.MET
    assert ev("weeks > -1.5", {"weeks": 0}) is Truth.MET
    assert ev("weeks + 1 <= 4", {}) is Truth.UNKNOWN
    assert ev("1 <= levels <= 2", {"levels": None}) is Truth.UNKNOWN


def test_membership() -> None:
    assert ev("kind in ['a', 'b']", {"kind": "a"}) is Truth.MET
    assert ev("kind not in ['a', 'b']", {"kind": "a"}) is Truth.UNMET
    assert ev("kind in ['a', 'b']", {}) is Truth.UNKNOWN
    assert ev("'G89.3' in dx", {"dx": ("M54.16", "G89.3")}) is Truth.MET
    assert ev("'G89.3' not in dx", {"dx": ("M54.16",)}) is Truth.MET
    assert ev("'G89.3' in dx", {}) is Truth.UNKNOWN
    assert ev("name in dx", {"name": "x", "dx": ["x"]}) is Truth.MET
    assert ev("levels in [1, 2]", {"levels": 2}) is Truth.MET
    assert ev("kind in []", {"kind": "a"}) is Truth.UNMET


def test_dates_compare() -> None:
    assert ev("onset < seen", {"onset": dt.date(2026, 1, 1), "seen": dt.date(2026, 2, 1)}) is Truth.MET
    assert ev("onset < seen", {"onset": dt.date(2026, 1, 1)}) is Truth.UNKNOWN


def test_count_true() -> None:
    rule = "count_true(flag, other, weeks > 4) >= 2"
    assert ev(rule, {"flag": True, "other": True, "weeks": 1}) is Truth.MET
    assert ev(rule, {"flag": True, "other": False, "weeks": 1}) is Truth.UNMET
    # Unknown if any operand is unknown (kept simple on purpose).
    assert ev(rule, {"flag": True, "other": True}) is Truth.UNKNOWN


def test_wrong_python_type_at_runtime_is_unknown_not_a_crash() -> None:
    assert ev("weeks >= 4", {"weeks": "ten"}) is Truth.UNKNOWN


def test_missing_fact_makes_comparison_unknown() -> None:
    assert ev("weeks >= 4", {}) is Truth.UNKNOWN
    assert ev("weeks >= 4 and flag", {"flag": False}) is Truth.UNMET
    assert ev("weeks >= 4 or flag", {"flag": True}) is Truth.MET
    assert ev("not (weeks >= 4)", {}) is Truth.UNKNOWN


# ---------------------------------------------------------------------------------------- Kleene properties

BOOL_FACTS = {n: FactSpec(n, "boolean") for n in ("a", "b", "c", "d")}
VALUE = st.sampled_from([True, False, None])
ASSIGN = st.fixed_dictionaries({n: VALUE for n in BOOL_FACTS})

# An expression is ("var", name) | ("not", e) | ("and", e, e) | ("or", e, e).
EXPR = st.recursive(
    st.sampled_from(sorted(BOOL_FACTS)).map(lambda n: ("var", n)),
    lambda sub: st.one_of(
        sub.map(lambda e: ("not", e)),
        st.tuples(st.just("and"), sub, sub),
        st.tuples(st.just("or"), sub, sub),
    ),
    max_leaves=12,
)


def render(e: tuple[Any, ...]) -> str:
    if e[0] == "var":
        return str(e[1])
    if e[0] == "not":
        return f"not ({render(e[1])})"
    return f"({render(e[1])}) {e[0]} ({render(e[2])})"


def reference(e: tuple[Any, ...], env: dict[str, bool | None]) -> bool | None:
    """Kleene logic written independently: order F < U < T, and = min, or = max."""
    if e[0] == "var":
        return env[e[1]]
    if e[0] == "not":
        v = reference(e[1], env)
        return None if v is None else not v
    rank = {False: 0, None: 1, True: 2}
    back = {0: False, 1: None, 2: True}
    x, y = rank[reference(e[1], env)], rank[reference(e[2], env)]
    return back[min(x, y) if e[0] == "and" else max(x, y)]


def run(text: str, env: dict[str, bool | None]) -> bool | None:
    return compile_rule(text, facts=BOOL_FACTS).evaluate_raw(env)


@settings(max_examples=300, deadline=None)
@given(EXPR, ASSIGN)
def test_matches_reference_kleene(e: tuple[Any, ...], env: dict[str, bool | None]) -> None:
    assert run(render(e), env) is reference(e, env)


@settings(max_examples=300, deadline=None)
@given(EXPR, st.fixed_dictionaries({n: st.booleans() for n in BOOL_FACTS}))
def test_agrees_with_python_bool_logic_when_nothing_unknown(e: tuple[Any, ...], env: dict[str, bool]) -> None:
    def py(x: tuple[Any, ...]) -> bool:
        if x[0] == "var":
            return env[x[1]]
        if x[0] == "not":
            return not py(x[1])
        return (py(x[1]) and py(x[2])) if x[0] == "and" else (py(x[1]) or py(x[2]))

    assert run(render(e), dict(env)) is py(e)


@settings(max_examples=200, deadline=None)
@given(EXPR, EXPR, ASSIGN)
def test_de_morgan(p: tuple[Any, ...], q: tuple[Any, ...], env: dict[str, bool | None]) -> None:
    a, b = render(p), render(q)
    assert run(f"not (({a}) and ({b}))", env) is run(f"(not ({a})) or (not ({b}))", env)
    assert run(f"not (({a}) or ({b}))", env) is run(f"(not ({a})) and (not ({b}))", env)


@settings(max_examples=200, deadline=None)
@given(EXPR, EXPR, ASSIGN)
def test_commutativity(p: tuple[Any, ...], q: tuple[Any, ...], env: dict[str, bool | None]) -> None:
    a, b = render(p), render(q)
    assert run(f"({a}) and ({b})", env) is run(f"({b}) and ({a})", env)
    assert run(f"({a}) or ({b})", env) is run(f"({b}) or ({a})", env)


@settings(max_examples=300, deadline=None)
@given(EXPR, ASSIGN, st.fixed_dictionaries({n: st.booleans() for n in BOOL_FACTS}))
def test_unknown_is_monotone(e: tuple[Any, ...], env: dict[str, bool | None], fill: dict[str, bool]) -> None:
    """A decided result never changes when unknown facts become known (unknowns only ever propagate)."""
    text = render(e)
    before = run(text, env)
    after = run(text, {n: (fill[n] if v is None else v) for n, v in env.items()})
    if before is not None:
        assert after is before


@given(ASSIGN)
def test_unknown_propagation_identities(env: dict[str, bool | None]) -> None:
    env = {**env, "a": None}
    assert run("a and false", env) is False
    assert run("a or true", env) is True
    assert run("not a", env) is None
    assert run("a and true", env) is None
    assert run("a or false", env) is None


@given(st.lists(VALUE, max_size=6))
def test_reference_helpers(values: list[bool | None]) -> None:
    assert kleene_and(values) is (False if False in values else (None if None in values else True))
    assert kleene_or(values) is (True if True in values else (None if None in values else False))
