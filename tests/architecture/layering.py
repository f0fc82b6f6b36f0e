"""The import graph of featcodec's packages, read from the source with `ast` (nothing is imported).

Layers, lowest first: codec (features ⇄ bits) ← probes (images → encoders → features; necks, heads,
tasks) ← bench (the study and the CLI root). A module may import its own layer and the layers below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LAYERS = ("codec", "probes", "bench")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted and absolute
    line: int


def module_name(root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(root: Path, file: Path) -> Iterator[Import]:
    """Every import in `file`, at any depth (imports inside functions count: they run too)."""
    name = module_name(root, file)
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(file.read_text(), filename=str(file))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield Import(name, target, node.lineno)
            for alias in node.names:  # `from codec import ops` imports the module codec.ops
                yield Import(name, f"{target}.{alias.name}", node.lineno)


def layer_of(module: str) -> int | None:
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


def project_modules(root: Path, layers=LAYERS) -> dict[str, Path]:
    files = {}
    for layer in layers:
        for file in sorted((root / layer).rglob("*.py")):
            files[module_name(root, file)] = file
    return files


def upward_imports(root: Path, layers=LAYERS) -> list[str]:
    """'module:line imports target' for every import of a higher layer."""
    found, seen = [], set()
    for file in project_modules(root, layers).values():
        for imp in imports_of(root, file):
            src, dst = layer_of(imp.module), layer_of(imp.target)
            if src is not None and dst is not None and dst > src and (file, imp.line) not in seen:
                seen.add((file, imp.line))  # one entry per import statement
                found.append(
                    f"{file.relative_to(root)}:{imp.line} ({LAYERS[src]}) imports {imp.target} "
                    f"({LAYERS[dst]})"
                )
    return found


def import_cycles(root: Path, layers=LAYERS) -> list[list[str]]:
    """Cycles among the project's modules, through module-level imports (those that run at import time).

    Imports inside functions run later, after every module is loaded, so they cannot deadlock an import.
    """
    modules = project_modules(root, layers)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, file in modules.items():
        tree = ast.parse(file.read_text(), filename=str(file))
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        top_lines = {n.lineno for n in top_level}
        for imp in imports_of(root, file):
            if imp.line in top_lines:
                target = imp.target
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles
