"""Docker's error answers: ``{"message": ...}`` with Docker's status codes
(404 no such object, 409 conflict, 400 bad parameter, 500 the rest), made
from the engine's typed errors in one place."""
from __future__ import annotations


class ApiError(Exception):
    """An answer other than success, with Docker's status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, f"No such {kind}: {name}")


# words of the engine's messages that name Docker's conflict cases
_CONFLICT = ("already in use", "cannot remove a running", "conflict", "is in use",
             "is already paused", "is not paused", "is not running", "is paused",
             "must be forced", "must force")


def from_exception(e: BaseException) -> ApiError:
    """The status Docker gives for what ``e`` says went wrong."""
    from registry.errors import DistributionError
    from registry.store import ConflictError, NoSuchImage

    from ..errors import ConflictError as RefusedConflict
    from ..errors import DockishError, ForbiddenError, NotFoundError, UsageError, message
    text = message(e)
    low = text.lower()
    if isinstance(e, NoSuchImage):
        return ApiError(404, text if "no such image" in low else f"No such image: {text}")
    if isinstance(e, NotFoundError) or low.startswith("no such "):
        return ApiError(404, text)
    if isinstance(e, ForbiddenError):
        return ApiError(403, text)
    if isinstance(e, ConflictError | RefusedConflict) or any(w in low for w in _CONFLICT):
        return ApiError(409, text)
    if isinstance(e, UsageError | ValueError):
        return ApiError(400, text)
    if isinstance(e, DistributionError):
        if "not found" in low or "unknown" in low:
            return ApiError(404, text)
        if "unauthorized" in low or "denied" in low:
            return ApiError(401 if "unauthorized" in low else 403, text)
        return ApiError(500, text)
    if isinstance(e, DockishError):
        return ApiError(400 if e.exit_code in (126, 127) else 500, text)
    return ApiError(500, text)
