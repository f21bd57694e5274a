"""A small, safe rule language for coverage criteria, evaluated in three-valued (Kleene) logic.

Rule text is parsed with :mod:`ast` and only a whitelist of node kinds is converted into this module's own
immutable expression tree; nothing from the text is ever passed to ``eval`` or ``compile``. The tree is
type-checked against the declared facts and parameters once, then turned into nested closures so that
evaluating a rule is a handful of plain function calls.

Grammar (Python expression syntax, restricted):

* ``and`` / ``or`` / ``not``; ``true`` / ``false`` (either case)
* comparisons ``== != < <= > >=`` (chains allowed: ``15 <= ahi <= 65``)
* ``x in [..]`` / ``x not in [..]`` against a list literal, a list parameter or a ``codes`` fact
* names of declared facts and parameters; number and string literals; ``+`` and ``-`` on numbers
* ``count_true(a, b, ...)``: how many of the boolean operands are true

A fact that is missing (absent or ``None``) is *unknown*: any comparison on it is unknown, and unknowns
propagate by Kleene's rules (``false and unknown`` is false, ``true or unknown`` is true).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeAlias

__all__ = [
    "FACT_TYPES",
    "RESERVED_NAMES",
    "CompiledRule",
    "FactSpec",
    "FactType",
    "ParamValue",
    "RuleError",
    "RuleSyntaxError",
    "RuleTypeError",
    "Truth",
    "compile_rule",
]

FactType: TypeAlias = Literal["number", "integer", "boolean", "enum", "date", "codes", "string"]
FACT_TYPES: tuple[str, ...] = ("number", "integer", "boolean", "enum", "date", "codes", "string")
ParamValue: TypeAlias = bool | int | float | str | tuple[str, ...] | tuple[float, ...] | list[Any]

# Names the language itself owns; a fact or parameter may not shadow them.
RESERVED_NAMES = frozenset({"true", "false", "True", "False", "count_true", "null", "None"})

# Long or deeply nested text is never a legitimate criterion; refusing it early also keeps ast.parse and the
# recursive converter far from Python's recursion limit.
_MAX_RULE_CHARS = 4000
_MAX_DEPTH = 60


class RuleError(ValueError):
    """Base class of rule-language errors."""


class RuleSyntaxError(RuleError):
    """The text uses syntax outside the whitelist (or is not an expression at all)."""


class RuleTypeError(RuleError):
    """The text is well formed but names something undeclared or mixes incompatible types."""


class Truth(StrEnum):
    """Three-valued result of a criterion."""

    MET = "met"
    UNMET = "unmet"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, value: bool | None) -> Truth:
        """Map ``True``/``False``/``None`` to MET/UNMET/UNKNOWN."""
        return _TRUTH_OF[value]


_TRUTH_OF: dict[bool | None, Truth] = {True: Truth.MET, False: Truth.UNMET, None: Truth.UNKNOWN}


@dataclass(frozen=True, slots=True)
class FactSpec:
    """A declared clinical fact: its name, type, unit, allowed values and the label a provider sees."""

    name: str
    type: FactType
    unit: str | None = None
    values: tuple[str, ...] | None = None
    label: str = ""
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None


# --------------------------------------------------------------------------------------------------------
# Expression tree (immutable). Parameters are substituted as literals at compile time, so the tree only
# refers to facts by name.


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal number, string or boolean."""

    value: bool | int | float | str


@dataclass(frozen=True, slots=True)
class ListLit:
    """A list of literals; only valid as the right operand of ``in``."""

    items: tuple[int | float | str, ...]


@dataclass(frozen=True, slots=True)
class Fact:
    """A reference to a declared fact."""

    name: str


