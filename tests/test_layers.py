"""The package is layered: every module imports only from its own layer or lower ones, and no two subpackages or
modules import each other in a circle. Imports inside functions (and under ``TYPE_CHECKING``) count: a cycle
hidden in a function body is still a cycle.

The order, lowest first, is :data:`LAYERS` (one per subpackage). ``scoremix_ds/__init__.py`` and ``__main__.py``
are entry points, exempt; library modules may take only ``__version__`` from the top package, and its lazy table
may name only public functions and classes of the layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = "scoremix_ds"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

LAYERS = ["core", "maths", "dataset", "hub", "sources", "generators", "discriminators", "sampling", "synthesis",
          "analysis", "evaluation", "training", "reproduce", "cli"]
RANK = {name: rank for rank, name in enumerate(LAYERS)}
ENTRY_POINTS = {PACKAGE, f"{PACKAGE}.__main__"}
FROM_TOP_PACKAGE = {"__version__"}   # the only names a library module may take from scoremix_ds/__init__.py


def _modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool,
             modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """The scoremix_ds modules one import statement reaches, each with the name taken from it (or None)."""
    found = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                found.append((alias.name, None))
        return [(_existing(t, modules), name) for t, name in found]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target != PACKAGE and not target.startswith(PACKAGE + "."):
        return []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.append((sub, None) if sub in modules else (target, alias.name))
    return [(_existing(t, modules), name) for t, name in found]


def _existing(target: str, modules: dict[str, Path]) -> str:
    while target not in modules and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def import_graph(root: Path = ROOT) -> dict[str, list[tuple[str, str | None, int]]]:
    """module -> [(imported module, name taken from it or None, line)], every import statement in the file."""
    modules = _modules(root)
    graph: dict[str, list[tuple[str, str | None, int]]] = defaultdict(list)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target, name in _targets(module, node, path.name == "__init__.py", modules):
                    if target != module:
                        graph[module].append((target, name, node.lineno))
    return graph


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and module not in ENTRY_POINTS else None


def upward_imports(graph) -> list[str]:
    problems = []
    for module, edges in sorted(graph.items()):
        if module in ENTRY_POINTS:
            continue
        own = layer(module)
        if own not in RANK:
            problems.append(f"{module} is in no layer (add its folder to LAYERS)")
            continue
        for target, name, line in edges:
            if target == PACKAGE:
                if name not in FROM_TOP_PACKAGE:
                    problems.append(f"{module}:{line} takes {name!r} from the top package (only {FROM_TOP_PACKAGE})")
                continue
            other = layer(target)
            if other == "__main__" or (other in RANK and RANK[other] > RANK[own]):
                problems.append(f"{module}:{line} imports {target} ({own} must not import from {other})")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _cycle_report(graph, group) -> list[str]:
    edges: dict[str, set[str]] = defaultdict(set)
    lines: dict[tuple[str, str], str] = {}
    for module, targets in graph.items():
        if module in ENTRY_POINTS:
            continue
        for target, _name, line in targets:
            if target in ENTRY_POINTS:
                continue
            a, b = group(module), group(target)
            if a != b:
                edges[a].add(b)
                lines.setdefault((a, b), f"{module}:{line} -> {target}")
    report = []
    for component in cycles(edges):
        members = set(component)
        inside = [lines[(a, b)] for a in component for b in sorted(edges[a]) if b in members]
        report.append(f"cycle {component}: " + "; ".join(inside))
    return report


def test_layer_table_names_every_subpackage():
    folders = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS), f"folders without a layer: {folders - set(LAYERS)}; stale: {set(LAYERS) - folders}"


def test_no_module_imports_from_a_higher_layer():
    problems = upward_imports(import_graph())
    assert not problems, "imports from a higher layer:\n" + "\n".join(problems)


def test_no_cycle_between_subpackages():
    report = _cycle_report(import_graph(), lambda m: ".".join(m.split(".")[:2]))
    assert not report, "\n".join(report)


def test_no_cycle_between_modules():
    report = _cycle_report(import_graph(), lambda m: m)
    assert not report, "\n".join(report)


def test_lazy_table_names_only_public_api():
    tree = ast.parse((ROOT / "__init__.py").read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets))
    lazy = ast.literal_eval(table)
    modules = _modules()
    for public, (module, attr) in lazy.items():
        assert not public.startswith("_") and not attr.startswith("_"), (public, attr)
        assert module in modules and layer(module) in RANK, f"{public}: {module} is not a library module"
        assert not any(part.startswith("_") for part in module.split(".")), f"{public}: {module} is private"
        defined = {node.name for node in ast.parse(modules[module].read_text()).body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        assert attr in defined, f"{public}: {module} defines no function or class {attr!r}"


# The checks themselves: each fails on the mistake it exists for.

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_an_upward_import_inside_a_function_is_named(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "core/__init__.py": "", "cli/__init__.py": "", "cli/app.py": "X = 1\n",
        "core/ok.py": "from . import other\n", "core/other.py": "",
        "core/bad.py": "def f():\n    from ..cli.app import X\n    return X\n",
    })
    problems = upward_imports(import_graph(root))
    assert problems == [f"{PACKAGE}.core.bad:2 imports {PACKAGE}.cli.app (core must not import from cli)"]


def test_a_hidden_cycle_between_modules_is_named(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "core/__init__.py": "",
        "core/a.py": "from .b import g\n",
        "core/b.py": "def g():\n    from .a import f\n",
    })
    report = _cycle_report(import_graph(root), lambda m: m)
    assert len(report) == 1 and f"{PACKAGE}.core.a" in report[0] and f"{PACKAGE}.core.b:2" in report[0]


def test_taking_more_than_the_version_from_the_top_package_is_named(tmp_path):
    root = _tree(tmp_path, {
        "__init__.py": "", "core/__init__.py": "",
        "core/a.py": "from .. import __version__\nfrom scoremix_ds import ScoreMixPipeline\n",
    })
    problems = upward_imports(import_graph(root))
    assert len(problems) == 1 and "ScoreMixPipeline" in problems[0] and ":2 " in problems[0]

