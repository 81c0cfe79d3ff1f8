"""The docs name only what the repository has: every path written in backticks in README.md and docs/ that starts
at one of the repository's top folders exists (a renamed or deleted module fails here, not in a reader's hands)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP = ("platform/", "plugins/", "tests/", "web/", "docs/", "bench/", "examples/", ".ci/")
PATH = re.compile(r"`([A-Za-z0-9_.\-/]+)`")


def named_paths():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for found in PATH.findall(line):
                if found.startswith(TOP) and "*" not in found and "<" not in found:
                    yield doc.relative_to(ROOT), number, found.rstrip(".,:")


def test_every_path_the_docs_name_exists():
    missing = [f"{doc}:{number}: {path}" for doc, number, path in named_paths() if not (ROOT / path).exists()]
    assert missing == []


DOTTED = re.compile(r"`(hookyard(?:_[a-z]+)?(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _resolves(dotted: str) -> bool:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_module_and_name_the_docs_mention_exists():
    """`hookyard.sweeper.sweep`, `hookyard_circle.client`, …: each names a module, or a name in one, that exists."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for found in DOTTED.findall(line):
                if not _resolves(found):
                    missing.append(f"{doc.relative_to(ROOT)}:{number}: {found}")
    assert missing == []
