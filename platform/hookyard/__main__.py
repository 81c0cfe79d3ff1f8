"""`python -m hookyard …` is the `hookyard` command, for an environment that sees hookyard without its console script
(a virtual environment layered on the server's, as in tests/test_new_plugin.py)."""

from .cli import main

main(prog_name="hookyard")
