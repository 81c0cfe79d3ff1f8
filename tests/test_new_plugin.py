"""docs/plugins/tutorial.md followed literally, its commands and code blocks read from the page: `hookyard new-plugin
acme`, `hookyard plugins install` into a fresh virtual environment, the generated tests passing there as generated (a
rule runs its action against the recorder, and GET /api/v1/plugins lists it), `hookyard plugins --json` there listing
it while the server's own environment is left as it was, the second action and its test added as written, and
`hookyard plugins uninstall`.

The fresh environment is layered on the project's: `python -m venv --system-site-packages` would not do, because a
venv made from a venv's python is based on the *base* interpreter, whose site-packages have no hookyard. Instead
a `.pth` file in the new environment adds the project venv's site-packages (``site.addsitedir``, so its own .pth
files, hookyard's editable install among them, are honoured): hookyard, pytest, setuptools and requests are
importable with no network install, and what pip installs goes into the new environment alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def _clean_env() -> dict:
    # Nothing of this test run's own set-up (PYTHONPATH of plugin_site, HOOKYARD_* of the suite) may leak in.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("HOOKYARD_")}


def _run(args, cwd, timeout=60) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def _fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees the project's packages; its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", path], cwd=path.parent)  # pip comes from the layer below
    python = path / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=path).stdout
    server_site = sysconfig.get_paths()["purelib"]
    (Path(purelib.strip()) / "hookyard-server.pth").write_text(f"import site; site.addsitedir({server_site!r})\n")
    return python


def _plugin_names(command: list, cwd: Path) -> set[str]:
    out = _run([*command, "plugins", "--json"], cwd=cwd).stdout
    return {p["name"] for p in json.loads(out)}


TUTORIAL = (Path(__file__).resolve().parents[1] / "docs" / "plugins" / "tutorial.md").read_text()


def _section(number: int) -> str:
    return re.split(r"^## ", TUTORIAL.split(f"\n## {number}. ", 1)[1], maxsplit=1, flags=re.MULTILINE)[0]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def _printed(console_block: str) -> list[str]:
    """What a console block shows its command printing (the lines after the `$ ` line)."""
    return [line for line in console_block.splitlines() if not line.startswith("$ ")]


# The offline flags the tests add to pip: hookyard, requests, pytest and setuptools come from the layer below.
OFFLINE = ["--no-deps", "--no-build-isolation"]


def test_the_tutorial_followed_literally_in_a_fresh_environment(tmp_path):
    """Generate, install with `hookyard plugins install`, run the generated tests, see the plugin listed, add the
    second action and its test exactly as the tutorial writes them, and uninstall it."""
    created = _run([BIN / "hookyard", "new-plugin", "acme"], cwd=tmp_path)
    root = tmp_path / "hookyard-acme"
    assert created.stdout.splitlines()[0] == "created hookyard-acme"
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == {
        "pyproject.toml",
        "setup.cfg",
        "README.md",
        "hookyard_acme/__init__.py",
        "tests/test_acme.py",
    }

    python = _fresh_venv(tmp_path / "venv")
    hookyard = [python, "-m", "hookyard"]
    [install] = _blocks(_section(3), "console")
    command = install.splitlines()[0].removeprefix("$ hookyard ").split()
    assert command == ["plugins", "install", "-e", "'hookyard-acme[test]'"]
    installed = _run([*hookyard, *command[:2], *OFFLINE, "-e", "hookyard-acme[test]"], cwd=tmp_path)
    assert installed.stdout.splitlines()[-3:] == _printed(install), installed.stdout

    tests = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root, timeout=120)
    assert "4 passed" in tests.stdout, tests.stdout

    assert "acme" in _plugin_names(hookyard, tmp_path)
    # Installed into the fresh environment alone: the server's own does not have it.
    assert "acme" not in _plugin_names([BIN / "hookyard"], tmp_path)

    # 7. A second action: the code above `APP = App(`, the actions changed, the test appended.
    code, test = _blocks(_section(7), "python")
    change = "change `actions=(NOTIFY,)` to `actions=(NOTIFY, TAG)`"
    assert change in " ".join(_section(7).split())
    module = root / "hookyard_acme" / "__init__.py"
    source = module.read_text()
    assert source.count("APP = App(") == 1 and source.count("actions=(NOTIFY,)") == 1
    source = source.replace("APP = App(", code + "\n\nAPP = App(").replace("actions=(NOTIFY,)", "actions=(NOTIFY, TAG)")
    module.write_text(source)
    tests_file = root / "tests" / "test_acme.py"
    tests_file.write_text(tests_file.read_text() + "\n\n" + test)
    tests = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root, timeout=120)
    assert "5 passed" in tests.stdout, tests.stdout

    [uninstall] = _blocks(_section(8), "console")
    assert uninstall.splitlines()[0] == "$ hookyard plugins uninstall acme"
    removed = _run([*hookyard, "plugins", "uninstall", "acme"], cwd=tmp_path)
    assert removed.stdout.splitlines()[-2:] == _printed(uninstall), removed.stdout
    assert "acme" not in _plugin_names(hookyard, tmp_path)


def test_uninstalling_a_plugin_that_is_not_installed_names_the_installed_ones(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    result = subprocess.run(
        [python, "-m", "hookyard", "plugins", "uninstall", "nothere"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: no installed plugin is named 'nothere': installed are circle (hookyard-")


def test_a_failing_pip_is_one_line_and_changes_nothing(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    result = subprocess.run(
        [python, "-m", "hookyard", "plugins", "install", *OFFLINE, str(tmp_path / "no-such-folder")],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "Error: pip install failed (exit code 1): see its output above"


@pytest.mark.parametrize(
    "name, message",
    [
        ("Demo", "invalid plugin name 'Demo'"),
        ("my-plugin", "invalid plugin name 'my-plugin'"),
        ("import", "invalid plugin name 'import'"),
    ],
)
def test_a_bad_name_is_refused_with_one_line(tmp_path, name, message):
    result = subprocess.run(
        [BIN / "hookyard", "new-plugin", name], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {message}") and result.stderr.count("\n") == 1, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "hookyard-demo").mkdir()
    (tmp_path / "hookyard-demo" / "mine.txt").write_text("keep")
    result = subprocess.run(
        [BIN / "hookyard", "new-plugin", "demo"], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr == "Error: hookyard-demo already exists: choose another name or remove it\n"
    assert [p.name for p in (tmp_path / "hookyard-demo").iterdir()] == ["mine.txt"]
