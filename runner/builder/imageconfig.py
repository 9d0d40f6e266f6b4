"""What the config-only Dockerfile instructions do to an OCI image config:
CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL,
ONBUILD, HEALTHCHECK, SHELL, MAINTAINER. Pure rules (no I/O), shared by
``build`` (each step also makes history and a cache key), ``commit
--change`` and ``import --change``.
"""
from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import DockishError
from . import dockerfile as dfm

DEFAULT_SHELL = ["/bin/sh", "-c"]
# the instructions ``commit -c`` and ``import -c`` accept (Docker's list)
CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR")


class ImageConfigError(DockishError):
    """An instruction that makes no valid config; the message names it."""


class ConfigState(Protocol):
    """What the rules read and change: the whole OCI config, the shell for
    shell-form commands, and whether this image set its own CMD."""

    config: dict
    shell: list[str]
    cmd_set: bool

    @property
    def conf(self) -> dict: ...

    def env(self) -> dict[str, str]: ...


@dataclass
class Changes:
    """A ``ConfigState`` for ``--change`` (no build around it)."""

    config: dict
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False

    @property
    def conf(self) -> dict:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        return env_dict(self.conf.get("Env") or [])


def env_dict(env: list[str]) -> dict[str, str]:
    """``["K=V", ...]`` as a dict (a bare ``K`` is empty)."""
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)


def duration(text: str, where: str) -> int:
    """Docker's durations (Go syntax, e.g. ``1m30s``) in nanoseconds."""
    total, pos = 0.0, 0
    units = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ImageConfigError(f"{where}: invalid duration {text!r}")
    return int(total)


def workdir(st: ConfigState, path: str) -> str:
    """WORKDIR: relative to the current one, normalized."""
    if not path.startswith("/"):
        path = os.path.join(st.conf.get("WorkingDir") or "/", path)
    path = os.path.normpath(path)
    st.conf["WorkingDir"] = path
    return path


def apply(st: ConfigState, ins: dfm.Instruction, where: str) -> str:
    """Apply one config-only instruction to ``st``; return the text its
    history entry (and build cache key) records."""
    rule = _RULES.get(ins.kind)
    if rule is None:
        raise ImageConfigError(f"{where}: {ins.kind} is not a config instruction")
    return rule(st, ins, where)


def _workdir(st: ConfigState, ins: dfm.Workdir, where: str) -> str:
    return f"WORKDIR {workdir(st, ins.path)}"


def _env(st: ConfigState, ins: dfm.Env, where: str) -> str:
    env = st.env()
    for k, v in ins.pairs:
        env[k] = v
    st.conf["Env"] = [f"{k}={v}" for k, v in env.items()]
    return "ENV " + " ".join(f"{k}={v}" for k, v in ins.pairs)


def _label(st: ConfigState, ins: dfm.Label, where: str) -> str:
    labels = st.conf.get("Labels") or {}
    labels.update(dict(ins.pairs))
    st.conf["Labels"] = labels
    return "LABEL " + " ".join(f"{k}={v}" for k, v in ins.pairs)


def _user(st: ConfigState, ins: dfm.User, where: str) -> str:
    st.conf["User"] = ins.user
    return f"USER {ins.user}"


def _cmd(st: ConfigState, ins: dfm.Command, where: str) -> str:
    st.conf["Cmd"] = dfm.exec_or_shell(ins.command, st.shell)
    st.cmd_set = True
    return f"CMD {json.dumps(st.conf['Cmd'])}"


def _entrypoint(st: ConfigState, ins: dfm.Command, where: str) -> str:
    st.conf["Entrypoint"] = dfm.exec_or_shell(ins.command, st.shell)
    if not st.cmd_set:
        st.conf["Cmd"] = None      # Docker: a new ENTRYPOINT drops the base's CMD
    return f"ENTRYPOINT {json.dumps(st.conf['Entrypoint'])}"