@dataclass(frozen=True, slots=True)
class Not:
    """Kleene negation."""

    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    """Kleene conjunction."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Kleene disjunction."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Cmp:
    """One binary comparison (chains become an ``And`` of these)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Arith:
    """``+`` or ``-`` on numbers."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class CountTrue:
    """Number of true operands."""

    operands: tuple[Node, ...]


Node: TypeAlias = Lit | ListLit | Fact | Not | And | Or | Cmp | Arith | CountTrue

# --------------------------------------------------------------------------------------------------------
# Static types used by the checker.


@dataclass(frozen=True, slots=True)
class _Ty:
    kind: Literal["bool", "num", "str", "date", "codes", "list"]
    values: frozenset[str] | None = None  # enum facts: the allowed strings
    elem: Literal["num", "str", "empty"] | None = None  # lists: the element kind
    what: str = ""  # how to name the operand in an error message
    lit: str | None = None  # a string literal's value, for the enum check


_FACT_KIND: dict[str, Literal["bool", "num", "str", "date", "codes"]] = {
    "number": "num",
    "integer": "num",
    "boolean": "bool",
    "enum": "str",
    "string": "str",
    "date": "date",
    "codes": "codes",
}

_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ORDER_OPS = frozenset({"<", "<=", ">", ">="})

_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Converter:
    """Turns a Python AST into the whitelisted tree, checking types as it goes."""

    def __init__(self, text: str, facts: Mapping[str, FactSpec], params: Mapping[str, ParamValue]) -> None:
        self.text = text
        self.facts = facts
        self.params = params
        self.fact_names: dict[str, None] = {}  # insertion-ordered set
        self.param_names: dict[str, None] = {}

    def seg(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.dump(node)

    def syntax(self, node: ast.AST, why: str) -> RuleSyntaxError:
        return RuleSyntaxError(f"{why}: {self.seg(node)!r} in rule {self.text!r}")

    def type_error(self, node: ast.AST, why: str) -> RuleTypeError:
        return RuleTypeError(f"{why}: {self.seg(node)!r} in rule {self.text!r}")

    # -- conversion ---------------------------------------------------------------------------------------

    def convert(self, node: ast.AST, depth: int = 0) -> tuple[Node, _Ty]:
        if depth > _MAX_DEPTH:
            raise self.syntax(node, "expression nested too deeply")
        d = depth + 1
        if isinstance(node, ast.BoolOp):
            parts = [self.expect_bool(v, d) for v in node.values]
            if isinstance(node.op, ast.And):
                return And(tuple(parts)), _Ty("bool", what=self.seg(node))
            return Or(tuple(parts)), _Ty("bool", what=self.seg(node))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return Not(self.expect_bool(node.operand, d)), _Ty("bool", what=self.seg(node))
            if isinstance(node.op, ast.USub | ast.UAdd):
                inner, ty = self.convert(node.operand, d)
                if ty.kind != "num":
                    raise self.type_error(node, "unary sign on a non-number")
                if isinstance(node.op, ast.UAdd):
                    return inner, ty
                if isinstance(inner, Lit) and not isinstance(inner.value, bool | str):
                    return Lit(-inner.value), _Ty("num", what=self.seg(node))
                return Arith("-", Lit(0), inner), _Ty("num", what=self.seg(node))
            raise self.syntax(node, "operator not allowed")
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, ast.Add | ast.Sub):
                raise self.syntax(node, "only + and - are allowed")
            left, lty = self.convert(node.left, d)
            right, rty = self.convert(node.right, d)
            if lty.kind != "num" or rty.kind != "num":
                raise self.type_error(node, "arithmetic on a non-number")
            op = "+" if isinstance(node.op, ast.Add) else "-"
            return Arith(op, left, right), _Ty("num", what=self.seg(node))
        if isinstance(node, ast.Compare):
            return self.compare(node, d)
        if isinstance(node, ast.Call):
            return self.call(node, d)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                return Lit(value), _Ty("bool", what=self.seg(node))
            if isinstance(value, int | float):
                return Lit(value), _Ty("num", what=self.seg(node))
            if isinstance(value, str):
                return Lit(value), _Ty("str", what=self.seg(node), lit=value)
            raise self.syntax(node, "literal not allowed")
        if isinstance(node, ast.List | ast.Tuple):
            raise self.syntax(node, "a list is only allowed on the right of 'in'")
        raise self.syntax(node, f"{type(node).__name__} not allowed")

    def expect_bool(self, node: ast.AST, depth: int) -> Node:
        out, ty = self.convert(node, depth)
        if ty.kind != "bool":
            raise self.type_error(node, "not a true/false expression")
        return out

    def name(self, node: ast.Name) -> tuple[Node, _Ty]:
        ident = node.id
        if ident in ("true", "True"):
            return Lit(True), _Ty("bool", what=ident)
        if ident in ("false", "False"):
            return Lit(False), _Ty("bool", what=ident)
        if ident in self.facts:
            spec = self.facts[ident]
            self.fact_names[ident] = None
            values = frozenset(spec.values) if spec.type == "enum" and spec.values else None
            return Fact(ident), _Ty(_FACT_KIND[spec.type], values=values, what=f"fact {ident!r}")
        if ident in self.params:
            self.param_names[ident] = None
            return _param_node(ident, self.params[ident], self, node)
        raise self.type_error(node, "undeclared name (not a declared fact or parameter)")

    def call(self, node: ast.Call, depth: int) -> tuple[Node, _Ty]:
        if not (isinstance(node.func, ast.Name) and node.func.id == "count_true"):
            raise self.syntax(node, "function call not allowed (only count_true)")
        if node.keywords or not node.args or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.syntax(node, "count_true takes one or more plain arguments")
        parts = tuple(self.expect_bool(a, depth) for a in node.args)
        return CountTrue(parts), _Ty("num", what=self.seg(node))

    def compare(self, node: ast.Compare, depth: int) -> tuple[Node, _Ty]:
        pieces: list[Node] = []
        left_ast: ast.expr = node.left
        left, lty = self.convert(left_ast, depth)
        for op_ast, right_ast in zip(node.ops, node.comparators, strict=True):
            op = _CMP_OPS.get(type(op_ast))
            if op is None:
                raise self.syntax(node, "comparison operator not allowed (no 'is')")
            if op in ("in", "not in"):
                right, rty = self.membership_rhs(right_ast)
                self.check_membership(node, lty, rty)
            else:
                right, rty = self.convert(right_ast, depth)
                self.check_compare(node, op, lty, rty)
            pieces.append(Cmp(op, left, right))
            left, lty, left_ast = right, rty, right_ast
        if len(pieces) == 1:
            return pieces[0], _Ty("bool", what=self.seg(node))
        return And(tuple(pieces)), _Ty("bool", what=self.seg(node))

    def membership_rhs(self, node: ast.expr) -> tuple[Node, _Ty]:
        if isinstance(node, ast.List | ast.Tuple):
            items: list[int | float | str] = []
            for elt in node.elts:
                lit = _literal_of(elt)
                if lit is None:
                    raise self.syntax(elt, "list items must be number or string literals")
                items.append(lit)
            return ListLit(tuple(items)), _list_ty(tuple(items), self, node)
        if isinstance(node, ast.Name):
            out, ty = self.name(node)
            if ty.kind in ("list", "codes"):
                return out, ty
            raise self.type_error(node, "'in' needs a list literal, a list parameter or a codes fact")
        raise self.syntax(node, "'in' needs a list literal, a list parameter or a codes fact")

    def check_membership(self, node: ast.AST, lty: _Ty, rty: _Ty) -> None:
        if rty.kind == "codes":
            if lty.kind != "str":
                raise self.type_error(node, f"only a string can be looked up in {rty.what}")
            return
        if lty.kind not in ("num", "str"):
            raise self.type_error(node, f"{lty.what} cannot be looked up in a list")
        if rty.elem == "empty":
            return
        if rty.elem != lty.kind:
            raise self.type_error(node, f"list items do not match the type of {lty.what}")
        if lty.values is not None and isinstance(rty.values, frozenset):
            unknown = sorted(rty.values - lty.values)
            if unknown:
                raise self.type_error(node, f"{unknown} not among the values of {lty.what}")

    def check_compare(self, node: ast.AST, op: str, lty: _Ty, rty: _Ty) -> None:
        if lty.kind in ("codes", "list") or rty.kind in ("codes", "list"):
            raise self.type_error(node, "a list can only be used with 'in'")
        if lty.kind != rty.kind:
            raise self.type_error(
                node, f"cannot compare {lty.what} ({lty.kind}) with {rty.what} ({rty.kind})"
            )
        if op in _ORDER_OPS and lty.kind not in ("num", "date"):
            raise self.type_error(node, f"'{op}' needs numbers or dates")
        # An enum compared with a literal string that is not one of its values can never be true:
        # that is a typo in the criteria file, so refuse it rather than silently never matching.
        for a, b in ((lty, rty), (rty, lty)):
            if a.values is not None and b.lit is not None and b.lit not in a.values:
                raise self.type_error(node, f"{b.lit!r} is not one of the values of {a.what}")


def _literal_of(node: ast.expr) -> int | float | str | None:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float | str)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value
    return None


def _list_ty(items: tuple[int | float | str, ...], conv: _Converter, node: ast.AST) -> _Ty:
    if not items:
        return _Ty("list", elem="empty", what="[]")
    kinds = {"str" if isinstance(i, str) else "num" for i in items}
    if len(kinds) != 1:
        raise conv.type_error(node, "list mixes numbers and strings")
    kind: Literal["num", "str"] = "str" if kinds == {"str"} else "num"
    values = frozenset(str(i) for i in items) if kind == "str" else None
    return _Ty("list", elem=kind, values=values, what="list")


def _param_node(name: str, value: ParamValue, conv: _Converter, node: ast.AST) -> tuple[Node, _Ty]:
    what = f"parameter {name!r}"
    if isinstance(value, bool):
        return Lit(value), _Ty("bool", what=what)
    if isinstance(value, int | float):
        return Lit(value), _Ty("num", what=what)
    if isinstance(value, str):
        return Lit(value), _Ty("str", what=what, lit=value)
    if isinstance(value, list | tuple):
        items: list[int | float | str] = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int | float | str):
                raise conv.type_error(node, f"{what} holds a non-literal item {item!r}")
            items.append(item)
        ty = _list_ty(tuple(items), conv, node)
        return ListLit(tuple(items)), _Ty("list", elem=ty.elem, values=ty.values, what=what)
    raise conv.type_error(node, f"{what} has an unsupported value {value!r}")


# --------------------------------------------------------------------------------------------------------
# Closure compilation. Each function takes the fact mapping and returns a value, or None for "unknown".

Env: TypeAlias = Mapping[str, Any]
Fn: TypeAlias = Callable[[Env], Any]


def _build(node: Node) -> Fn:
    if isinstance(node, Lit):
        value = node.value
        return lambda env: value
    if isinstance(node, Fact):
        name = node.name
        return lambda env: env.get(name)
    if isinstance(node, Not):
        inner = _build(node.operand)

        def not_(env: Env) -> bool | None:
            v = inner(env)
            return None if v is None else not v

        return not_
    if isinstance(node, And):
        return _build_and(tuple(_build(p) for p in node.operands))
    if isinstance(node, Or):
        return _build_or(tuple(_build(p) for p in node.operands))
    if isinstance(node, Cmp):
        return _build_cmp(node)
    if isinstance(node, Arith):
        left, right = _build(node.left), _build(node.right)
        plus = node.op == "+"

        def arith(env: Env) -> float | None:
            a = left(env)
            if a is None:
                return None
            b = right(env)
            if b is None:
                return None
            return a + b if plus else a - b

        return arith
    if isinstance(node, CountTrue):
        parts = tuple(_build(p) for p in node.operands)

        def count(env: Env) -> int | None:
            n = 0
            for part in parts:
                v = part(env)
                if v is None:
                    return None
                if v:
                    n += 1
            return n

        return count
    raise TypeError(f"cannot build {node!r}")  # pragma: no cover - the converter only makes the above


def _build_junction(parts: tuple[Fn, ...], decisive: bool) -> Fn:
    """Kleene `and` (decisive=False) or `or` (decisive=True): the decisive value wins even over unknowns."""
    if len(parts) == 2:  # the common case, kept free of loops on the hot path
        a, b = parts

        def pair(env: Env) -> bool | None:
            x = a(env)
            if x is decisive:
                return decisive
            y = b(env)
            if y is decisive:
                return decisive
            return None if x is None or y is None else not decisive

        return pair

    def many(env: Env) -> bool | None:
        unknown = False
        for part in parts:
            v = part(env)
            if v is decisive:
                return decisive
            if v is None:
                unknown = True
        return None if unknown else not decisive

    return many


def _build_and(parts: tuple[Fn, ...]) -> Fn:
    return _build_junction(parts, decisive=False)


def _build_or(parts: tuple[Fn, ...]) -> Fn:
    return _build_junction(parts, decisive=True)


def _build_cmp(node: Cmp) -> Fn:
    if node.op in ("in", "not in"):
        negate = node.op == "not in"
        left = _build(node.left)
        if isinstance(node.right, ListLit):
            members = frozenset(node.right.items)
            if isinstance(node.left, Fact):
                name = node.left.name

                def in_list_fact(env: Env) -> bool | None:
                    v = env.get(name)
                    if v is None:
                        return None
                    return (v in members) is not negate

                return in_list_fact

            def in_list(env: Env) -> bool | None:
                v = left(env)
                if v is None:
                    return None
                return (v in members) is not negate

            return in_list
        right = _build(node.right)

        def in_codes(env: Env) -> bool | None:
            v = left(env)
            if v is None:
                return None
            codes = right(env)
            if codes is None:
                return None
            return (v in codes) is not negate

        return in_codes

    op = _PY_OPS[node.op]
    # The common shape is "fact <op> constant"; give it a closure with one dictionary lookup.
    if isinstance(node.left, Fact) and isinstance(node.right, Lit):
        name, const = node.left.name, node.right.value

        def fact_cmp(env: Env) -> bool | None:
            v = env.get(name)
            if v is None:
                return None
            return op(v, const)

        return fact_cmp
    left, right = _build(node.left), _build(node.right)

    def cmp(env: Env) -> bool | None:
        a = left(env)
        if a is None:
            return None
        b = right(env)
        if b is None:
            return None
        return op(a, b)

    return cmp


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A type-checked rule ready to evaluate; ``names`` are the facts it reads, in order of appearance."""

    text: str
    tree: Node
    names: tuple[str, ...]
    params_used: tuple[str, ...]
    params: Mapping[str, ParamValue]
    _fn: Fn = field(repr=False, compare=False)

    def evaluate(self, facts: Mapping[str, Any]) -> Truth:
        """Evaluate against (coerced) facts; a missing fact counts as unknown."""
        return _TRUTH_OF[self.evaluate_raw(facts)]

    def evaluate_raw(self, facts: Mapping[str, Any]) -> bool | None:
        """Evaluate to ``True``/``False``/``None`` (unknown), the engine's fast path."""
        try:
            value = self._fn(facts)
        except TypeError:
            # Only reachable when a fact has the wrong Python type (validate_facts was skipped): such a fact
            # tells us nothing, so the answer is unknown rather than an exception in the middle of a decision.
            return None
        return None if value is None else bool(value)


