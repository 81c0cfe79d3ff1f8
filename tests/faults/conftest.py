"""The fault-injection suite (docs/guarantees.md): each test records its figures here, and they are
printed at the end of the run, so the numbers in the docs come from a run anyone can repeat."""

from __future__ import annotations

import pytest

FIGURES: dict[str, dict] = {}


@pytest.fixture
def figures(request):
    """figures["key"] = value: recorded under the test's name and printed in the summary."""
    name = request.node.name
    FIGURES[name] = {}
    return FIGURES[name]


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("delivery guarantees: figures")
    for test, values in FIGURES.items():
        if values:
            shown = ", ".join(f"{k} {v}" for k, v in values.items())
            terminalreporter.write_line(f"{test}: {shown}")
