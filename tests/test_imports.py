"""The package's import graph, read from the source with `ast` (every import statement,
at the top of a module or inside a function): no circles, the house order's lower part
(foundations -> ops -> model core -> tasks -> everything else) never imported upwards,
and no module importing another module's private (_underscore) names."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tinyinduction"

# The house order, lowest first (DEVELOPERS.md): a module may import from its own level and
# below. Modules not named here sit above tasks/ (training, measures, experiments, ...);
# among those only circles are forbidden.
LEVELS = [
    {"config", "checks", "jsonio", "batches", "paths", "blas", "memory"},   # foundations
    {"ops"},
    {"params", "cache", "clamp", "plan", "forward", "backward", "model"},  # the model core
    {"tasks"},
]


def _modules() -> dict:
    """Dotted module name (without 'tinyinduction.') -> its source file."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path):
    """(imported package module, imported names, line) for every import in the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tinyinduction."):
                    yield alias.name.removeprefix("tinyinduction."), [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module == "tinyinduction" or (node.module or "").startswith("tinyinduction."):
                target = node.module.removeprefix("tinyinduction").lstrip(".")
            else:
                continue
            names = [alias.name for alias in node.names]
            for imported in names:   # `from . import ops` imports the module ops
                submodule = f"{target}.{imported}".lstrip(".")
                if submodule in MODULES:
                    yield submodule, [], node.lineno
            yield target, names, node.lineno


# (the package's own __init__, "", runs before any of its modules: not an edge)
GRAPH = {name: {target for target, _, _ in _imports(name, path) if target in MODULES and target not in (name, "")}
         for name, path in MODULES.items()}


def _level(module: str):
    for level, members in enumerate(LEVELS):
        if module in members or module.split(".")[0] in members:
            return level
    return len(LEVELS)


def _cycles(graph) -> list:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    assert "ops" in GRAPH["forward"] and "config" in GRAPH["params"]
    assert "checks" in GRAPH["tasks.features"]


def test_no_import_circles():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_points_up_the_house_order():
    upward = [(module, target) for module, targets in GRAPH.items() for target in targets
              if _level(target) > _level(module)]
    assert upward == []


def test_no_module_imports_another_modules_private_names():
    private = [(name, target, imported, line)
               for name, path in MODULES.items()
               for target, names, line in _imports(name, path)
               for imported in names
               if imported.startswith("_") and not imported.startswith("__")]
    assert private == []
