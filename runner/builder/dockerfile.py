"""Dockerfiles as typed instructions, stages and Docker's variable rules.

Parsing is Moby's own parser (the ``dockerfile`` package: continuation
lines, JSON and shell forms, heredocs, comments, the escape directive); this
module only names what the parser found, checks it, and does what Docker's
builder does on top: ``$VAR`` substitution in the instructions that take it,
ARG scoping, and the stage graph behind ``--target``. Nothing here touches
the disk except ``parse_file``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import dockerfile as _moby

from ..errors import DockishError


class DockerfileError(DockishError):
    """A Dockerfile Docker would refuse; the message names file and line."""

    exit_code = 1               # a failed build exits 1, as docker build does


# Args every build knows without an ARG line; kept out of history and cache keys.
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
              "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")

# Instructions whose arguments go through variable substitution (Docker's list).
SUBSTITUTED = frozenset({"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL",
                         "USER", "VOLUME", "WORKDIR", "ARG"})


# -- the instruction model -------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Fields every instruction has: where it is and how it was written."""

    kind: str
    line: int
    end_line: int = 0
    original: str = ""
    flags: tuple[tuple[str, str], ...] = ()

    def flag(self, name: str, default: str | None = None) -> str | None:
        for k, v in self.flags:
            if k == name:
                return v
        return default

    def text(self) -> str:
        """The instruction as written (heredocs included), for cache keys."""
        return self.original.rstrip("\n")


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    image: str
    name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    """``command`` is a list for the exec form, else the shell script text."""

    command: list[str] | str
    heredocs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Copy(Instruction):
    """COPY and ADD (``kind`` tells which). ``heredocs`` maps inline sources."""

    sources: list[str]
    dest: str
    chown: str | None = None
    chmod: str | None = None
    from_: str | None = None
    heredocs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    pairs: list[tuple[str, str]]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    pairs: list[tuple[str, str]]


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """Each pair is (name, default or None)."""

    pairs: list[tuple[str, str | None]]


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    user: str


@dataclass(frozen=True, kw_only=True)
class Command(Instruction):
    """CMD and ENTRYPOINT: a list for the exec form, else the shell text."""

    command: list[str] | str


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    ports: list[str]


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    paths: list[str]


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """``test`` is Docker's config form: ["NONE"], ["CMD", ...] or ["CMD-SHELL", s]."""

    test: list[str]
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class OnBuild(Instruction):
    trigger: str


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    argv: list[str]


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    name: str


@dataclass
class Stage:
    """One FROM and what follows it."""

    index: int
    base: From
    instructions: list[Instruction]

    @property
    def name(self) -> str | None:
        return self.base.name


@dataclass
class Dockerfile:
    path: str
    global_args: list[Arg]
    stages: list[Stage]
    escape: str = "\\"

    def stage(self, ref: str) -> Stage | None:
        """The stage a ``--from``/FROM/--target names (name or index), if any."""
        for s in self.stages:
            if s.name is not None and s.name == ref.lower():
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


# -- parsing -----------------------------------------------------------------------------

def parse_file(path: str, *, label: str | None = None,
               context: str | os.PathLike | None = None) -> Dockerfile:
    """Parse the Dockerfile at ``path`` (``-f``: the user's own file), or,
    with ``context``, the one at ``path`` inside that build context, which
    is untrusted: its symlinks are resolved inside the context, never out to
    the host. Either must be a regular file (a FIFO is refused, not waited
    on)."""
    from unionfs.safefile import read_text

    from .context import ContextDir, ContextError
    from .dockerignore import Matcher
    try:
        if context is None:
            text = read_text(path)
        else:
            tree = ContextDir(context, Matcher([]))
            try:
                text = tree.read_text(path)
            finally:
                tree.close()
    except OSError as e:
        raise DockerfileError(f"cannot read {label or path}: {e.strerror}") from None
    except ContextError as e:
        raise DockerfileError(f"cannot read {label or path}: {e}") from None
    return parse_text(text, label or path)


