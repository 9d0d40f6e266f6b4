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
                  "inspect", "stats", "update"),
    "image": ("rmi", "push", "tag", "history", "save", "run", "create"),
}
# sub-command -> what each of its arguments names (a list argument: every word)
_SUB_ARGUMENTS = {
    ("volume", "inspect"): ("volume",), ("volume", "rm"): ("volume",),
    ("network", "inspect"): ("network",), ("network", "rm"): ("network",),
    ("network", "connect"): ("network", "container"),
    ("network", "disconnect"): ("network", "container"),
}
# command, option -> what its value names
_OPTION_KINDS = {("run", "--network"): "network", ("create", "--network"): "network"}


def _names(kind: str, incomplete: str) -> list[CompletionItem]:
    """Names of the user's containers, images, volumes or networks that
    start with ``incomplete`` (nothing, never an error, when the store
    cannot be read)."""
    try:
        from .containers import engine
        eng = engine()
        if kind == "container":
            names = [r["Names"] for r in eng.list_containers(all_=True)]
        elif kind == "volume":
            names = eng.volumes()
        elif kind == "network":
            names = [n.name for n in eng.network_list()]
        else:
            from registry import reference as refs
            names = [refs.parse(full).familiar for full in eng.image_store().tags()]
    except Exception:            # noqa: BLE001 - completion must never fail the shell
        return []
    return [CompletionItem(n) for n in sorted(set(names)) if n.startswith(incomplete)]


def _complete_as(param: click.Parameter, kind: str) -> None:
    if param._custom_shell_complete is None:
        param._custom_shell_complete = (
            lambda ctx, p, incomplete, kind=kind: _names(kind, incomplete))


def _arguments(cmd: click.Command | None) -> list[click.Parameter]:
    return [p for p in (cmd.params if cmd else []) if isinstance(p, click.Argument)]


def _names_for(main: click.Group) -> None:
    """Give commands' arguments and options their name completion."""
    for kind, commands in _ARGUMENT_KINDS.items():
        for name in commands:
            args = _arguments(main.commands.get(name))
            if args:
                _complete_as(args[0], kind)
    for (group, name), kinds in _SUB_ARGUMENTS.items():
        sub = main.commands.get(group)
        cmd = sub.commands.get(name) if isinstance(sub, click.Group) else None
        for arg, kind in zip(_arguments(cmd), kinds, strict=False):
            _complete_as(arg, kind)
    for (name, flag), kind in _OPTION_KINDS.items():
        cmd = main.commands.get(name)
        for p in cmd.params if cmd else []:
            if isinstance(p, click.Option) and flag in p.opts:
                _complete_as(p, kind)
