"""Where the `hookyard` command finds its instance, run as an operator runs it (real processes, in folders of their
own): HOOKYARD_INSTANCE_PATH, else the nearest instance/ folder upward, else a clear error; never a file left
where it was run, never a traceback for an operator's mistake."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from hookyard.localredis import free_port
from hookyard.migrate import alembic_config
from hookyard.settings import Settings, find_instance

HOOKYARD = str(Path(sys.executable).parent / "hookyard")
# What the operator's shell might set that would make the command find its instance some other way.
CONFIG = ("HOOKYARD_INSTANCE_PATH", "DATABASE_URL", "SECRET_KEY", "REDIS_URL", "HOOKYARD_PASSWORD")


def hookyard(*args, cwd, **env):
    bare = {k: v for k, v in os.environ.items() if k not in CONFIG}
    return subprocess.run(
        [HOOKYARD, *args],
        cwd=cwd,
        env={**bare, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def nowhere(tmp_path):
    """A folder with no instance/ in it or above it."""
    folder = tmp_path / "somewhere" / "else"
    folder.mkdir(parents=True)
    assert find_instance(env={}, start=folder) is None, "an instance/ folder above the test's temporary folder"
    return folder


@pytest.fixture
def project(tmp_path):
    """A project-like tree: instance/ at its root (empty, as after a clone with no run yet), and a subfolder."""
    root = tmp_path / "project"
    (root / "instance").mkdir(parents=True)
    (root / "docs" / "deeper").mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    "command",
    [
        ["tokens", "list"],
        ["tokens", "create"],
        ["tokens", "revoke", "1"],
        ["users", "list"],
        ["users", "remove", "a@example.com"],
        ["keys", "rotate"],
        ["worker", "--burst"],
        # Told before a password is asked for (twice), and for a plugin's command too.
        ["users", "create", "--email", "a@example.com"],
        ["users", "passwd", "a@example.com"],
        ["samcart", "import-products", "--marketplace", "My store"],
    ],
)
def test_outside_a_project_a_command_says_what_it_looked_for_and_creates_nothing(nowhere, command):
    r = hookyard(*command, cwd=nowhere)
    assert r.returncode == 1, r
    assert r.stderr.startswith(
        "Error: no Hookyard instance found: HOOKYARD_INSTANCE_PATH is not set and there is "
        f"no instance/ folder in {nowhere} or any folder above it."
    ), r.stderr
    assert "set HOOKYARD_INSTANCE_PATH to the instance folder" in r.stderr and "Traceback" not in r.stderr
    assert files(nowhere.parents[1]) == {"somewhere", "somewhere/else"}


def test_inside_a_project_the_nearest_instance_is_used_from_any_subfolder_and_not_created_by_reading(project):
    deeper = project / "docs" / "deeper"
    database = project / "instance" / "hookyard.db"
    before = files(project)
    for cwd in (project, deeper):
        r = hookyard("tokens", "list", cwd=cwd)
        assert (r.returncode, r.stdout) == (1, ""), r
        assert r.stderr == (
            f"Error: the database {database} does not exist yet: run `hookyard db upgrade` (from the "
            "same folder, or with the same HOOKYARD_INSTANCE_PATH or DATABASE_URL) to create it.\n"
        )
    assert files(project) == before  # neither a database nor a secret key

    # What the old `tokens list` left behind: an empty database file (and a key). Named, not a traceback.
    database.touch()
    before = files(project)
    r = hookyard("users", "list", cwd=deeper)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r
    assert r.stderr.startswith(
        f"Error: the database {database} is not initialised (it has no Hookyard tables): run `hookyard db upgrade`"
    ), r.stderr
    assert files(project) == before

    # Set up from a subfolder: the instance found upward is the one set up, nothing lands where it ran.
    r = hookyard("db", "upgrade", cwd=deeper)
    assert r.returncode == 0 and "created a new instance" not in r.stdout, r
    assert files(deeper) == set()
    assert {"instance/hookyard.db", "instance/secret_key"} <= files(project)
    made = hookyard("tokens", "create", "--name", "readme", cwd=deeper)
    assert made.returncode == 0 and made.stdout.startswith("hy_"), made
    assert made.stderr == "owner token for the store 'My store':\n"
    listed = hookyard("tokens", "list", cwd=project).stdout.split("\t")
    assert listed[1:2] + listed[3:5] == ["My store", "readme", "active"]


def test_hookyard_instance_path_wins_over_the_folder_found_upward(project, tmp_path):
    elsewhere = tmp_path / "elsewhere-instance"
    r = hookyard("tokens", "list", cwd=project, HOOKYARD_INSTANCE_PATH=str(elsewhere))
    assert r.returncode == 1 and f"the database {elsewhere / 'hookyard.db'} does not exist yet" in r.stderr, r
    assert not elsewhere.exists()


def test_db_upgrade_outside_a_project_sets_up_a_new_instance_there_and_says_so(nowhere):
    r = hookyard("db", "upgrade", cwd=nowhere)
    assert r.returncode == 0, r
    assert r.stdout == f"created a new instance in {nowhere / 'instance'}\ndatabase is at the latest schema\n"
    assert files(nowhere) == {"instance", "instance/hookyard.db", "instance/secret_key"}


def test_a_database_behind_the_code_names_the_command_that_brings_it_up_to_date(project):
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    first = script.get_base()
    assert hookyard("db", "upgrade", "--revision", first, cwd=project).returncode == 0
    r = hookyard("tokens", "create", cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r
    assert r.stderr.startswith(
        f"Error: the database {project / 'instance' / 'hookyard.db'} is at revision {first} "
        f"and this Hookyard needs {script.get_current_head()}: run `hookyard db upgrade`"
    )


def test_operator_mistakes_are_one_error_line(nowhere, project):
    port = free_port()  # nothing listens there
    unreachable = hookyard(
        "tokens", "list", cwd=nowhere, DATABASE_URL=f"postgresql://ops:hunter2-secret@127.0.0.1:{port}/hookyard"
    )
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr, unreachable
    assert unreachable.stderr.startswith(
        f"Error: cannot open the database postgresql+psycopg://ops:***@127.0.0.1:{port}/hookyard: "
    )
    assert "hunter2" not in unreachable.stderr
    malformed = hookyard("tokens", "list", cwd=project, HOOKYARD_LOG_CAP="lots")
    assert (malformed.returncode, malformed.stderr) == (
        1,
        "Error: HOOKYARD_LOG_CAP must be a whole number, got 'lots'\n",
    )
    not_a_url = hookyard("users", "list", cwd=nowhere, DATABASE_URL="my database")
    assert not_a_url.returncode == 1 and not_a_url.stderr.startswith("Error: DATABASE_URL is not a database URL")
    assert files(nowhere) == set() and files(project / "instance") == set()
    no_such = hookyard("db", "upgrade", "--revision", "nope", cwd=project)
    assert (no_such.returncode, no_such.stderr) == (
        1,
        "Error: cannot upgrade the database: Can't locate revision identified by 'nope'\n",
    )


def test_version(nowhere):
    r = hookyard("--version", cwd=nowhere)
    assert (r.returncode, r.stdout) == (0, f"hookyard {importlib.metadata.version('hookyard')}\n")
    assert files(nowhere) == set()


def test_reading_settings_writes_nothing_and_the_key_appears_on_first_use(tmp_path):
    instance = tmp_path / "instance"
    settings = Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(instance)})
    assert "secret_key" not in repr(settings)
    assert not instance.exists()  # neither reading nor printing the settings made the folder or a key
    key = settings.secret_key  # what the web app and the worker do
    assert (instance / "secret_key").read_text() == key and settings.secret_key == key
    assert Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(instance)}).secret_key == key
    assert Settings.from_env(env={"HOOKYARD_INSTANCE_PATH": str(instance), "SECRET_KEY": "given"}).secret_key == "given"


def test_the_nearest_instance_folder_upward_is_found(tmp_path):
    (tmp_path / "outer" / "instance").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / "instance").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / "src").mkdir()
    assert (
        find_instance(env={}, start=tmp_path / "outer" / "inner" / "src") == tmp_path / "outer" / "inner" / "instance"
    )
    assert find_instance(env={}, start=tmp_path / "outer") == tmp_path / "outer" / "instance"
    assert (
        find_instance(env={"HOOKYARD_INSTANCE_PATH": str(tmp_path / "x")}, start=tmp_path / "outer") == tmp_path / "x"
    )
