"""Guards for the source layout: `platform/` is a source root and must never shadow the stdlib."""

import platform
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_folder_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_import_platform_is_the_standard_library():
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert platform.system()


def test_import_platform_from_the_repository_root_is_still_the_standard_library():
    # The trap bites when the repository root comes first on sys.path, as it does for `python -c` here.
    out = subprocess.run(
        [sys.executable, "-c", "import platform, redis, rq; print(platform.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert not Path(out).resolve().is_relative_to(ROOT)


def test_no_tests_or_conftest_under_the_source_root():
    found = [p for p in (ROOT / "platform").rglob("*.py") if p.name.startswith("test_") or p.name == "conftest.py"]
    assert found == []


def _imports(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_web_ui_and_the_plugins_sit_on_the_request_scoped_core_not_on_the_api():
    """Each layer imports only downward: the UI and the API both use hookyard.requestctx; neither imports the other,
    and no plugin reaches into the API's internals."""
    offenders = {}
    for folder in ("web", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            bad = sorted(m for m in _imports(path) if m == "hookyard.api" or m.startswith("hookyard.api."))
            if bad:
                offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}
    api_files = (ROOT / "platform" / "hookyard" / "api").rglob("*.py")
    assert not [p for p in api_files if any(m.startswith("hookyard_web") for m in _imports(p))]


def _core_graph() -> dict[str, set[str]]:
    """Module-level imports between the core's modules (imports inside functions are deliberate late binding)."""
    import ast

    package = ROOT / "platform" / "hookyard"
    graph = {}
    for path in package.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    target = f"{base}.{node.module}" if node.module else base
                    found.add(target)
                    if not node.module:
                        found.update(f"{base}.{alias.name}" for alias in node.names)
                elif node.module and node.module.startswith("hookyard"):
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("hookyard"))
        graph[name] = found
    return {name: {t for t in targets if t in graph and t != name} for name, targets in graph.items()}


def test_the_core_has_no_import_cycle():
    """E.g. the worker process, the sweeper, the jobs and the enqueue policy each import only downward."""
    graph = _core_graph()
    assert {"hookyard.worker", "hookyard.sweeper", "hookyard.jobs", "hookyard.jobqueue"} <= set(graph)
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
