"""docs/plugins/tutorial.md followed literally: `hookyard new-plugin demo`, install it into a fresh virtual
environment, its generated tests pass there as generated (a rule runs its action against the recorder, and
GET /api/v1/plugins lists it), and `hookyard plugins --json` there lists it, while the server's own environment
is left as it was.

The fresh environment is layered on the project's: `python -m venv --system-site-packages` would not do, because a
venv made from a venv's python is based on the *base* interpreter, whose site-packages have no hookyard. Instead
a `.pth` file in the new environment adds the project venv's site-packages (``site.addsitedir``, so its own .pth
files, hookyard's editable install among them, are honoured): hookyard, pytest, setuptools and requests are
importable with no network install, and what pip installs goes into the new environment alone."""

from __future__ import annotations

import json
import os
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


def test_new_plugin_installs_into_a_fresh_environment_and_its_generated_tests_pass(tmp_path):
    created = _run([BIN / "hookyard", "new-plugin", "demo"], cwd=tmp_path)
    root = tmp_path / "hookyard-demo"
    assert f"created {root.name}" in created.stdout
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == {
        "pyproject.toml",
        "setup.cfg",
        "README.md",
        "hookyard_demo/__init__.py",
        "tests/test_demo.py",
    }

    python = _fresh_venv(tmp_path / "venv")
    # --no-deps: hookyard, requests and pytest are already there (the layer below); no network is needed.
    # --no-build-isolation: setuptools comes from the layer below too, rather than from PyPI.
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            root,
        ],
        cwd=tmp_path,
    )

    tests = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root, timeout=120)
    assert "4 passed" in tests.stdout, tests.stdout

    assert "demo" in _plugin_names([python, "-m", "hookyard"], tmp_path)
    # Installed into the fresh environment alone: the server's own does not have it.
    assert "demo" not in _plugin_names([BIN / "hookyard"], tmp_path)


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
