"""Errors a user can act on.

Anything raised as an ``AtlasError`` is a problem with the user's input (a config
key, a file, a model name), not a bug: the CLI prints its message without a
traceback and exits with code 2.
"""


class AtlasError(Exception):
    """Bad input: the message names the config key or the file at fault."""


class ConfigError(AtlasError):
    """A config file or a ``--set`` override is invalid."""
