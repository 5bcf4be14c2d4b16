"""The shape of the core, as its imports draw it: no circle of imports (none hidden inside a function or behind
TYPE_CHECKING), and the models and stages handed their backend instead of looking it up in the registry."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "synth_assets"
REGISTRY = {"synth_assets.plugins", "synth_assets.project"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> the synth_assets modules it imports anywhere in its text (functions included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synth_assets"):
                # `from synth_assets import files` imports a module; `from synth_assets.x import y` imports x
                found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
                if node.module in modules and node.module != "synth_assets":
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in modules}
        graph[name] = found - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_the_core_has_no_import_circles():
    graph = imports()
    assert "synth_assets.files" in graph["synth_assets.storage"]  # the reading sees imports at all
    assert circles(graph) == []


def test_the_models_and_the_stages_do_not_look_backends_up():
    graph = imports()
    for module in ("synth_assets.config", "synth_assets.options", *(m for m in graph if ".stages." in m)):
        assert not graph[module] & REGISTRY, module


def test_a_circle_is_found_wherever_its_import_hides():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_stages_write_their_outputs_through_the_layout_that_pushes_them():
    """Every stage writes through `DatasetPaths.output` / `new_version` / `shared_part`, which push to the object
    store on success: no stage calls a push of its own, which a new stage could forget (tests/test_object_store.py
    runs each stage from an empty disk, finding its inputs in the store)."""
    source = (PACKAGE / "pipeline.py").read_text() + (PACKAGE / "assets.py").read_text()
    assert not [line for line in source.splitlines()
                if ".push(" in line or ".push_version(" in line or "atomic_dir(" in line or "releases(" in line
                and ".write(" in line]


def test_the_readme_and_the_docs_link_to_what_exists_and_the_readme_example_loads():
    import re

    import yaml

    from synth_assets.project import parse_project

    repo = PACKAGE.parent
    pages = [repo / "README.md", *(repo / "docs").glob("*.md")]
    broken = [(page.name, target) for page in pages
              for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
              if not target.startswith(("http", "data:")) and not (page.parent / target).exists()]
    assert broken == []
    example = re.search(r"```yaml\n(.*?)```", (repo / "README.md").read_text(), re.S).group(1)
    assert set(parse_project(yaml.safe_load(example)).datasets) == {"diamonds", "panel"}
