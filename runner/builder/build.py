"""The build driver: a Dockerfile's needed stages, step by step, into an image.

Config-only instructions change the image config and make no layer (as in
Docker). COPY/ADD layers are written as tars directly from the context (no
container). RUN runs the command in a container over the stage's layers and
turns its writable layer into one OCI layer. Each layer step is looked up
in the build cache first. Output follows Docker's classic builder
(``Step 1/7 : FROM busybox``, `` ---> Using cache``, ``Successfully built``).
"""
from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from unionfs import safefile
from unionfs.layers import LayerStore

from ..errors import DockishError
from ..format import iso_seconds
from . import context as ctxmod
from . import dockerfile as dfm
from . import imageconfig, runmounts
from .buildcache import BuildCache, base_key, state_key
from .imageconfig import DEFAULT_SHELL

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BuildError(DockishError):
    """A build that failed; the message names the step."""

    exit_code = 1               # a failed build exits 1, as docker build does


@dataclass
class BaseImage:
    """What FROM resolves to: layers (bottom first) and the OCI config."""

    diff_ids: list[str]
    config: dict
    image_id: str = ""


class StepRunner(Protocol):
    """Runs one RUN step; returns (exit code, path of the layer tar or None)."""

    def __call__(self, diff_ids: list[str], argv: list[str], env: list[str], workdir: str,
                 user: str, network: str, out: TextIO, scratch: Path,
                 mounts: list[dict]) -> tuple[int, Path | None]:
        ...


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    quiet: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "default"
    timestamp: int | None = None       # SOURCE_DATE_EPOCH / --timestamp, seconds
    squash: bool = False
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)   # --secret id -> how
    pull: bool = False                 # --pull: FROM images are pulled even when stored
    add_hosts: list[str] = field(default_factory=list)   # --add-host: RUN steps' /etc/hosts


@dataclass
class StageState:
    """An image being built: its layers, config and cache key so far."""

    diff_ids: list[str]
    config: dict                      # the whole OCI image config
    key: str
    args: dict[str, str] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False
    tree: ctxmod.ImageTree | None = None
    stamp: str = "1970-01-01T00:00:00Z"     # "created" of the newest layer step
    base_layers: int = 0
    base_history: int = 0

    @property
    def conf(self) -> dict:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        return imageconfig.env_dict(self.conf.get("Env") or [])

    def scope(self) -> dict[str, str]:
        """What ``$VAR`` sees: build args in scope, overridden by ENV."""
        return {**self.args, **self.env()}


def platform_args() -> dict[str, str]:
    """BuildKit's automatic platform ARGs (build and target are the host)."""
    from registry.archive import host_platform
    os_, arch, variant = host_platform()
    plat = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
    out = {}
    for side in ("BUILD", "TARGET"):
        out.update({f"{side}PLATFORM": plat, f"{side}OS": os_, f"{side}ARCH": arch,
                    f"{side}VARIANT": variant or ""})
    return out


def image_id(config: dict) -> str:
    return "sha256:" + hashlib.sha256(config_bytes(config)).hexdigest()


