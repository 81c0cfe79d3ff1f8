"""The plugin authors' documentation (docs/plugins/) is kept in step with the code: every hook, outcome constructor,
contract field and testing fixture the code has is documented where an author looks for it, nothing documented is
gone from the code, and every page is reachable from the index and from the old single page (docs/plugins.md)."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import hookyard.testing
from hookyard import hookspecs
from hookyard.contract import Action, App, Deferred, Inbound, Outcome, RunContext, TriggerType

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"  # the pointer page the old links reach
PAGES = ROOT / "docs" / "plugins"
HOOKS_DOC = PAGES / "hooks.md"
OUTCOMES_DOC = PAGES / "outcomes.md"
TESTING_DOC = PAGES / "testing.md"
INDEX_DOC = PAGES / "index.md"

HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("register_"))
# A hook's section lists these parts, each a paragraph starting with its bold label, in this order.
PARTS = ("Signature", "Arguments", "Returns", "Called")


def section(doc: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of level 2 or 3 (level 4 subsections belong to it)."""
    return re.split(r"^#{2,3} ", doc.split(f"{heading}\n", 1)[1], maxsplit=1, flags=re.MULTILINE)[0]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_for_plugin_authors(hook):
    docs = HOOKS_DOC.read_text()
    assert f"### {hook}\n" in docs, f"docs/plugins/hooks.md has no section for the {hook} hook"
    text = section(docs, f"### {hook}")
    starts = []
    for part in PARTS:
        found = re.search(rf"^\*\*{part}:\*\* \S", text, flags=re.MULTILINE)
        assert found, f"docs/plugins/hooks.md's {hook} section has no **{part}:** paragraph"
        starts.append(found.start())
    assert starts == sorted(starts), f"the {hook} section's parts are not in the order {', '.join(PARTS)}"
    # The signature shown is the whole hookspec's.
    shown = re.search(r"^\*\*Signature:\*\* `([^`]+)`", text, flags=re.MULTILINE)
    assert shown, f"docs/plugins/hooks.md's {hook} section has no **Signature:** `{hook}(...)` line"
    spec = f"{hook}{inspect.signature(getattr(hookspecs, hook))}"
    assert shown.group(1) == spec, f"docs/plugins/hooks.md shows {shown.group(1)}; the hookspec is {spec}"
    example = text.find("```python\n", starts[-1])
    assert example != -1, f"the {hook} section has no ```python example after its **Called:** paragraph"
    assert f"def {hook}(" in text[example:], f"the {hook} section's example does not implement {hook}"


def test_the_hook_reference_documents_no_hook_that_is_not_one():
    documented = re.findall(r"^### (register_\w+)", HOOKS_DOC.read_text(), flags=re.MULTILINE)
    assert sorted(documented) == HOOKS


# -- outcomes ---------------------------------------------------------------------------------------------------------


def outcome_constructors() -> list[str]:
    return sorted(
        name
        for name, attr in vars(Outcome).items()
        if isinstance(attr, (classmethod, staticmethod)) and not name.startswith("_")
    )


def parameters(func) -> list[str]:
    return [name for name in inspect.signature(func).parameters if name not in ("self", "cls")]


def documented_calls(doc: str, name: str) -> list[str]:
    """The argument lists of every ``name(...)`` written in backticks in ``doc`` (``raise name(...)`` too)."""
    return re.findall(rf"`(?:raise |return )?{re.escape(name)}\(([^`]*)\)`", doc)


def test_the_outcome_constructors_are_what_the_code_has():
    assert outcome_constructors() == ["failed", "skipped", "succeeded"]


@pytest.mark.parametrize("name", outcome_constructors())
def test_every_outcome_constructor_is_documented_with_all_its_arguments(name):
    doc = OUTCOMES_DOC.read_text()
    assert f"Outcome.{name}(" in doc, f"docs/plugins/outcomes.md does not document Outcome.{name}(...)"
    calls = documented_calls(doc, f"Outcome.{name}")
    assert calls, f"docs/plugins/outcomes.md shows no `Outcome.{name}(...)` in code"
    shown = max(calls, key=len)  # the full signature, where the page gives it
    missing = [p for p in parameters(getattr(Outcome, name)) if not re.search(rf"\b{p}\b", shown)]
    assert missing == [], f"docs/plugins/outcomes.md's Outcome.{name}({shown}) leaves out {missing}"


def test_deferred_is_documented_with_its_arguments():
    doc = OUTCOMES_DOC.read_text()
    assert "## Deferred and pacing" in doc
    calls = documented_calls(doc, "Deferred")
    assert calls, "docs/plugins/outcomes.md shows no `Deferred(...)`"
    assert [p for p in parameters(Deferred.__init__) if not any(re.search(rf"\b{p}\b", c) for c in calls)] == []
    assert "ctx.pace(" in doc


# -- the testing fixtures ---------------------------------------------------------------------------------------------


def fixtures_of(module) -> dict[str, str]:
    """{fixture name: scope} of the pytest fixtures the module defines whose name starts with hookyard_."""
    found = {}
    for attr, obj in vars(module).items():
        # pytest >= 8.4 wraps a fixture in a FixtureFunctionDefinition; older ones mark the function.
        marker = getattr(obj, "_fixture_function_marker", None) or getattr(obj, "_pytestfixturefunction", None)
        if marker is None:
            continue
        name = marker.name or attr
        if name.startswith("hookyard_"):
            found[name] = marker.scope if isinstance(marker.scope, str) else "function"
    return found