def compile_rule(
    text: str,
    *,
    facts: Mapping[str, FactSpec],
    params: Mapping[str, ParamValue] | None = None,
) -> CompiledRule:
    """Parse, whitelist and type-check rule text against declared facts and parameters."""
    params = dict(params or {})
    if not isinstance(text, str) or not text.strip():
        raise RuleSyntaxError(f"empty rule {text!r}")
    if len(text) > _MAX_RULE_CHARS:
        raise RuleSyntaxError(f"rule longer than {_MAX_RULE_CHARS} characters: {text[:60]!r}...")
    for name in params:
        if name in RESERVED_NAMES or name in facts:
            raise RuleTypeError(f"parameter {name!r} shadows a fact or a reserved name in rule {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise RuleSyntaxError(f"not a valid expression: {text!r} ({exc.__class__.__name__})") from None
    conv = _Converter(text.strip(), facts, params)
    node, ty = conv.convert(tree.body)
    if ty.kind != "bool":
        raise RuleTypeError(f"rule is not a true/false expression: {text!r}")
    return CompiledRule(
        text=text,
        tree=node,
        names=tuple(conv.fact_names),
        params_used=tuple(conv.param_names),
        params=dict(params),
        _fn=_build(node),
    )


def kleene_and(values: Sequence[bool | None]) -> bool | None:
    """Reference Kleene conjunction (used by tests and by callers combining results)."""
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def kleene_or(values: Sequence[bool | None]) -> bool | None:
    """Reference Kleene disjunction."""
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False
