"""The one exception type a user sees: a one-line message and an exit code, never a traceback."""


class EnetError(Exception):
    """Bad input or a state the user can fix; the CLI prints `error: <message>` and exits with
    `exit_code` (2, the usage-error code, unless a subclass says otherwise)."""

    exit_code = 2


class TrainingFailed(EnetError):
    """The run itself failed (e.g. the loss became non-finite); its last good checkpoint stays."""

    exit_code = 3
