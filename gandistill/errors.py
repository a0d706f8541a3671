"""Exceptions for user mistakes, and the one for a run stopped by Ctrl-C.

Everything a user can get wrong (a config key, a path, a file of the wrong kind) raises a
subclass of :class:`GandistillError` with a one-line message; the CLI prints that line and
exits with status 2. ``assert`` is kept for internal invariants only. :class:`Interrupted` is not
a mistake: it says where a run stopped and what was saved (exit status 130).
"""

EXIT_USER_ERROR = 2  # the exit status of a user mistake, from the CLI and from a worker process


class GandistillError(Exception):
    """Base class of all user-facing errors."""


class ConfigError(GandistillError):
    """A config file or override is malformed, names an unknown key, or has a bad value."""


class DataError(GandistillError):
    """A dataset cannot be found, read, or does not fit what was asked of it."""


class ArtifactError(GandistillError):
    """A checkpoint or artifact is missing, corrupt, of another kind, or does not match."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped a run between two iterations, after saving a state to
    resume from.

    A ``KeyboardInterrupt`` (so code that handles Ctrl-C still does); the CLI prints its message
    with the command that continues the run and exits with status 128 + the signal's number
    (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a command a signal stopped.
    """

    def __init__(self, iteration: int, checkpoint: str, signum: int = 2) -> None:
        self.iteration, self.checkpoint, self.signum = iteration, checkpoint, signum
        how = "" if signum == 2 else " by SIGTERM"
        super().__init__(
            f"interrupted{how} at iteration {iteration}; checkpoint saved to {checkpoint}"
        )
