"""The one error base of ``runner/``: every failure the runner can name is a
``DockishError`` carrying the message the user sees and the exit code the
CLI exits with (125, Docker's code for its own errors, unless the error
says otherwise). The engine raises them; the CLI turns any of them into
``dockish: error: MSG`` once (``runner.cli``); an API server turns them
into HTTP answers the same way."""
from __future__ import annotations

EXIT_DOCKISH = 125          # Docker's code for the engine's own errors
EXIT_CANNOT_RUN = 126       # the command cannot be run
EXIT_NOT_FOUND = 127        # the command is not found


class DockishError(Exception):
    """A failure whose message is the whole story for the user."""

    exit_code: int = EXIT_DOCKISH

    def __init__(self, message: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def code(self) -> int:
        """The exit code (the older name callers used)."""
        return self.exit_code


class UsageError(DockishError):
    """Flags or arguments that do not make a valid request."""


class NotFoundError(DockishError):
    """A container, image or volume that does not exist."""


class ConflictError(DockishError):
    """A request that would break something else (Docker's 409 "conflict":
    an image a container uses); exit 1, as the docker CLI's daemon errors."""

    exit_code = 1


class ForbiddenError(DockishError):
    """A request Docker's daemon refuses as not allowed (its 403: removing a
    pre-defined network or one with active endpoints); exit 1, as the docker
    CLI's daemon errors."""

    exit_code = 1


class EscapeError(DockishError):
    """The user typed the detach keys: the client lets go and the process
    runs on. ``exec`` reports it as the docker CLI does (its words, exit 1);
    ``run``/``start``/``attach`` end quietly, exit 0."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("read escape sequence")


def known_errors() -> tuple[type[BaseException], ...]:
    """Every exception the front ends report as one line (not a traceback):
    the runner's and the registry's bases, the union filesystem's errors
    and the OS's."""
    from registry.errors import DistributionError
    from unionfs.layers import LayerStoreError
    from unionfs.mounts import MountError
    from unionfs.tree import LayerError
    from unionfs.upper import UpperError
    return (DockishError, DistributionError, LayerStoreError, MountError, LayerError,
            UpperError, OSError)


def message(e: BaseException) -> str:
    """The one line for ``e`` (an OSError as ``strerror: filename``)."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f": {e.filename}" if e.filename else "")
    return str(e) or type(e).__name__


def exit_code(e: BaseException) -> int:
    """The exit code for ``e``: its own, else 125."""
    code = getattr(e, "exit_code", EXIT_DOCKISH)
    return code if isinstance(code, int) else EXIT_DOCKISH