def parse_text(text: str, label: str = "Dockerfile") -> Dockerfile:
    """Parse and check a whole Dockerfile; errors say ``LABEL:LINE: problem``."""
    commands = _moby_parse(text, label)
    global_args: list[Arg] = []
    stages: list[Stage] = []
    for c in commands:
        ins = _convert(c, label)
        if isinstance(ins, From):
            if ins.name is not None and any(s.name == ins.name for s in stages):
                raise DockerfileError(f"{label}:{ins.line}: duplicate stage name {ins.name!r}")
            stages.append(Stage(len(stages), ins, []))
        elif not stages:
            if not isinstance(ins, Arg):
                raise DockerfileError(f"{label}:{ins.line}: no build stage in current "
                                      f"context: {ins.kind} before the first FROM")
            global_args.append(ins)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise DockerfileError(f"{label}: the file has no FROM instruction")
    return Dockerfile(label, global_args, stages, escape_token(text))


def parse_instruction(text: str, label: str, line: int = 0) -> Instruction:
    """One instruction (ONBUILD triggers from a base image's config)."""
    cmds = _moby_parse(text, label)
    if len(cmds) != 1:
        raise DockerfileError(f"{label}: expected one instruction in {text!r}")
    ins = _convert(cmds[0], label)
    return dataclasses.replace(ins, line=line or ins.line, end_line=line or ins.end_line)


def _moby_parse(text: str, label: str) -> tuple:
    try:
        return _moby.parse_string(text)
    except _moby.GoParseError as e:
        raise DockerfileError(f"{label}: {e}") from None
    except UnicodeDecodeError:
        raise DockerfileError(f"{label}: the parser could not decode its text") from None


