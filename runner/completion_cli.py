"""``dockish completion bash|zsh|fish``: the shell completion script, as
``docker completion`` prints one.

The script calls dockish back with ``_DOCKISH_COMPLETE`` set (click's
protocol), so completions follow the commands and flags as they are;
container, image, volume and network names come from the user's own store.
"""
from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")


def register(main: click.Group) -> None:
    @main.command("completion")
    @click.argument("shell", type=click.Choice(SHELLS))
    def completion(shell: str) -> None:
        """Print the completion script for SHELL.

        \b
        bash: source <(dockish completion bash)
        zsh:  source <(dockish completion zsh)
        fish: dockish completion fish | source
        """
        cls = get_completion_class(shell)
        click.echo(cls(main, {}, "dockish", "_DOCKISH_COMPLETE").source())

    _names_for(main)


# command -> what its first argument names
_ARGUMENT_KINDS = {
    "container": ("attach", "exec", "kill", "logs", "pause", "port", "rename", "restart", "rm",
                  "start", "stop", "top", "unpause", "wait", "export", "diff", "commit",
                  "inspect"),
    "image": ("rmi", "push", "tag", "history", "save", "run", "create"),
}


def _names(kind: str, incomplete: str) -> list[CompletionItem]:
    """Names of the user's containers or images that start with ``incomplete``
    (nothing, never an error, when the store cannot be read)."""
    try:
        from .containers_cli import engine
        eng = engine()
        if kind == "container":
            names = [r["Names"] for r in eng.list_containers(all_=True)]
        else:
            from registry import reference as refs
            names = [refs.parse(full).familiar for full in eng.image_store().tags()]
    except Exception:            # noqa: BLE001 - completion must never fail the shell
        return []
    return [CompletionItem(n) for n in sorted(set(names)) if n.startswith(incomplete)]


def _names_for(main: click.Group) -> None:
    """Give each command's first argument its name completion."""
    for kind, commands in _ARGUMENT_KINDS.items():
        for name in commands:
            cmd = main.commands.get(name)
            args = [p for p in (cmd.params if cmd else []) if isinstance(p, click.Argument)]
            if args and args[0]._custom_shell_complete is None:
                args[0]._custom_shell_complete = (
                    lambda ctx, param, incomplete, kind=kind: _names(kind, incomplete))