def _expose(st: ConfigState, ins: dfm.Expose, where: str) -> str:
    ports = st.conf.get("ExposedPorts") or {}
    for p in ins.ports:
        if not re.fullmatch(r"\d+(-\d+)?(/(tcp|udp|sctp))?", p):
            raise ImageConfigError(f"{where}: invalid containerPort: {p}")
        ports[p if "/" in p else f"{p}/tcp"] = {}
    st.conf["ExposedPorts"] = ports
    return "EXPOSE " + " ".join(ins.ports)


def _volume(st: ConfigState, ins: dfm.Volume, where: str) -> str:
    vols = st.conf.get("Volumes") or {}
    for p in ins.paths:
        if not p:
            raise ImageConfigError(f"{where}: VOLUME specified can not be an empty string")
        vols[p] = {}
    st.conf["Volumes"] = vols
    return "VOLUME " + json.dumps(ins.paths)


def _stopsignal(st: ConfigState, ins: dfm.StopSignal, where: str) -> str:
    sig = ins.signal
    if not (sig.isdigit() or sig.upper() in signal.Signals.__members__ or
            "SIG" + sig.upper() in signal.Signals.__members__):
        raise ImageConfigError(f"{where}: Invalid signal: {sig}")
    st.conf["StopSignal"] = sig
    return f"STOPSIGNAL {sig}"


def _healthcheck(st: ConfigState, ins: dfm.Healthcheck, where: str) -> str:
    hc: dict = {"Test": ins.test}
    names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
             "start-interval": "StartInterval"}
    for k, v in ins.options.items():
        if k == "retries":
            if not v.isdigit():
                raise ImageConfigError(f"{where}: --retries must be a number")
            hc["Retries"] = int(v)
        else:
            hc[names[k]] = duration(v, where)
    st.conf["Healthcheck"] = hc
    return f"HEALTHCHECK {json.dumps(hc, sort_keys=True)}"


def _onbuild(st: ConfigState, ins: dfm.OnBuild, where: str) -> str:
    st.conf["OnBuild"] = [*(st.conf.get("OnBuild") or []), ins.trigger]
    return f"ONBUILD {ins.trigger}"


def _shell(st: ConfigState, ins: dfm.Shell, where: str) -> str:
    st.shell = list(ins.argv)
    st.conf["Shell"] = list(ins.argv)
    return f"SHELL {json.dumps(ins.argv)}"


def _maintainer(st: ConfigState, ins: dfm.Maintainer, where: str) -> str:
    st.config["author"] = ins.name
    return f"MAINTAINER {ins.name}"


_RULES = {"WORKDIR": _workdir, "ENV": _env, "LABEL": _label, "USER": _user, "CMD": _cmd,
          "ENTRYPOINT": _entrypoint, "EXPOSE": _expose, "VOLUME": _volume,
          "STOPSIGNAL": _stopsignal, "HEALTHCHECK": _healthcheck, "ONBUILD": _onbuild,
          "SHELL": _shell, "MAINTAINER": _maintainer}
KINDS = tuple(_RULES)


def apply_changes(config: dict, changes: list[str]) -> None:
    """Apply Dockerfile instructions (``commit -c``, ``import -c``) to an
    OCI image ``config``; variables are substituted from its ENV."""
    st = Changes(config)
    if st.conf.get("Shell"):
        st.shell = list(st.conf["Shell"])
    for text in changes:
        where = f"--change {text!r}"
        try:
            ins = dfm.parse_instruction(text, "--change", 1)
        except dfm.DockerfileError as e:
            raise ImageConfigError(f"{where}: {e}") from None
        if ins.kind not in CHANGES:
            raise ImageConfigError(f"{where}: {ins.kind} is not a valid change command "
                                   f"(use {', '.join(CHANGES)})")
        if ins.kind in dfm.SUBSTITUTED:
            try:
                ins, _ = dfm.expand(ins, st.env(), "\\", where)
            except dfm.DockerfileError as e:
                raise ImageConfigError(str(e)) from None
        apply(st, ins, where)
