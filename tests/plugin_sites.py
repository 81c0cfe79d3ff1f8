"""Plugins installed for a test exactly as a user installs them (pip, from their own folders), into a directory of
their own that the test puts on the path of the processes that should see them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def install_into(site: Path, *projects: Path) -> Path:
    """pip-installs ``projects`` (distribution folders) into ``site``: no dependencies and no build isolation, since
    hookyard, setuptools and the rest are in the test's environment already and no network is needed."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(site),
            *map(str, projects),
        ],
        check=True,
    )
    return site