_FLAGS = {
    "FROM": {"platform"},
    "RUN": {"mount", "network", "security"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}


def _flags(c, label: str) -> tuple[tuple[str, str], ...]:
    allowed = _FLAGS.get(c.cmd, set())
    out = []
    for raw in c.flags:
        name, eq, value = raw[2:].partition("=")
        if name not in allowed:
            raise DockerfileError(f"{label}:{c.start_line}: unknown flag: --{name} "
                                  f"for {c.cmd}")
        if not eq and name not in ("link", "parents", "keep-git-dir"):
            raise DockerfileError(f"{label}:{c.start_line}: missing a value on flag: --{name}")
        out.append((name, value if eq else "true"))
    return tuple(out)


def _kv_pairs(c, label: str, what: str) -> list[tuple[str, str]]:
    v = list(c.value)
    if not v or len(v) % 2:
        raise DockerfileError(f"{label}:{c.start_line}: {what} requires at least one "
                              f"argument" if not v else
                              f"{label}:{c.start_line}: {what} must have two arguments")
    return [(v[i], v[i + 1]) for i in range(0, len(v), 2)]


def _command(c) -> list[str] | str:
    if c.json:
        return list(c.value)
    return c.value[0] if c.value else ""


def _convert(c, label: str) -> Instruction:
    """The parser's ``Command`` to a typed instruction, checking arity."""
    if not c.cmd:
        raise DockerfileError(f"{label}:{c.start_line}: a line with no instruction")
    kind = c.cmd.upper()
    base = {"kind": kind, "line": c.start_line, "end_line": c.end_line,
            "original": c.original, "flags": _flags(c, label)}
    where = f"{label}:{c.start_line}"
    values = [v for v in c.value if v != ""] if not c.json else list(c.value)

    def need(n: int = 1) -> None:
        if len(values) < n:
            raise DockerfileError(f"{where}: {kind} requires at least {n} argument"
                                  f"{'s' if n > 1 else ''}")

    if kind == "FROM":
        need()
        if len(values) not in (1, 3) or (len(values) == 3 and values[1].upper() != "AS"):
            raise DockerfileError(f"{where}: FROM requires either one or three arguments "
                                  f"(FROM IMAGE [AS NAME])")
        name = values[2].lower() if len(values) == 3 else None
        if name is not None and not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
            raise DockerfileError(f"{where}: invalid name for build stage: {values[2]!r}")
        return From(**base, image=values[0], name=name, platform=dict(base["flags"]).get(
            "platform"))
    if kind == "RUN":
        need()
        return Run(**base, command=_command(c), heredocs=_heredocs(c))
    if kind in ("COPY", "ADD"):
        need(2)
        fl = dict(base["flags"])
        return Copy(**base, sources=values[:-1], dest=values[-1], chown=fl.get("chown"),
                    chmod=fl.get("chmod"), from_=fl.get("from"), heredocs=_heredocs(c))
    if kind == "ENV":
        return Env(**base, pairs=_kv_pairs(c, label, "ENV"))
    if kind == "LABEL":
        return Label(**base, pairs=_kv_pairs(c, label, "LABEL"))
    if kind == "ARG":
        need()
        pairs: list[tuple[str, str | None]] = []
        for v in values:
            name, eq, default = v.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise DockerfileError(f"{where}: invalid ARG name {name!r}")
            pairs.append((name, default if eq else None))
        return Arg(**base, pairs=pairs)
    if kind == "WORKDIR":
        if len(values) != 1:
            raise DockerfileError(f"{where}: WORKDIR requires exactly one argument")
        return Workdir(**base, path=values[0])
    if kind == "USER":
        if len(values) != 1:
            raise DockerfileError(f"{where}: USER requires exactly one argument")
        return User(**base, user=values[0])
    if kind in ("CMD", "ENTRYPOINT"):
        return Command(**base, command=_command(c))
    if kind == "EXPOSE":
        need()
        return Expose(**base, ports=values)
    if kind == "VOLUME":
        need()
        return Volume(**base, paths=values)
    if kind == "STOPSIGNAL":
        if len(values) != 1:
            raise DockerfileError(f"{where}: STOPSIGNAL requires exactly one argument")
        return StopSignal(**base, signal=values[0])
    if kind == "HEALTHCHECK":
        need()
        return _healthcheck(c, base, where)
    if kind == "ONBUILD":
        sub = (c.sub_cmd or "").upper()
        if sub in ("ONBUILD", "FROM", "MAINTAINER"):
            raise DockerfileError(f"{where}: {sub} isn't allowed as an ONBUILD trigger")
        trigger = c.original.split(None, 1)[1] if " " in c.original.strip() else ""
        if not sub or not trigger:
            raise DockerfileError(f"{where}: ONBUILD requires at least one argument")
        return OnBuild(**base, trigger=trigger)
    if kind == "SHELL":
        if not c.json or not values:
            raise DockerfileError(f"{where}: SHELL requires the arguments to be in "
                                  f"JSON form")
        return Shell(**base, argv=values)
    if kind == "MAINTAINER":
        need()
        return Maintainer(**base, name=" ".join(values))
    raise DockerfileError(f"{where}: unknown instruction: {c.cmd}")


def _heredocs(c) -> tuple[tuple[str, str], ...]:
    return tuple((h.name, h.content) for h in (c.heredocs or ()))


def _healthcheck(c, base: dict, where: str) -> Healthcheck:
    values = list(c.value)
    head = values[0].upper()
    options = dict(base["flags"])
    if head == "NONE":
        if len(values) > 1 or options:
            raise DockerfileError(f"{where}: HEALTHCHECK NONE takes no arguments")
        return Healthcheck(**base, test=["NONE"])
    if head != "CMD" or len(values) < 2:
        raise DockerfileError(f"{where}: HEALTHCHECK needs CMD COMMAND or NONE")
    test = ["CMD", *values[1:]] if c.json else ["CMD-SHELL", " ".join(values[1:])]
    return Healthcheck(**base, test=test, options=options)


def run_script(run: Run) -> str:
    """The shell text a shell-form RUN executes. A lone ``<<EOF`` runs the
    heredoc as the script (BuildKit's rule); otherwise the heredocs follow the
    command line so the shell itself feeds them, quoting rules included."""
    assert isinstance(run.command, str)
    if not run.heredocs:
        return run.command
    first = run.command.strip()
    if len(run.heredocs) == 1 and re.fullmatch(r"<<-?([\"']?)" + re.escape(run.heredocs[0][0])
                                               + r"\1", first):
        body = run.heredocs[0][1]
        return body if not first.startswith("<<-") else re.sub(r"(?m)^\t+", "", body)
    tail = "".join(f"{body}{name}\n" for name, body in run.heredocs)
    return f"{run.command}\n{tail}"


# -- variable substitution ---------------------------------------------------------------

class Substitution:
    """Docker's shell-word processing (``ProcessWord``) over an environment:
    quotes are removed, ``$VAR``/``${VAR}`` and the ``:-``, ``-``, ``:+``,
    ``+``, ``:?``, ``?`` modifiers expand, the escape token escapes."""

    def __init__(self, env: Mapping[str, str], escape: str = "\\", *,
                 heredoc: bool = False) -> None:
        self.env = env
        self.escape = escape
        self.heredoc = heredoc      # heredoc bodies: quotes are text, only $ expands
        self.used: set[str] = set()

    def word(self, text: str) -> str:
        out, pos = self._process(text, 0, None)
        return out

    def _lookup(self, name: str) -> str | None:
        self.used.add(name)
        return self.env.get(name)

    def _process(self, s: str, i: int, stop: str | None) -> tuple[str, int]:
        out: list[str] = []
        n = len(s)
        while i < n:
            ch = s[i]
            if stop is not None and ch == stop:
                return "".join(out), i + 1
            if self.heredoc and stop is None and ch in "'\"":
                out.append(ch)
                i += 1
            elif self.heredoc and stop is None and ch == self.escape:
                nxt = s[i + 1:i + 2]
                out.append(nxt if nxt in ("$", self.escape) else ch + nxt)
                i += 1 + len(nxt)
            elif ch == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    raise DockerfileError("unexpected end of statement while looking for "
                                          "matching single-quote")
                out.append(s[i + 1:j])
                i = j + 1
            elif ch == '"':
                text, i = self._double(s, i + 1)
                out.append(text)
            elif ch == self.escape:
                if i + 1 < n:
                    out.append(s[i + 1])
                    i += 2
                else:
                    i += 1
            elif ch == "$":
                text, i = self._dollar(s, i + 1)
                out.append(text)
            else:
                out.append(ch)
                i += 1
        if stop is not None:
            raise DockerfileError(f"missing '{stop}' in {s!r}")
        return "".join(out), i

    def _double(self, s: str, i: int) -> tuple[str, int]:
        out: list[str] = []
        while i < len(s):
            ch = s[i]
            if ch == '"':
                return "".join(out), i + 1
            if ch == self.escape and i + 1 < len(s) and s[i + 1] in ('"', "$", self.escape):
                out.append(s[i + 1])
                i += 2
            elif ch == "$":
                text, i = self._dollar(s, i + 1)
                out.append(text)
            else:
                out.append(ch)
                i += 1
        raise DockerfileError("unexpected end of statement while looking for matching "
                              "double-quote")

    def _dollar(self, s: str, i: int) -> tuple[str, int]:
        if i >= len(s):
            return "$", i
        if s[i] != "{":
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]", s[i:])
            if not m:
                return "$", i
            return self._lookup(m.group()) or "", i + m.end()
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]", s[i + 1:])
        if not m:
            raise DockerfileError(f"bad substitution in {s!r}")
        name = m.group()
        i = i + 1 + m.end()
        if i >= len(s):
            raise DockerfileError(f"missing '}}' in {s!r}")
        if s[i] == "}":
            return self._lookup(name) or "", i + 1
        colon = s[i] == ":"
        op = s[i + 1] if colon and i + 1 < len(s) else s[i]
        if op not in "-+?":
            raise DockerfileError(f"unsupported modifier ({s[i:i + 2]}) in substitution "
                                  f"{s!r}")
        word, i = self._process(s, i + (2 if colon else 1), "}")
        value = self._lookup(name)
        is_set = value is not None and (value != "" or not colon)
        if op == "-":
            return (value if is_set else word), i
        if op == "+":
            return (word if is_set else ""), i
        if not is_set:
            raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
        return value, i


