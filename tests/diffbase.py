"""A small multi-layer image for the union tests, made by umoci from layer
tars written here (exact owners, whiteouts, opaque dirs, hardlinks)."""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path


def _tar(path: Path, members: list[tuple]) -> Path:
    """Members are (name, kind, arg[, attrs]): kind d(ir) f(ile, arg=data)
    l(symlink) h(ardlink) c(har dev, arg=(major, minor)) p(fifo); attrs may
    set uid, gid, mode, mtime_ns, xattrs."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for member in members:
            name, kind, arg = member[:3]
            attrs = member[3] if len(member) > 3 else {}
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            ti.uid, ti.gid = attrs.get("uid", 0), attrs.get("gid", 0)
            data = None
            if kind == "d":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "f":
                data = arg.encode() if isinstance(arg, str) else arg
                ti.size, ti.mode = len(data), 0o644
            elif kind == "l":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, arg, 0o777
            elif kind == "h":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, arg, 0o644
            elif kind == "c":
                ti.type, ti.mode = tarfile.CHRTYPE, 0o666
                ti.devmajor, ti.devminor = arg
            elif kind == "p":
                ti.type, ti.mode = tarfile.FIFOTYPE, 0o644
            ti.mode = attrs.get("mode", ti.mode)
            pax = {}
            if "mtime_ns" in attrs:
                ns = attrs["mtime_ns"]
                sec, frac = divmod(abs(ns), 10**9)
                ti.mtime = ns // 10**9
                pax["mtime"] = f"{'-' if ns < 0 else ''}{sec}.{frac:09d}"
            for k, v in attrs.get("xattrs", {}).items():
                pax["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape")
            ti.pax_headers = pax
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


BASE_LAYERS = [
    [("a", "d", None), ("a/f1", "f", "one\n"), ("a/f2", "f", "two\n" * 1000),
     ("a/b", "d", None), ("a/b/g", "f", "gee"), ("a/b/deep", "d", None),
     ("a/b/deep/x", "f", "x"), ("c", "d", None), ("c/h", "f", "aitch"),
     ("hl1", "f", "hard"), ("hl2", "h", "hl1"), ("opq", "d", None), ("opq/old", "f", "o"),
     ("gone", "f", "bye"), ("gonedir", "d", None), ("gonedir/y", "f", "y"),
     ("big", "f", bytes(range(256)) * 4096)],
    [("a", "d", None), ("a/f1", "f", "one, changed\n"), (".wh.gone", "f", ""),
     (".wh.gonedir", "f", ""), ("opq", "d", None), ("opq/.wh..wh..opq", "f", ""),
     ("opq/new", "f", "n"), ("c/hl3", "h", "hl1"), ("lnk", "l", "a/f1")],
]


def umoci_image(d: Path, layers: list, *, unpack: bool = True) -> tuple[str, Path]:
    """An OCI layout of these layers (tag ``t``) and umoci's rootless unpack
    of it: returns (``oci:LAYOUT:t``, unpacked rootfs)."""
    layout = d / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True)
    for i, members in enumerate(layers):
        tar = _tar(d / f"l{i}.tar", members)
        subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:t", str(tar)],
                       check=True)
    if unpack:
        subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:t",
                        str(d / "bundle")], check=True, capture_output=True)
    return f"oci:{layout}:t", d / "bundle" / "rootfs"


def dockish_exe() -> str:
    exe = Path(sys.executable).parent / "dockish"
    assert exe.exists(), f"dockish is not installed next to {sys.executable}"
    return str(exe)
