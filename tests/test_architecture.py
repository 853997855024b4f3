"""The architecture rules of issue "one campaign round, seen whole", checked on the source (imports read by ast):
mfal never imports flows, no module is over 450 lines, no import cycles between mfal modules, and the
run options are not read from the environment inside mfal."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
MAX_LINES = 450


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported(node: ast.AST) -> set[str]:
    """Module names one import statement names (``from a import b`` -> a, a.b); nothing for other nodes."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return set()


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (top level and inside functions)."""
    return {name for node in ast.walk(ast.parse(path.read_text())) for name in _imported(node)}


def test_mfal_never_imports_flows():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _modules("mfal").values()
        for name in sorted(_imports(path))
        if name == "flows" or name.startswith("flows.")
    ]
    assert not offenders, "\n".join(offenders)


def test_no_module_is_over_the_size_limit():
    big = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for package in ("mfal", "flows")
        for path in _modules(package).values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not big, "\n".join(big)


def _import_time_imports(path: Path) -> set[str]:
    """Module names imported when ``path`` is imported: module level, outside ``if TYPE_CHECKING:``."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text()).body)
    while body:
        node = body.pop(0)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            body.extend(node.orelse)
            continue
        if isinstance(node, ast.If | ast.Try):
            body.extend(getattr(node, "body", []) + getattr(node, "orelse", []))
        names |= _imported(node)
    return names


def test_no_import_cycles_between_mfal_modules():
    mods = _modules("mfal")
    # a package's __init__ re-exporting its submodules is its face, not a dependency of them
    graph = {
        name: {
            m
            for m in _import_time_imports(path)
            if m in mods and m != name and not name.startswith(m + ".") and not m.startswith(name + ".")
        }
        for name, path in mods.items()
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_mfal_reads_no_run_options_from_the_environment():
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in _modules("mfal").values()
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if "MFAL_DEVICE" in line or "MFAL_PROGRESS" in line
    ]
    assert not offenders, "\n".join(offenders)
