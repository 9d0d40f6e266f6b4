"""The ``DOCKISH_*`` environment variables dockish reads, in one list:
``dockish --help`` prints it as its epilog, README has it as a table, and
tests/test_help.py fails on a variable the code reads that is missing here
or there (so a new knob cannot stay undocumented). Pure data."""
from __future__ import annotations

# (name, what it does, for test beds only)
VARIABLES: tuple[tuple[str, str, bool], ...] = (
    ("DOCKISH_ROOT", "Store of images, containers and volumes (default "
     "~/.local/share/dockish; --root for one command).", False),
    ("DOCKISH_CONFIG", "dockish's config.json (default ~/.config/dockish/config.json).",
     False),
    ("DOCKISH_CREDENTIAL_HELPER_TIMEOUT", "Seconds before a docker-credential-* helper "
     "that hangs is killed (default 30).", False),
    ("DOCKISH_MAX_LAYER_ENTRIES", "Most entries a layer may have (default 1000000; 0: no "
     "limit).", False),
    ("DOCKISH_MAX_LAYER_RATIO", "Most a layer may grow when decompressed, times its "
     "compressed size (default 2000; 0: no limit).", False),
    ("DOCKISH_INIT", "The static tini that --init runs (default /usr/bin/tini-static, "
     "else docker-init).", False),
    ("DOCKISH_USERNS", "'single': map only your own uid into containers, even with "
     "/etc/subuid ranges.", False),
    ("DOCKISH_NETAVARK", "netavark's path (default /usr/lib/podman/netavark).", False),
    ("DOCKISH_AARDVARK", "aardvark-dns's path (default /usr/lib/podman/aardvark-dns).",
     False),
    ("DOCKISH_COMPACT_BYTES", "Journal bytes after which a live writable mount compacts "
     "its journal (default 64 MiB).", False),
    ("DOCKISH_API_DEBUG", "Set: `system service` logs every request (as -D does).", False),
    ("DOCKISH_FUSE_STATS", "Set: a mount's daemon counts FUSE requests per handler, "
     "printed on SIGUSR1 and at unmount.", False),
    ("DOCKISH_SYSTEM_CONFIG_ROOT", "Where the /etc files (registries.conf, daemon.json, "
     "certs.d) are read from (default /).", True),
    ("DOCKISH_PREFLIGHT_PROC", "The /proc `dockish check` reads.", True),
    ("DOCKISH_PREFLIGHT_DEV", "The /dev `dockish check` reads.", True),
    ("DOCKISH_PREFLIGHT_ETC", "The /etc `dockish check` reads.", True),
    ("DOCKISH_PREFLIGHT_CGROUP", "The /sys/fs/cgroup `dockish check` reads.", True),
)


def epilog() -> str:
    """The variables as ``dockish --help`` ends: each name, then its text
    wrapped under it (click keeps a ``\\b`` paragraph as it is)."""
    import textwrap
    lines = ["Environment:", "", "\b"]
    for name, text, bed in VARIABLES:
        lines.append(f"  {name}")
        lines += textwrap.wrap(text + (" Test beds only." if bed else ""), 72,
                               initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
