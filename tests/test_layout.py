"""The runtime's shape (docs/architecture.md): small modules, short functions, few parameters
(the TensorFlow-free import is checked in test_api.py)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lulc_edge"
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 8


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_runtime_module_is_a_hub():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_functions_are_short_and_take_few_parameters():
    bad = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            params = [x for x in a.posonlyargs + a.args + a.kwonlyargs
                      if x.arg not in ("self", "cls")] + [x for x in (a.vararg, a.kwarg) if x]
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES or len(params) > MAX_PARAMETERS:
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} "
                           f"({length} lines, {len(params)} parameters)")
    assert not bad, "\n".join(bad)
