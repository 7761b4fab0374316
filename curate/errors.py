"""Exception hierarchy. Exceptions are for configuration, infrastructure and bugs; bad records are drops.

Exit codes used by the CLI: 2 for anything the user fixes in the recipe or command line (RecipeError,
SourceError found before work starts), 1 for failures while running (StageError, StrictError).
"""


class CurateError(Exception):
    """Base class: an error with a message meant for the user, no traceback needed."""

    exit_code = 1

    def __reduce__(self):  # keep the exit code when Ray ships the exception back from a worker
        return (_rebuild, (type(self), str(self), self.exit_code))


def _rebuild(cls, message: str, exit_code: int) -> CurateError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.exit_code = exit_code
    return err


class RecipeError(CurateError):
    """The recipe or the command line is wrong; the message names the file and field path."""

    exit_code = 2


class SourceError(CurateError):
    """An input cannot be found or read. Found before work starts: exit 2; while reading: exit 1."""

    exit_code = 2

    def __init__(self, message: str, *, while_running: bool = False):
        super().__init__(message)
        if while_running:
            self.exit_code = 1


class StrictError(CurateError):
    """`--strict`: the first bad record aborts the run, naming file and line."""

    exit_code = 1


class ClusterError(CurateError):
    """The Ray cluster cannot be joined. A wrong address is a usage error (exit 2); a cluster that refuses this
    client's authentication is exit 1, with the variables to set."""

    exit_code = 1

    def __init__(self, message: str, *, usage: bool = False):
        super().__init__(message)
        if usage:
            self.exit_code = 2


class StageError(CurateError):
    """A stage cannot complete (a conservation violation, a failed task); the run aborts."""

    exit_code = 1


def did_you_mean(word: str, choices, cutoff: float = 0.6) -> str:
    """`; did you mean 'x'?` for the closest of `choices`, or "" when none is close: for messages that name a
    mistyped key, rule, profile or language."""
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""
