"""`make test`'s check of what it needs beyond Python (tests/needs.py), run as the Makefile runs it, with a PATH
that holds only what each case allows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_needs(tmp_path, *args, path_dirs=(), **env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if k not in ("HOOKYARD_CHROMIUM", "PATH")}
    clean.update(PATH=os.pathsep.join([str(bin_dir), *map(str, path_dirs)]), **env)
    return subprocess.run(
        [sys.executable, "-m", "tests.needs", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_without_chromium_or_a_way_to_install_it_it_stops_with_one_message(tmp_path):
    done = run_needs(tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "The browser tests need Chromium, which is not installed" in lines[0]
    assert "HOOKYARD_CHROMIUM" in lines[0] and "make test" in lines[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path is taken only as root")
def test_as_root_with_apt_it_installs_debians_chromium_itself(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "apt-calls"
    # A stand-in apt-get that records its arguments and, on install, puts a chromium on PATH as the package would.
    executable(
        bin_dir / "apt-get",
        f'echo "$@" >> {calls}\n'
        f'case "$1" in install) printf "#!/bin/sh\\n" > {bin_dir}/chromium; '
        f"/bin/chmod 755 {bin_dir}/chromium;; esac\n",
    )
    done = run_needs(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends chromium"]
    assert "installing Debian's chromium package" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the install path is taken only as root")
def test_a_failed_install_says_so_with_aptgets_own_words(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "apt-get", 'echo "E: Unable to locate package chromium"; exit 100\n')
    done = run_needs(tmp_path)
    assert done.returncode == 1
    assert "Installing Chromium failed" in done.stderr and "Unable to locate package chromium" in done.stderr


def test_a_run_of_other_tests_needs_no_browser(tmp_path):
    assert run_needs(tmp_path, "tests/circle", "-q").returncode == 0
    assert run_needs(tmp_path, "tests/web/test_web_papercuts.py").returncode == 1
    assert run_needs(tmp_path, "-k", "papercuts").returncode == 1  # -k selects from the whole suite


def test_a_chromium_named_by_hookyard_chromium_must_exist(tmp_path):
    done = run_needs(tmp_path, HOOKYARD_CHROMIUM=str(tmp_path / "nowhere"))
    assert done.returncode == 1 and "is not an executable file" in done.stderr
    chromium = executable(tmp_path / "my-chromium", "")
    assert run_needs(tmp_path, HOOKYARD_CHROMIUM=str(chromium)).returncode == 0
