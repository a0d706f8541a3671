"""Exceptions for user mistakes.

Everything a user can get wrong (a config key, a path, a file of the wrong kind) raises a
subclass of :class:`GandistillError` with a one-line message; the CLI prints that line and
exits with status 2. ``assert`` is kept for internal invariants only.
"""


class GandistillError(Exception):
    """Base class of all user-facing errors."""


class ConfigError(GandistillError):
    """A config file or override is malformed, names an unknown key, or has a bad value."""


class DataError(GandistillError):
    """A dataset cannot be found, read, or does not fit what was asked of it."""


class ArtifactError(GandistillError):
    """A checkpoint or artifact is missing, corrupt, of another kind, or does not match."""
