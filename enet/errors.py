"""The one exception type a user sees: a one-line message, exit code 2, never a traceback."""


class EnetError(Exception):
    """Bad input or a state the user can fix; the CLI prints `error: <message>` and exits 2."""
