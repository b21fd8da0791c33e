"""Filters of a long targets table, checked before pandas sees them: columns and constants only.

A filter such as ``"stype == 'E' and enroll > 500"`` is evaluated by pandas on the records; but
pandas' expressions can reach the caller's variables (``@name``), call methods (``col.to_csv(...)``
writes a file) and index objects. A filter here may only hold the records' columns (bare, or in
backticks), constants (numbers, strings, ``True``/``False``/``None``, lists or tuples of them),
comparisons (``== != < <= > >=``, ``in``, ``not in``), ``and``/``or``/``not``, ``& | ~`` and
arithmetic; anything else is refused before evaluation, by name. pandas then evaluates it with
no variables of the caller in reach.
"""

from __future__ import annotations

import ast
import re
from typing import Any

__all__ = ["checked_filter", "evaluate_filter"]

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Invert, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow, ast.FloorDiv,
    ast.BitAnd, ast.BitOr, ast.BitXor, ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt,
    ast.GtE, ast.In, ast.NotIn, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple,
)
_BACKTICKS = re.compile(r"`([^`]*)`")


def checked_filter(expr: str, columns: Any, where: str) -> None:
    """Raise a ``ValueError`` naming ``where`` unless ``expr`` holds only what the module
    docstring allows, and only columns of the records."""
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        name = f"_l0_column_{len(quoted)}"
        quoted[name] = match.group(1)
        return name

    refuse = (f"`{where}` has filter {expr!r}, which may only compare the records' columns "
              "with constants (and/or/not, comparisons, in, arithmetic)")
    if "@" in _BACKTICKS.sub("", expr):
        raise ValueError(f"{refuse}; got a reference to a variable ('@'): filters see the "
                         "records' columns only.")
    try:
        tree = ast.parse(_BACKTICKS.sub(placeholder, expr), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"`{where}` has filter {expr!r}, which pandas cannot evaluate on the "
                         f"records: SyntaxError: {exc.msg}.") from None
    known = {str(c) for c in columns}
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"{refuse}; got {_describe(node)}.")
        if isinstance(node, ast.Name) and quoted.get(node.id, node.id) not in known \
                and node.id not in ("True", "False", "None"):
            raise ValueError(f"`{where}` has filter {expr!r}, which names "
                             f"{quoted.get(node.id, node.id)!r}: not a column of the records.")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "a call (filters may not call functions or methods)"
    if isinstance(node, ast.Attribute):
        return f"an attribute ({node.attr!r}: filters may not reach into objects)"
    if isinstance(node, ast.Subscript):
        return "an index (filters may not index objects)"
    return f"a {type(node).__name__} expression"


def evaluate_filter(records: Any, expr: str, where: str) -> Any:
    """The mask of ``expr`` on ``records`` (checked first), with no caller variable in reach."""
    checked_filter(expr, records.columns, where)
    return records.eval(expr, local_dict={}, global_dict={})