def expand(ins: Instruction, env: Mapping[str, str], escape: str = "\\",
           label: str = "Dockerfile") -> tuple[Instruction, set[str]]:
    """``ins`` with its arguments substituted (only for the instructions Docker
    substitutes), plus the names the substitution looked up."""
    sub = Substitution(env, escape)
    w = sub.word
    try:
        if isinstance(ins, From):
            new: Instruction = dataclasses.replace(
                ins, image=w(ins.image),
                platform=w(ins.platform) if ins.platform else None)
        elif isinstance(ins, Copy):
            quoted = {n for s in ins.sources for n, _ in ins.heredocs
                      if re.fullmatch(r"<<-?([\"'])" + re.escape(n) + r"\1", s)}
            body = Substitution(env, escape, heredoc=True)
            new = dataclasses.replace(
                ins, sources=[s if s.lstrip("<-").strip("\"'") in dict(ins.heredocs)
                              and s.startswith("<<") else w(s) for s in ins.sources],
                heredocs=tuple((n, t if n in quoted else body.word(t))
                               for n, t in ins.heredocs),
                dest=w(ins.dest), chown=w(ins.chown) if ins.chown else None,
                chmod=w(ins.chmod) if ins.chmod else None,
                from_=w(ins.from_) if ins.from_ else None)
        elif isinstance(ins, (Env, Label)):
            new = dataclasses.replace(ins, pairs=[(w(k), w(v)) for k, v in ins.pairs])
        elif isinstance(ins, Arg):
            new = dataclasses.replace(ins, pairs=[(k, w(v) if v is not None else None)
                                                  for k, v in ins.pairs])
        elif isinstance(ins, Workdir):
            new = dataclasses.replace(ins, path=w(ins.path))
        elif isinstance(ins, User):
            new = dataclasses.replace(ins, user=w(ins.user))
        elif isinstance(ins, Expose):
            new = dataclasses.replace(ins, ports=[p for v in ins.ports for p in w(v).split()])
        elif isinstance(ins, Volume):
            new = dataclasses.replace(ins, paths=[w(p) for p in ins.paths])
        elif isinstance(ins, StopSignal):
            new = dataclasses.replace(ins, signal=w(ins.signal))
        else:
            new = ins
    except DockerfileError as e:
        raise DockerfileError(f"{label}:{ins.line}: {e}") from None
    if isinstance(ins, Copy):
        sub.used |= body.used
    return new, sub.used


