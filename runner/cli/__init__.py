"""The command line: click only. Each module parses one family of commands,
calls the engine and formats what it returns.
"""

from .main import main  # the `dockish` group: runner.cli:main

__all__ = ["main"]
