"""The package's module graph: every module imports, no in-package import cycles, no library -> app imports.

The cycle check reads the imports that run when a module is imported (module level, class bodies,
``if``/``try`` blocks; not function bodies and not ``if TYPE_CHECKING:``) with ``ast``, so a cycle
cannot hide behind import order; a second check imports every module in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import brainvis_hf

PACKAGE_DIR = Path(brainvis_hf.__file__).resolve().parent
ROOT = "brainvis_hf"

# The applications that live inside the package: only the CLI and the apps themselves may import them.
APP_PACKAGE = "brainvis_hf.apps"
APP_MODULES = {"brainvis_hf.apps.demo", "brainvis_hf.apps.demo_report", "brainvis_hf.apps.generate_folder"}
APP_IMPORTERS_PREFIXES = ("brainvis_hf.cli",)


def _package_modules() -> dict[str, Path]:
    """Module name -> file, for every module inside a package (folders with ``__init__.py``)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR)
        if not all((PACKAGE_DIR / Path(*rel.parts[:i]) / "__init__.py").is_file() for i in range(len(rel.parts))):
            continue  # e.g. evaluation/modules/<name>/<name>.py: `evaluate` scripts loaded by path
        parts = [ROOT, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


MODULES = _package_modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, *, in_functions: bool):
    """The import statements of a module that can run (never ``if TYPE_CHECKING:`` ones); with
    ``in_functions=False`` only those that run on import (not inside function bodies)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if not in_functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """In-package modules an import statement of ``module`` loads."""
    is_package = MODULES[module].name == "__init__.py"
    names: set[str] = set()
    if isinstance(node, ast.Import):
        names.update(alias.name for alias in node.names)
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names.add(prefix)
        names.update(f"{prefix}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        if name not in MODULES:
            continue
        # importing a.b.c first imports a and a.b; the importer's own parents are already loading
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            target = ".".join(parts[:i])
            if target in MODULES and not module.startswith(target + ".") and target != module:
                found.add(target)
    return found


def _graph(*, in_functions: bool) -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[module] = set().union(*(_targets(module, n) for n in _import_nodes(tree, in_functions=in_functions)))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_module_list_covers_the_package():
    assert {"brainvis_hf", "brainvis_hf.models.modeling_brainvis", "brainvis_hf.pipelines.assemble",
            "brainvis_hf.training.lora", "brainvis_hf.training.stages"} <= set(MODULES)
    assert APP_MODULES <= set(MODULES), "an app module moved: update APP_MODULES"
    # every app lives under brainvis_hf/apps/ and nothing else does
    assert {m for m in MODULES if m.startswith(APP_PACKAGE + ".")} == APP_MODULES


def test_no_import_cycles_at_import_time():
    assert _cycles(_graph(in_functions=False)) == []


def test_no_import_cycles_hidden_in_functions():
    """Counting imports inside functions too (such imports once hid assemble <-> pipeline_brainvis
    and lora <-> stages cycles)."""
    assert _cycles(_graph(in_functions=True)) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_library_modules_do_not_import_the_apps():
    """(The root package's lazy ``run_demo`` export is a name lookup on first use, not an import.)"""
    graph = _graph(in_functions=True)
    apps = APP_MODULES | {APP_PACKAGE}
    offenders = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets & apps
        if module not in apps and not module.startswith(APP_IMPORTERS_PREFIXES)
    )
    assert offenders == []


def test_every_module_imports_in_a_fresh_interpreter():
    modules = sorted(m for m in MODULES if not m.endswith("__main__"))
    code = (
        "import importlib, sys, traceback\n"
        f"failed = []\nfor name in {modules!r}:\n"
        "    try:\n        importlib.import_module(name)\n"
        "    except Exception:\n        failed.append(name + ': ' + traceback.format_exc(limit=1).strip().splitlines()[-1])\n"
        "print('\\n'.join(failed)); sys.exit(1 if failed else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_copied_from_comments_name_real_objects():
    """``# Copied from X`` / ``# Adapted from X`` comments name an object that exists."""
    import importlib
    import re

    pattern = re.compile(r"#\s*(?:Copied|Adapted) from ([A-Za-z_][\w.]*)")
    missing = []
    for path in MODULES.values():
        for dotted in pattern.findall(path.read_text()):
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                try:
                    for attr in parts[cut:]:
                        obj = getattr(obj, attr)
                except AttributeError:
                    missing.append(dotted)
                break
            else:
                missing.append(dotted)
    assert missing == []