def escape_token(text: str) -> str:
    """The ``# escape=`` parser directive's token (default backslash)."""
    for line in text.splitlines():
        m = re.fullmatch(r"\s*#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*", line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            return m.group(2)
    return "\\"


# -- args and stages ---------------------------------------------------------------------

def global_scope(df: Dockerfile, build_args: Mapping[str, str]) -> dict[str, str]:
    """Values of the ARGs before the first FROM (used in FROM lines and as
    defaults for a stage's ``ARG NAME``)."""
    scope: dict[str, str] = {}
    for arg in df.global_args:
        arg, _ = expand(arg, scope, label=df.path)
        for name, default in arg.pairs:  # type: ignore[attr-defined]
            if name in build_args:
                scope[name] = build_args[name]
            elif default is not None:
                scope[name] = default
    return scope


def base_of(df: Dockerfile, stage: Stage, scope: Mapping[str, str]) -> str:
    """The stage's FROM image after substitution with the global args."""
    image = expand(stage.base, scope, label=df.path)[0].image  # type: ignore[attr-defined]
    if not image:
        raise DockerfileError(f"{df.path}:{stage.base.line}: base name ({stage.base.image}) "
                              f"should not be blank")
    return image


def target_stage(df: Dockerfile, target: str | None) -> Stage:
    if target is None:
        return df.stages[-1]
    for s in df.stages:
        if s.name == target.lower():
            return s
    raise DockerfileError(f"target stage {target!r} could not be found")


def needed_stages(df: Dockerfile, target: str | None,
                  build_args: Mapping[str, str] | None = None) -> list[Stage]:
    """The stages the target depends on (FROM an earlier stage, COPY --from),
    in file order: the others are not built, as with BuildKit."""
    scope = global_scope(df, build_args or {})
    want = target_stage(df, target)
    seen: set[int] = set()
    todo = [want]
    while todo:
        s = todo.pop()
        if s.index in seen:
            continue
        seen.add(s.index)
        for ref in stage_refs(df, s, scope):
            todo.append(ref)
    return [s for s in df.stages if s.index in seen]


def stage_refs(df: Dockerfile, s: Stage, scope: Mapping[str, str]) -> list[Stage]:
    """Earlier stages ``s`` reads: its base, its ``COPY --from`` sources and
    its ``RUN --mount=from=`` ones."""
    out = []
    base = df.stage(base_of(df, s, scope))
    if base is not None and base.index < s.index:
        out.append(base)
    for ins in s.instructions:
        froms = []
        if isinstance(ins, Copy) and ins.from_:
            froms.append(("COPY --from", ins.from_))
        elif isinstance(ins, Run):          # RUN --mount=...,from=STAGE
            for k, v in ins.flags:
                for part in v.split(",") if k == "mount" else ():
                    key, _, value = part.partition("=")
                    if key.strip().lower() == "from" and value:
                        froms.append(("RUN --mount from", value))
        for what, name in froms:
            src = df.stage(Substitution(scope).word(name))
            if src is not None:
                if src.index >= s.index:
                    raise DockerfileError(f"{df.path}:{ins.line}: {what}={name}: "
                                          f"a stage can only read an earlier stage")
                out.append(src)
    return out


def exec_or_shell(command: list[str] | str, shell: list[str]) -> list[str]:
    """argv for CMD/ENTRYPOINT/RUN: exec form as is, shell form under SHELL."""
    return list(command) if isinstance(command, list) else [*shell, command]


def config_json_list(value: object) -> str:
    return json.dumps(value)
