"""Two test-only plugins in one distribution, for tests/test_plugin_calling.py: ``bare`` (hook implementations
that take no argument) and ``wrapping`` (a hook wrapper, which the host refuses at load). Block the one a test
does not want with HOOKYARD_DISABLED_PLUGINS."""