def tables(doc: str) -> list[list[list[str]]]:
    """Every Markdown table in ``doc``: its rows (the header first, the separator left out), each a list of cells."""
    found, rows = [], None
    for line in doc.splitlines():
        if not line.startswith("|"):
            rows = None
            continue
        if rows is None:
            rows = []
            found.append(rows)
        if not re.match(r"^\|[\s|:-]+\|$", line):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return found


def table_rows(doc: str) -> list[list[str]]:
    return [row for table in tables(doc) for row in table]


def test_the_testing_module_defines_the_fixtures_the_tutorial_names():
    assert {"hookyard_runtime", "hookyard_app", "hookyard_client", "hookyard_run_events", "hookyard_recorder"} <= set(
        fixtures_of(hookyard.testing)
    )


@pytest.mark.parametrize("fixture", sorted(fixtures_of(hookyard.testing)))
def test_every_fixture_of_hookyard_testing_is_documented_with_its_scope(fixture):
    scope = fixtures_of(hookyard.testing)[fixture]
    rows = {row[0]: row for row in table_rows(TESTING_DOC.read_text()) if row}
    assert f"`{fixture}`" in rows, f"docs/plugins/testing.md's fixture table has no row for {fixture}"
    shown = rows[f"`{fixture}`"][1]
    assert shown == ("test" if scope == "function" else scope), f"{fixture} is {scope}-scoped; the table says {shown}"


def test_the_fixture_table_names_no_fixture_that_is_gone():
    documented = {row[0].strip("`") for row in table_rows(TESTING_DOC.read_text()) if row[0].startswith("`hookyard_")}
    assert documented == set(fixtures_of(hookyard.testing))


# -- the contract objects' fields -------------------------------------------------------------------------------------

CONTRACT = [TriggerType, App, Action, RunContext, Inbound]


def documented_fields(cls) -> list[str]:
    """The names in the first column of the table headed "`<cls>` field", in any page of docs/plugins/."""
    headed = [
        table
        for page in sorted(PAGES.glob("*.md"))
        for table in tables(page.read_text())
        if table and table[0][0] == f"`{cls.__name__}` field"
    ]
    assert len(headed) == 1, f"docs/plugins/ should have one table headed `{cls.__name__}` field; it has {len(headed)}"
    return [name for row in headed[0][1:] for name in re.findall(r"`(\w+)[`(]", row[0])]


def public_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}


@pytest.mark.parametrize("cls", CONTRACT, ids=lambda cls: cls.__name__)
def test_every_field_of_the_contract_objects_is_in_the_reference_tables(cls):
    documented = set(documented_fields(cls))
    assert public_fields(cls) - documented == set(), f"`{cls.__name__}` fields missing from its table"
    assert documented - public_fields(cls) == set(), f"the `{cls.__name__}` table names fields it does not have"


# -- the pages and their links ----------------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(doc: Path) -> list[tuple[Path, str]]:
    """(target file, anchor) of every relative link in ``doc``; the anchor is "" when there is none."""
    found = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        found.append(((doc.parent / path).resolve() if path else doc.resolve(), anchor))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)  # no headings in code
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


def plugin_pages() -> list[Path]:
    return sorted(PAGES.glob("*.md"))


def test_the_pages_are_there():
    names = {page.name for page in plugin_pages()}
    assert {"index.md", "tutorial.md", "hooks.md", "outcomes.md", "fields.md", "settings.md"} <= names
    assert {"inbound.md", "loading.md", "testing.md"} <= names


@pytest.mark.parametrize("page", [p.name for p in plugin_pages() if p.name != "index.md"])
def test_every_page_is_linked_from_the_index(page):
    assert (PAGES / page).resolve() in {path for path, _ in links(INDEX_DOC)}, f"index.md does not link {page}"


@pytest.mark.parametrize("page", [p.name for p in plugin_pages()])
def test_every_page_is_linked_from_the_old_single_page(page):
    assert (PAGES / page).resolve() in {path for path, _ in links(PLUGINS_DOC)}, f"plugins.md does not link {page}"


def test_the_old_single_page_keeps_the_anchors_links_point_at():
    kept = anchors(PLUGINS_DOC)
    for anchor in ("settings", "loading-rules", "deferred-and-pacing", "testing-a-plugin", "packaging", "the-hooks"):
        assert anchor in kept, f"docs/plugins.md lost the heading of #{anchor}"


def test_every_link_into_or_within_the_plugin_docs_resolves():
    """Each relative link of a plugin page, and each link of README.md or docs/ to one, names a file that exists
    and, for a Markdown file, a heading it has."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *plugin_pages()]
    ours = {PLUGINS_DOC.resolve(), *(p.resolve() for p in plugin_pages())}
    broken = []
    for doc in docs:
        for path, anchor in links(doc):
            if doc.resolve() not in ours and path not in ours:
                continue
            if not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {path} does not exist")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{doc.relative_to(ROOT)}: {path.relative_to(ROOT)} has no heading #{anchor}")
    assert broken == []
