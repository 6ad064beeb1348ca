"""The shape of the code: no import cycles (imports inside functions included), no long
functions. These keep the code a newcomer reads in the order it runs."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "enet"
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The enet modules a file imports, at any depth of its code."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
                elif base in modules:
                    found.add(base)
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    for module in list(found):
        parts = module.split(".")
        found |= {
            ".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in modules
        }
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is how packages work
            if node == nxt.rsplit(".", 1)[0] or nxt == node.rsplit(".", 1)[0]:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if state.get(nxt) is None and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_longer_than_80_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines})")
    assert not long, ", ".join(sorted(long))


# The commands, and what only they need (report files, plots); the layers below never import them
COMMANDS = {"enet.cli", "enet.evaluate", "enet.compare", "enet.bench", "enet.predict",
            "enet.export", "enet.lr_find", "enet.__main__", "enet.report",
            "enet.report.aggregate", "enet.report.plots", "enet.report.files"}  # fmt: skip


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_layers_below_the_commands_import_none_of_them():
    """enet.train, enet.data and enet.models (and what they import) reach no command module:
    the training loop runs without the report code or matplotlib (issue 32)."""
    graph = import_graph()
    lower = [
        m for m in graph if m.split(".")[1:2] and m.split(".")[1] in ("train", "data", "models")
    ]
    assert lower
    upward = {m: sorted(_reach(graph, m) & COMMANDS) for m in lower}
    assert not {m: up for m, up in upward.items() if up}
    import subprocess
    import sys

    # neither the loop nor the report's pure part (aggregation, records) loads matplotlib
    for module in ("enet.train.loop", "enet.report.aggregate"):
        code = f"import sys, {module}; print('matplotlib' in sys.modules)"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.stdout.strip() == "False", (module, proc.stderr)
