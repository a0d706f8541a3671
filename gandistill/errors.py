"""Exceptions for user mistakes, and the one for a run stopped by Ctrl-C.

Everything a user can get wrong (a config key, a path, a file of the wrong kind) raises a
subclass of :class:`GandistillError` with a one-line message; the CLI prints that line and
exits with status 2. ``assert`` is kept for internal invariants only. :class:`Interrupted` is not
a mistake: it says where a run stopped and what was saved (exit status 130).
"""


class GandistillError(Exception):
    """Base class of all user-facing errors."""


class ConfigError(GandistillError):
    """A config file or override is malformed, names an unknown key, or has a bad value."""


class DataError(GandistillError):
    """A dataset cannot be found, read, or does not fit what was asked of it."""


class ArtifactError(GandistillError):
    """A checkpoint or artifact is missing, corrupt, of another kind, or does not match."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run between two iterations, after saving a state to resume from.

    A ``KeyboardInterrupt`` (so code that handles Ctrl-C still does); the CLI prints its message
    with the command that continues the run and exits with status 130.
    """

    def __init__(self, iteration: int, checkpoint: str) -> None:
        self.iteration, self.checkpoint = iteration, checkpoint
        super().__init__(f"interrupted at iteration {iteration}; checkpoint saved to {checkpoint}")