def config_bytes(config: dict) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def new_config(base: BaseImage | None) -> dict:
    """The starting config of a stage: the base's, or scratch's."""
    if base is None:
        from registry.archive import host_platform
        os_, arch, variant = host_platform()
        cfg = {"architecture": arch, "os": os_, "config": {"Env": [DEFAULT_PATH]},
               "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
        if variant:
            cfg["variant"] = variant
        return cfg
    cfg = copy.deepcopy(base.config)
    cfg.setdefault("config", {})
    cfg.setdefault("history", [])
    env = cfg["config"].get("Env") or []
    if not any(e.startswith("PATH=") for e in env):    # Docker's builder adds it at FROM
        cfg["config"]["Env"] = [*env, DEFAULT_PATH]
    cfg["rootfs"] = {"type": "layers", "diff_ids": list(base.diff_ids)}
    cfg["config"].pop("OnBuild", None)       # triggers run once, in the child
    return cfg


class Builder:
    """One ``dockish build``."""

    def __init__(self, root: Path, context_dir: Path, dockerfile: dfm.Dockerfile,
                 opts: BuildOptions, *, resolve: Callable[[str], BaseImage],
                 run_step: StepRunner | None, out: TextIO) -> None:
        self.root = Path(root)
        self.layers = LayerStore(self.root)
        self.cache = BuildCache(self.root, self.layers)
        self.df = dockerfile
        self.opts = opts
        self.resolve = resolve
        self.run_step = run_step
        self.out = out
        self.context = ctxmod.ContextDir(context_dir)
        self.scratch = Path(tempfile.mkdtemp(prefix="build-", dir=self._tmp()))
        self.step = 0
        self.total = 0
        self.used_args: set[str] = set()
        self.built: dict[int, StageState] = {}
        self.extra_trees: list[ctxmod.ImageTree] = []     # COPY --from=IMAGE sources
        self.now = opts.timestamp if opts.timestamp is not None else int(time.time())

    def _tmp(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        self.context.close()
        for st in self.built.values():
            if st.tree is not None:
                st.tree.close()
        for tree in self.extra_trees:
            tree.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # -- output ---------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if not self.opts.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def _step(self, ins: dfm.Instruction) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {_one_line(ins.original)}")

    def _done(self, st: StageState) -> None:
        st.config["created"] = st.stamp
        self.say(f" ---> {image_id(st.config)[7:19]}")

    # -- driving ----------------------------------------------------------------------

    def build(self) -> tuple[str, dict]:
        """Build the target; return the image ID (config digest) and config."""
        stages = dfm.needed_stages(self.df, self.opts.target, self.opts.build_args)
        self.total = sum(1 + len(s.instructions) for s in stages)
        self.scope = {**platform_args(), **dfm.global_scope(self.df, self.opts.build_args)}
        self.used_args |= {n for a in self.df.global_args for n, _ in a.pairs}
        final = None
        for stage in stages:
            final = self._stage(stage, stage is stages[-1])
            self.built[stage.index] = final
        assert final is not None
        unused = sorted(set(self.opts.build_args) - self.used_args - set(dfm.PROXY_ARGS))
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        if self.opts.squash:
            self._squash(final)
        final.config["created"] = final.stamp
        return image_id(final.config), final.config

    def _stage(self, stage: dfm.Stage, last: bool) -> StageState:
        self._step(stage.base)
        ref = dfm.base_of(self.df, stage, self.scope)
        prior = self.df.stage(ref)
        if prior is not None and prior.index < stage.index and prior.index in self.built:
            src = self.built[prior.index]
            base = BaseImage(list(src.diff_ids), copy.deepcopy(src.config))
        elif ref == "scratch":
            base = None
        else:
            base = self.resolve(ref)
        config = new_config(base)
        st = StageState(diff_ids=list(base.diff_ids) if base else [], config=config,
                        key=base_key(base.diff_ids if base else [], config.get("config", {})))
        st.base_layers, st.base_history = len(st.diff_ids), len(config["history"])
        if st.conf.get("Shell"):
            st.shell = list(st.conf["Shell"])
        if self.opts.timestamp is not None:
            st.stamp = iso_seconds(self.opts.timestamp)
        elif base is not None and isinstance(base.config.get("created"), str):
            st.stamp = base.config["created"]
        if last and self.opts.labels:          # --label: part of the image from its FROM on
            st.conf["Labels"] = {**(st.conf.get("Labels") or {}), **self.opts.labels}
        # Docker shows the base's own ID after FROM (none for scratch)
        st.config["created"] = st.stamp
        if prior is not None and prior.index < stage.index and prior.index in self.built:
            shown = image_id(self.built[prior.index].config)[7:19]
        elif base is None:
            shown = ""
        else:
            shown = (base.image_id or image_id(base.config))[7:19]
        self.say(f" ---> {shown}")
        triggers = list((base.config.get("config") or {}).get("OnBuild") or []) if base else []
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger"
                     f"{'s' if len(triggers) > 1 else ''}")
            for text in triggers:
                ins = dfm.parse_instruction(text, f"{ref} ONBUILD trigger", stage.base.line)
                self._instruction(st, ins, announce=False)
        for ins in stage.instructions:
            self._instruction(st, ins)
        return st

    def _instruction(self, st: StageState, raw: dfm.Instruction, announce: bool = True) -> None:
        if announce:
            self._step(raw)
        where = f"{self.df.path}:{raw.line}"
        ins, used = dfm.expand(raw, st.scope(), self.df.escape, self.df.path) \
            if raw.kind in dfm.SUBSTITUTED else (raw, set())
        handler = getattr(self, f"_do_{ins.kind.lower()}", None)
        args_used = {k: st.args[k] for k in used if k in st.args}
        try:
            if handler is not None:
                handler(st, ins, where, args_used)
            elif ins.kind in imageconfig.KINDS:
                self._config_step(st, ins, imageconfig.apply(st, ins, where))
            else:
                raise BuildError(f"{where}: {ins.kind} is not supported")
        except imageconfig.ImageConfigError as e:
            raise BuildError(str(e)) from None
        self._done(st)

    # -- config-only instructions ------------------------------------------------------

    def _history(self, st: StageState, created_by: str, empty: bool) -> None:
        """History as BuildKit writes it. Times come from the cache entries
        (or --timestamp), so a fully cached rebuild gives the same image ID."""
        entry = {"created": st.stamp, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        st.config["history"].append(entry)

    def _config_step(self, st: StageState, ins: dfm.Instruction, text: str) -> None:
        """A step that changes only the config. It is recorded in the build
        cache too (with no layer), so a rebuild says "Using cache" for it as
        Docker does for every step it finds."""
        st.key = state_key(st.key, text)
        if not self.opts.no_cache and self.cache.get(st.key) is not None:
            self.say(" ---> Using cache")
        else:
            self.cache.put(st.key, None, text)
        self._history(st, text, True)

    def _do_arg(self, st, ins: dfm.Arg, where, used) -> None:
        for name, default in ins.pairs:
            self.used_args.add(name)
            if name in self.opts.build_args:
                st.args[name] = self.opts.build_args[name]
            elif default is not None:
                st.args[name] = default
            elif name in self.scope:
                st.args[name] = self.scope[name]
        self._config_step(st, ins, "ARG " + " ".join(
            n if d is None else f"{n}={d}" for n, d in ins.pairs))

    def _do_workdir(self, st, ins: dfm.Workdir, where, used) -> None:
        path = imageconfig.workdir(st, ins.path)
        tree = self._tree(st)
        if path != "/" and tree.lstat(path.lstrip("/")) is None:
            # BuildKit makes the directory, as a layer of its own
            item = ctxmod.Item(path.lstrip("/"), ctxmod.Meta(0o040755, mtime_ns=self.now * 10**9))
            items = ctxmod._with_parents([item], path.lstrip("/"), True, tree.lstat, None)
            self._layer_step(st, f"WORKDIR {path}", items, {}, "mkdir")
            return
        self._config_step(st, ins, f"WORKDIR {path}")

    # -- layer steps ---------------------------------------------------------------------

    def _tree(self, st: StageState) -> ctxmod.ImageTree:
        if st.tree is None:
            st.tree = ctxmod.ImageTree.from_layers(
                [(self.layers.tar_path(d), self.layers.load_index(d)) for d in st.diff_ids],
                "image")
        return st.tree

    def _add_layer(self, st: StageState, diff_id: str | None, created_by: str) -> None:
        if diff_id is not None:
            st.diff_ids.append(diff_id)
            st.config["rootfs"]["diff_ids"] = list(st.diff_ids)
            if st.tree is not None:
                st.tree.close()
                st.tree = None
        self._history(st, created_by, diff_id is None)

    def _layer_step(self, st: StageState, created_by: str, items: list[ctxmod.Item],
                    used: dict[str, str], files_key: str | None = None) -> None:
        key = state_key(st.key, created_by, used, files_key or ctxmod.checksum(items))
        hit = None if self.opts.no_cache else self.cache.get(key)
        if hit is not None:
            self.say(" ---> Using cache")
            diff_id = hit.diff_id
            self._stamp(st, hit.created)
        else:
            fd, tmp = tempfile.mkstemp(dir=self.scratch, suffix=".tar")
            with os.fdopen(fd, "wb") as f:
                ctxmod.write_tar(items, f, mtime_clamp=self.opts.timestamp)
            with open(tmp, "rb") as f:
                diff_id = self.layers.import_blob(f, compression="none")
            os.unlink(tmp)
            self._stamp(st, self.cache.put(key, diff_id, created_by).created)
        st.key = key
        self._add_layer(st, diff_id, created_by)

    def _copy_source(self, st: StageState, from_: str | None, where: str, what: str):
        """The tree a COPY --from or a bind mount's from= names (or the context)."""
        if not from_:
            return self.context
        stage = self.df.stage(from_)
        if stage is not None and stage.index in self.built:
            return self._tree(self.built[stage.index])
        try:
            img = self.resolve(from_)
        except Exception as e:
            raise BuildError(f"{where}: {what}={from_}: {e}") from None
        tree = ctxmod.ImageTree.from_layers(
            [(self.layers.tar_path(d), self.layers.load_index(d)) for d in img.diff_ids],
            from_)
        self.extra_trees.append(tree)
        return tree

    def _read_image_file(self, st: StageState, path: str) -> str | None:
        """A small text file of the stage's image (``/etc/passwd`` for
        ``--chown``): read from its layer tars, never from a mount, symlinks
        resolved inside the image; anything but a regular file (a FIFO, a
        device) counts as missing."""
        tree = self._tree(st)
        real = ctxmod.follow(tree, path)
        meta = tree.lstat(real)
        if meta is None or not stat.S_ISREG(meta.mode) or meta.size > safefile.MAX_SIZE:
            return None
        with tree.open(real) as f:
            return f.read(safefile.MAX_SIZE).decode("utf-8", "replace")

    def _do_copy(self, st, ins: dfm.Copy, where, used) -> None:
        add = ins.kind == "ADD"
        self._unsupported(ins, where, ("keep-git-dir",))
        if add and ins.from_:
            raise BuildError(f"{where}: ADD does not take --from (use COPY --from)")
        try:
            owner = None
            if ins.chown:
                owner = ctxmod.parse_chown(ins.chown, self._read_image_file(st, "etc/passwd"),
                                           self._read_image_file(st, "etc/group"))
            chmod = ctxmod.parse_chmod(ins.chmod) if ins.chmod else None
            source = self._copy_source(st, ins.from_, where, "COPY --from")
            parents = ins.flag("parents")
            req = ctxmod.CopyRequest(ins.sources, ins.dest, st.conf.get("WorkingDir") or "/",
                                     owner, chmod, add, dict(ins.heredocs),
                                     exclude=[v for k, v in ins.flags if k == "exclude"],
                                     parents=parents is not None and parents != "false",
                                     checksum=ins.flag("checksum"))
            items = ctxmod.plan(req, source, self._tree(st).lstat, self.scratch)
        except ctxmod.ContextError as e:
            raise BuildError(f"{where}: {ins.kind} failed: {e}") from None
        except OSError as e:
            raise BuildError(f"{where}: {ins.kind} failed: {e.strerror}: {e.filename}") \
                from None
        srcs = " ".join(ins.sources)
        flags = "".join(f"--{k}={v} " for k, v in ins.flags)
        self._layer_step(st, f"{ins.kind} {flags}{srcs} {ins.dest}", items, used)

    _do_add = _do_copy

    def _unsupported(self, ins: dfm.Instruction, where: str, names: tuple[str, ...]) -> None:
        for name in names:
            if ins.flag(name) is not None:
                raise BuildError(f"{where}: {ins.kind} --{name} is not supported by dockish "
                                 f"build")

    def _do_run(self, st, ins: dfm.Run, where, used) -> None:
        self._unsupported(ins, where, ("security",))
        workdir = st.conf.get("WorkingDir") or "/"
        try:
            mounts = [runmounts.parse(v, workdir) for k, v in ins.flags if k == "mount"]
        except runmounts.MountError as e:
            raise BuildError(f"{where}: RUN --mount: {e}") from None
        network = ins.flag("network") or self.opts.network
        if isinstance(ins.command, list):
            argv = list(ins.command)
        else:
            argv = [*st.shell, dfm.run_script(ins)]
        # build args are the RUN's environment (not the image's), proxies included
        args = {k: v for k, v in st.args.items()}
        for k in dfm.PROXY_ARGS:
            if k in self.opts.build_args:
                args[k] = self.opts.build_args[k]
        cache_args = {k: v for k, v in args.items() if k not in dfm.PROXY_ARGS}
        created_by = "RUN " + (json.dumps(argv) if isinstance(ins.command, list)
                               else f"{' '.join(st.shell)} {dfm.run_script(ins)}")
        flags = " ".join(f"--{k}={v}" for k, v in ins.flags)
        binds = [self._bind_source(st, m, where) for m in mounts if m.type == "bind"]
        key = state_key(st.key, f"{flags} {created_by}" if flags else created_by, cache_args,
                        ",".join(ctxmod.checksum(items) for items in binds) or None)
        hit = None if self.opts.no_cache else self.cache.get(key)
        if hit is not None:
            self.say(" ---> Using cache")
            st.key = key
            self._stamp(st, hit.created)
            self._add_layer(st, hit.diff_id, created_by)
            return
        if self.run_step is None:
            raise BuildError(f"{where}: RUN needs the container runner, which this build "
                             f"has none of")
        env = st.env()
        for k, v in args.items():
            env.setdefault(k, v)
        env.setdefault("PATH", DEFAULT_PATH.split("=", 1)[1])
        with contextlib.ExitStack() as stack:
            reqs = self._mount_reqs(mounts, binds, env, stack, where)
            code, tar = self.run_step(
                list(st.diff_ids), argv, [f"{k}={v}" for k, v in env.items()],
                workdir, st.conf.get("User") or "",
                network, self.out if not self.opts.quiet else _Null(), self.scratch, reqs)
        if code != 0:
            shown = json.dumps(argv) if isinstance(ins.command, list) else " ".join(argv)
            raise BuildError(f"The command '{shown}' returned a non-zero code: {code}",
                             ) from None
        diff_id = None
        if tar is not None:
            with open(tar, "rb") as f:
                diff_id = self.layers.import_blob(f, compression="none")
            os.unlink(tar)
        self._stamp(st, self.cache.put(key, diff_id, created_by).created)
        st.key = key
        if diff_id is None:
            self._history(st, created_by, True)
        else:
            self._add_layer(st, diff_id, created_by)

    # -- RUN --mount -----------------------------------------------------------------------

    def _bind_source(self, st: StageState, m: runmounts.RunMount,
                     where: str) -> list[ctxmod.Item]:
        """What a bind mount shows: the context (default), a stage or an
        image, from ``source`` down; its checksum keys the step's cache."""
        tree = self._copy_source(st, m.from_, where, "RUN --mount from")
        try:
            rel = ctxmod.follow(tree, ctxmod.clean_source(m.source))
            meta = tree.lstat(rel) if rel else ctxmod.Meta(0o040755)
            if meta is None:
                raise ctxmod.ContextError(f"{m.source or '.'}: not found in {tree.label}")
            keep = not isinstance(tree, ctxmod.ContextDir)
            if not meta.is_dir:
                return [ctxmod._file_item(tree, rel, "f", meta, keep)]
            return [ctxmod.Item("", meta), *ctxmod._walk(tree, rel, "", keep)]
        except ctxmod.ContextError as e:
            raise BuildError(f"{where}: RUN --mount=type=bind: {e}") from None

    def _mount_reqs(self, mounts: list[runmounts.RunMount], binds: list[list[ctxmod.Item]],
                    env: dict[str, str], stack: contextlib.ExitStack, where: str) -> list[dict]:
        """Host directories and files for the step's mounts, as the
        container's ``MountReq`` dicts; secrets given as variables go to ``env``."""
        reqs = []
        bind_items = iter(binds)
        for m in mounts:
            if m.type == "tmpfs":
                opts = "mode=1777" + (f",size={m.size}" if m.size else "")
                reqs.append({"kind": "tmpfs", "source": "", "target": m.target,
                             "readonly": False, "options": opts})
                continue
            if m.type == "cache":
                path = self._cache_dir(m, stack)
            elif m.type == "bind":
                tmp = Path(tempfile.mkdtemp(prefix="mount-", dir=self.scratch))
                stack.callback(_remove_tree, tmp)
                path = tmp / "m"
                _materialize(next(bind_items), path)
            else:
                path = self._secret(m, env, where, stack)
                if path is None:
                    continue
            reqs.append({"kind": "bind", "source": str(path), "target": m.target,
                         "readonly": m.readonly, "options": ""})
        return reqs

    def _cache_dir(self, m: runmounts.RunMount, stack: contextlib.ExitStack) -> Path:
        path = runmounts.cache_path(self.root, m)       # its parents: 0700
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o755 if m.mode is None else m.mode)
            if m.uid or m.gid:
                from ..runtime import namespaces as ns
                uid, gid = m.uid or 0, m.gid or 0
                ns.in_userns(lambda: os.chown(path, uid, gid), ns.plan_mapping())
        if m.sharing == "locked":
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        return path

    def _secret(self, m: runmounts.RunMount, env: dict[str, str], where: str,
                stack: contextlib.ExitStack) -> Path | None:
        how = self.opts.secrets.get(m.id)
        data = None
        if how is not None:
            try:
                data = (os.environ[how["env"]].encode() if "env" in how
                        else safefile.read_file(how["src"]))
            except KeyError:
                data = None
            except OSError as e:
                raise BuildError(f"{where}: secret {m.id}: {e.strerror}: {e.filename}") \
                    from None
        if data is None:
            if m.required:
                raise BuildError(f"{where}: secret {m.id} not found: pass it with "
                                 f"--secret id={m.id},src=FILE")
            return None
        if m.env:
            env[m.env] = data.decode("utf-8", "surrogateescape")
            if not m.target:
                return None
        tmp = Path(tempfile.mkdtemp(prefix="secret-", dir=self.scratch))
        stack.callback(_remove_tree, tmp)
        path = tmp / "s"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o400 if m.mode is None else m.mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def _stamp(self, st: StageState, created: float) -> None:
        if self.opts.timestamp is None:
            st.stamp = iso_seconds(int(created))

    def _squash(self, st: StageState) -> None:
        """Docker's ``--squash``: the layers this build made become one; the
        base image's layers stay as they are."""
        base_n = st.base_layers
        new = st.diff_ids[base_n:]
        if len(new) < 2:
            return
        fd, tmp = tempfile.mkstemp(dir=self.scratch, suffix=".tar")
        with os.fdopen(fd, "wb") as f:
            squash_tars([self.layers.tar_path(d) for d in new], f)
        with open(tmp, "rb") as f:
            diff_id = self.layers.import_blob(f, compression="none")
        os.unlink(tmp)
        st.diff_ids = [*st.diff_ids[:base_n], diff_id]
        st.config["rootfs"]["diff_ids"] = list(st.diff_ids)
        hist = st.config["history"]
        for h in hist[st.base_history:]:
            h["empty_layer"] = True
        hist.append({"created": st.stamp, "created_by": f"merge {', '.join(new)} to {diff_id}",
                     "comment": "squashed"})


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return os.open(os.devnull, os.O_WRONLY)


def cache_mounts_dir(root: Path) -> Path:
    """Where ``RUN --mount=type=cache`` directories live."""
    return Path(root) / "build" / "cache-mounts"


def empty_cache_mounts(root: Path) -> int:
    """Remove the RUN --mount=type=cache directories (files in them may
    belong to a container's other uids: removed from its user namespace);
    the bytes freed."""
    from ..runtime.hostfs import disk_usage
    top = cache_mounts_dir(root)
    if not top.is_dir():
        return 0
    size = disk_usage(top)
    _remove_tree(top)
    return size


def _remove_tree(path: Path) -> None:
    """A bind mount's copy: a RUN step may have left files of other uids
    in it (``rw``), removed from the user namespace then."""
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        from ..runtime import namespaces as ns
        ns.in_userns(lambda: shutil.rmtree(path, ignore_errors=True), ns.plan_mapping())


def _materialize(items: list[ctxmod.Item], dest: Path) -> None:
    """Items (one file named "f", or a tree from "") written under ``dest``
    (a fresh directory, or the file itself): a bind mount's private copy."""
    buf = tempfile.TemporaryFile(dir=dest.parent)
    with buf:
        ctxmod.write_tar([i for i in items if i.path], buf)
        buf.seek(0)
        if len(items) == 1 and items[0].path == "f":
            with tarfile.open(fileobj=buf) as t:
                member = t.extractfile("f")
                data = member.read() if member is not None else b""
            dest.write_bytes(data)
            os.chmod(dest, stat.S_IMODE(items[0].meta.mode))
            return
        dest.mkdir()
        from ..runtime.transfer import extract_all
        with tarfile.open(fileobj=buf) as t:
            extract_all(t, str(dest))
        os.chmod(dest, stat.S_IMODE(items[0].meta.mode) | 0o700)


def _one_line(text: str) -> str:
    return text.rstrip("\n")


# -- saving -----------------------------------------------------------------------------------

def save(root: Path, config: dict, tags: list[str]) -> str:
    """Record the image in the store and tag it; return the image ID."""
    from registry import reference as refs
    from registry.store import ImageStore
    store = ImageStore(root)
    names = []
    for t in tags:
        try:
            names.append(str(refs.parse(t)))
        except refs.ReferenceError as e:
            raise BuildError(f"invalid tag {t!r}: {e}") from None
    with store.writing():
        rec = store.add_image(config_bytes(config), tags=names)
    return rec.id


# -- squashing ---------------------------------------------------------------------------------

def squash_tars(paths: list[Path], out) -> None:
    """Merge OCI layer tars (bottom first) into one layer with the same
    effect on any lower layers: later entries win, whiteouts and opaque
    markers drop what earlier layers added and stay to hide the lower ones."""
    import posixpath
    import tarfile
    entries: dict[str, tuple[int, tarfile.TarInfo]] = {}

    def drop_below(path: str, keep_self: bool) -> None:
        prefix = path + "/" if path else ""
        for k in [k for k in entries if k.startswith(prefix) or (k == path and not keep_self)]:
            del entries[k]

    for li, p in enumerate(paths):
        with tarfile.open(p) as t:
            members = t.getmembers()
        for m in members:                       # deletions first, as the union does
            name = m.name.rstrip("/").removeprefix("./")
            parent, base = posixpath.split(name)
            if base == ".wh..wh..opq":
                drop_below(parent, True)
                entries[name] = (li, m)
            elif base.startswith(".wh."):
                drop_below(posixpath.join(parent, base[4:]), False)
                entries[name] = (li, m)
        for m in members:
            name = m.name.rstrip("/").removeprefix("./")
            parent, base = posixpath.split(name)
            if base.startswith(".wh."):
                continue
            prev = entries.get(name)
            if prev is not None and prev[1].isdir() and not m.isdir():
                drop_below(name, True)
            wh = posixpath.join(parent, ".wh." + base)
            if entries.pop(wh, None) is not None and m.isdir():
                marker = tarfile.TarInfo(posixpath.join(name, ".wh..wh..opq"))
                marker.mtime = m.mtime
                entries[marker.name] = (li, marker)
            entries[name] = (li, m)
    files = [open(p, "rb") for p in paths]
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(entries, key=lambda n: n.split("/")):
                li, m = entries[name]
                ti = copy.copy(m)
                ti.name = name
                if m.isreg():
                    f = files[li]
                    f.seek(m.offset_data)
                    tar.addfile(ti, _Limited(f, m.size))
                elif m.islnk() and m.linkname.rstrip("/") not in entries:
                    continue                   # its target is gone: nothing to link
                else:
                    tar.addfile(ti)
    finally:
        for f in files:
            f.close()


class _Limited:
    def __init__(self, f, size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data


# -- RUN through the container runner ---------------------------------------------------------

def build_hosts(net: str, add_hosts: list[str]):
    """``build --add-host``: the hosts lines of RUN steps' containers (a
    network plan with nothing else in it)."""
    from ..runtime import netconf
    from ..runtime.netplan import NetPlan, host_address
    hosts = [list(netconf.parse_add_host(h)) for h in add_hosts]
    gateway = "127.0.0.1" if net == "host" else host_address()
    return NetPlan(mode=net, extra_hosts=hosts,
                   hosts_lines=netconf.extra_hosts_lines(hosts, gateway))


def container_runner(root: Path, timestamp: int | None,
                     add_hosts: list[str] | None = None) -> StepRunner:
    """A StepRunner over ``runner.runtime.launch``: a throwaway container over the
    stage's layers (plus an init layer for /etc/hosts and friends, which
    never reaches the image: ``add_hosts`` are ``--add-host`` lines there);
    its writable layer becomes the step's tar."""
    root = Path(root)

    def run(diff_ids: list[str], argv: list[str], env: list[str], workdir: str, user: str,
            network: str, out: TextIO, scratch: Path,
            mounts: list[dict]) -> tuple[int, Path | None]:
        from ..runtime import create as createmod
        from ..runtime import namespaces as ns
        from ..runtime.config import MountReq
        from ..runtime.container import Containers
        from ..runtime.launch import Launch, StartError
        layers = LayerStore(root)
        try:
            net = createmod.network_mode(network, "host", lambda _note: None)
        except DockishError as e:
            raise BuildError(str(e)) from None
        spec = createmod.ContainerSpec(
            image="(build)", image_id="", diff_ids=list(diff_ids), argv=argv, env=env,
            workdir=workdir or "/", user=user, hostname="", network=net,
            mounts=[MountReq(**m) for m in mounts])
        if add_hosts:
            spec.net = build_hosts(net, add_hosts)
        spec.hostname = spec.id[:12]
        spec.name = f"build-{spec.id[:12]}"
        with Containers(root).claiming():      # its address on --network NAME its own
            c = createmod.make_container(root, spec)
        cid = c.id
        say = out.write
        say(f" ---> Running in {cid[:12]}\n")
        out.flush()
        try:
            ids = [*diff_ids, c.config.init_layer]
            spec_layers = [(layers.tar_path(d), layers.load_index(d)) for d in ids]
            launch = Launch(c, spec_layers, ids, ns.plan_mapping(), root / "volumes")
            fd = out.fileno()
            try:
                code = _run_relayed(launch, fd)
            except StartError as e:
                raise BuildError(f"cannot run {argv!r}: {e}") from None
            finally:
                if isinstance(out, _Null):
                    os.close(fd)
            if code != 0:
                return code, None
            return 0, _upper_tar(spec_layers, ids, c.upper, scratch, timestamp,
                                 [m["target"] for m in mounts])
        finally:
            say(f"Removing intermediate container {cid[:12]}\n")
            createmod.remove_container(root, c)

    return run


def _run_relayed(launch, out_fd: int) -> int:
    """Start a step's container with its output on a pipe we copy to
    ``out_fd`` (never the user's terminal itself), until it ends; its code."""
    import threading

    from ..runtime.launch import Stdio
    from ..runtime.tty import relay
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        launch.spawn(Stdio(None, out_w, out_w))
    except BaseException:
        os.close(out_r)
        raise
    finally:
        os.close(out_w)
    ended = threading.Event()
    copier = threading.Thread(target=relay, args=([(out_r, out_fd)], None, ended), daemon=True)
    copier.start()
    code = launch.wait()
    ended.set()
    copier.join()
    return code


def _upper_tar(spec: list[tuple[Path, list]], ids: list[str], upper: Path, scratch: Path,
               timestamp: int | None, mount_targets: list[str]) -> Path:
    """The writable layer over ``spec`` as an OCI layer tar (whiteouts, opaque
    dirs, owners from the union's metadata); /etc/hosts and the other files
    of the init layer stay out, as in Docker, and so do the empty files and
    directories made only to mount something on (as BuildKit drops them)."""
    from unionfs.generate import write_upper_layer

    from ..runtime.rootfs import INIT_PATHS
    fd, tmp = tempfile.mkstemp(dir=scratch, suffix=".tar")
    with os.fdopen(fd, "wb") as f:
        write_upper_layer(spec, ids, upper, f, skip=INIT_PATHS,
                          stubs=[t.lstrip("/").encode() for t in mount_targets],
                          mtime_clamp=None if timestamp is None else timestamp * 10**9)
    return Path(tmp)
