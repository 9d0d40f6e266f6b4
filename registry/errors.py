"""The one error base of ``registry/`` (references, registries, archives,
the image store): a ``DistributionError`` carries the message the user sees
and an exit code (125 unless it says otherwise). ``registry/`` never
imports ``runner/``; the front ends handle this base next to theirs."""
from __future__ import annotations


class DistributionError(Exception):
    """A failure of image distribution or storage; the message says why."""

    exit_code: int = 125

    def __init__(self, message: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
