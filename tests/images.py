"""Test images built offline with independent tools.

Layer tars are written here with Python's ``tarfile`` (PAX format), so owners,
modes, device numbers, xattrs (``SCHILY.xattr.*`` records) and nanosecond
mtimes are exact without root. ``umoci raw add-layer`` turns them into an OCI
layout; ``skopeo`` makes the docker-archive and the zstd variant from it.

Two images:

- ``busybox``: one layer, the static busybox binary plus applet symlinks, a
  small ``/etc``, ``/tmp`` 1777 and ``/root`` 0700; ``Cmd ["sh"]``.
- ``layered``: busybox plus five layers covering the corner cases of layer
  merging (whiteouts, an opaque dir, hardlinks within and across layers, odd
  owners and modes, special files, xattrs, odd symlinks, long names and paths,
  type changes, extreme mtimes). The paths below (``L_*`` constants) say
  what to expect in the merged tree.

Builds are reproducible: the same digests every time (for the same busybox
binary). Plain module, no pytest: ``build_busybox(dir)`` / ``build_layered(dir)``
return a :class:`TestImage`. Run ``python tests/images.py DIR`` to build both
and print their references.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

TAG = "latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EPOCH = 1_700_000_000  # default mtime of every entry

# --- what the `layered` image holds (paths in the merged tree, no leading /) ---
L_MODIFIED = "data/modified.txt"          # written in layers 1, 2 and 4
L_MODIFIED_FINAL = b"version 3, from layer 4\n"
L_DELETED_FILE = "data/deleted.txt"       # whiteout in layer 2
L_DELETED_DIR = "data/deldir"             # whiteout (of a whole tree) in layer 2
L_OPAQUE = "data/opaque"                  # opaque in layer 3
L_OPAQUE_LOWER = ["lower1", "lower2", "sub"]   # children in layer 1, hidden
L_OPAQUE_UPPER = ["newchild"]             # the only child after layer 3
L_HL_ORIG, L_HL_LINK = "data/hl/orig", "data/hl/link1"      # one layer (1)
L_HL_LOWER, L_HL_CROSS = "data/lowerfile", "data/hl/crosslink"  # link in layer 2 to layer 1
L_APP_HOME = "home/app/notes"             # 1000:2000, 0640
L_BIGID = "data/bigid"                    # 200000:300000
L_SUID = "usr/local/bin/suid-tool"        # root 4755
L_SGID_DIR = "data/sgid"                  # 0:2000 2775
L_STICKY_DIR = "data/sticky"              # 1777
L_FIFO = "data/special/fifo"              # fifo 0644
L_CHR = "data/special/null"               # char 1,3 0666
L_BLK = "data/special/loop0"              # block 7,0 0660
L_XATTR = "data/xattr.txt"                # user.foo=bar, security.capability
XATTR_USER = ("user.foo", b"bar")
# vfs_cap_data revision 2, effective, permitted = CAP_NET_BIND_SERVICE (10)
XATTR_CAP = ("security.capability", struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0))
L_LINK_ABS = "data/links/abs"             # -> /etc/passwd
L_LINK_REL = "data/links/rel"             # -> ../modified.txt
L_LINK_DANGLING = "data/links/dangling"   # -> /nonexistent/target
L_LINK_CLIMB = "data/links/climb"         # -> ../../../../etc/passwd
LINK_TARGETS = {L_LINK_ABS: "/etc/passwd", L_LINK_REL: "../modified.txt",
                L_LINK_DANGLING: "/nonexistent/target", L_LINK_CLIMB: "../../../../etc/passwd"}
L_LONGNAME = "data/long/" + "n" * 251 + ".txt"   # a 255-byte name
L_MODE0 = "data/mode0000"                 # mode 0000 file
L_PRIVATE_DIR = "data/private"            # root 0700 dir
L_PRIVATE_FILE = "data/private/inside"    # root 0600 file inside it
L_DIR2FILE = "data/dir2file"              # dir in layer 1, file in layer 2
L_FILE2DIR = "data/file2dir"              # file in layer 1, dir in layer 2
L_TIME_OLD = "data/times/old"             # before 1970
L_TIME_FUTURE = "data/times/future"       # after 2038
L_TIME_NS = "data/times/ns"               # a nanosecond fraction
MTIMES = {L_TIME_OLD: (-315_619_200, 250_000_000),      # 1960-01-01 00:00:00.25
          L_TIME_FUTURE: (4_102_444_800, 500_000_000),  # 2100-01-01 00:00:00.5
          L_TIME_NS: (1_700_000_000, 123_456_789)}
L_EMPTY = "data/empty"
L_BIG = "data/big.bin"                    # 3 MiB of pseudo-random bytes
BIG_SIZE = 3 << 20
L_META_ONLY = "data/metaonly"             # same bytes, new mode and owner in layer 5
L_LATE = "etc/layered-release"           # added in layer 5


DEEP_LEN = 3900


def _deep_path() -> str:
    """A file whose absolute path in the image is 3900 bytes: near PATH_MAX
    (4096), with room left for the path of a mountpoint or unpack dir."""
    parts, i = ["data", "deep"], 0
    # 200-byte components while the rest would not fit in one 255-byte name
    while DEEP_LEN - len("/" + "/".join(parts)) - 1 > 255:
        parts.append(f"{i:02d}" + "d" * 198)
        i += 1
    path = "/".join(parts)
    return path + "/" + "f" * (DEEP_LEN - len("/" + path) - 1)


L_DEEP = _deep_path()                      # len("/" + L_DEEP) == DEEP_LEN


def big_bytes() -> bytes:
    return random.Random(20240229).randbytes(BIG_SIZE)


@dataclass
class TestImage:
    """One image in three forms, plus the raw layer tars it was built from."""
    name: str
    oci_dir: Path                 # OCI layout (gzip layers, as umoci writes them)
    docker_archive: Path          # `docker save`-style tar (skopeo)
    zstd_dir: Path                # OCI layout with zstd layers (skopeo)
    layers: list[Path] = field(default_factory=list)   # uncompressed tars, bottom first
    tag: str = TAG
    repo: str = ""                # RepoTags[0] of the docker-archive

    __test__ = False              # not a pytest test class

    @property
    def oci(self) -> str:
        return f"oci:{self.oci_dir}:{self.tag}"

    @property
    def docker(self) -> str:
        return f"docker-archive:{self.docker_archive}"

    @property
    def zstd(self) -> str:
        return f"oci:{self.zstd_dir}:{self.tag}"

    def manifest(self, layout: Path | None = None) -> dict:
        """The image manifest of an OCI layout (default: ``oci_dir``)."""
        return read_manifest(layout or self.oci_dir, self.tag)


# ------------------------------------------------------------------ helpers

def run(*cmd: str | os.PathLike, **kw) -> subprocess.CompletedProcess:
    """Run a tool, raising with its stderr on failure."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}{p.stdout}")
    return p


def is_static_elf(path: str | os.PathLike) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        is64, little = head[4] == 2, head[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, = struct.unpack(end + "Q", head[32:40])
            phentsize, phnum = struct.unpack(end + "HH", head[54:58])
        else:
            phoff, = struct.unpack(end + "I", head[28:32])
            phentsize, phnum = struct.unpack(end + "HH", head[42:46])
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, = struct.unpack(end + "I", table[i * phentsize:i * phentsize + 4])
        if p_type == 3:  # PT_INTERP
            return False
    return True


def find_busybox() -> Path:
    """The static busybox binary (Debian's busybox-static)."""
    for cand in (os.environ.get("DOCKISH_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox",
                 shutil.which("busybox")):
        if cand and os.path.isfile(cand):
            if not is_static_elf(cand):
                raise RuntimeError(f"{cand} is not statically linked: install busybox-static")
            return Path(cand)
    raise RuntimeError("busybox not found: install busybox-static")


def read_manifest(layout: Path, tag: str = TAG) -> dict:
    index = json.loads((Path(layout) / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return json.loads(_blob(layout, m["digest"]).read_text())
    raise KeyError(f"tag {tag!r} not in {layout}")


def read_config(layout: Path, tag: str = TAG) -> dict:
    return json.loads(_blob(layout, read_manifest(layout, tag)["config"]["digest"]).read_text())


def _blob(layout: Path, digest: str) -> Path:
    algo, hexd = digest.split(":", 1)
    return Path(layout) / "blobs" / algo / hexd


NOOP_ID = 0xFFFF_FFFF


def rootless_owner(value: bytes) -> tuple[int, int]:
    """Decode umoci's ``user.rootlesscontainers`` xattr (protobuf: uid=1, gid=2).
    An absent field means 0, and so does NoopID (2**32 - 1, "keep the real
    owner", which umoci writes for root when the other id is not root)."""
    fields, i = {1: 0, 2: 0}, 0

    def varint(i: int) -> tuple[int, int]:
        n = shift = 0
        while True:
            b = value[i]
            n |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                return n, i
            shift += 7

    while i < len(value):
        key, i = varint(i)
        val, i = varint(i)
        fields[key >> 3] = 0 if val == NOOP_ID else val
    return fields[1], fields[2]


class LayerWriter:
    """Writes one PAX layer tar entry by entry, with exact metadata."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.tar = tarfile.open(self.path, "w", format=tarfile.PAX_FORMAT)

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.tar.close()

    def _add(self, name: str, type_: bytes, mode: int, *, uid=0, gid=0, data: bytes | None = None,
             link: str = "", mtime: int | tuple[int, int] = EPOCH, xattrs=(), dev=(0, 0)) -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid = type_, mode, uid, gid
        ti.uname = ti.gname = ""
        ti.linkname = link
        ti.devmajor, ti.devminor = dev
        pax = {}
        if isinstance(mtime, tuple):
            sec, ns = mtime
            ti.mtime = sec if sec >= 0 else 0
            # the exact value, with nine fractional digits (a float would round)
            sign, a = ("-", -sec - (1 if ns else 0)) if sec < 0 else ("", sec)
            frac = (1_000_000_000 - ns) if (sec < 0 and ns) else ns
            pax["mtime"] = f"{sign}{a}.{frac:09d}" if ns else f"{sign}{a}"
        else:
            ti.mtime = mtime
        for key, val in xattrs:
            # bytes that are not UTF-8 survive as surrogates; tarfile then writes
            # them back verbatim (hdrcharset=BINARY)
            pax["SCHILY.xattr." + key] = val.decode("utf-8", "surrogateescape")
        ti.pax_headers = pax
        if data is not None:
            ti.size = len(data)
            self.tar.addfile(ti, io.BytesIO(data))
        else:
            self.tar.addfile(ti)

    def dir(self, name: str, mode: int = 0o755, **kw) -> None:
        self._add(name, tarfile.DIRTYPE, mode, **kw)

    def file(self, name: str, data: bytes | str = b"", mode: int = 0o644, **kw) -> None:
        if isinstance(data, str):
            data = data.encode()
        self._add(name, tarfile.REGTYPE, mode, data=data, **kw)

    def symlink(self, name: str, target: str, **kw) -> None:
        self._add(name, tarfile.SYMTYPE, 0o777, link=target, **kw)

    def hardlink(self, name: str, target: str, mode: int = 0o644, **kw) -> None:
        self._add(name, tarfile.LNKTYPE, mode, link=target, **kw)

    def fifo(self, name: str, mode: int = 0o644, **kw) -> None:
        self._add(name, tarfile.FIFOTYPE, mode, **kw)

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o666, **kw) -> None:
        self._add(name, tarfile.CHRTYPE, mode, dev=(major, minor), **kw)

    def blockdev(self, name: str, major: int, minor: int, mode: int = 0o660, **kw) -> None:
        self._add(name, tarfile.BLKTYPE, mode, dev=(major, minor), **kw)

    def whiteout(self, path: str) -> None:
        d, _, base = path.rpartition("/")
        self.file(f"{d}/.wh.{base}" if d else f".wh.{base}", b"", 0o644)

    def opaque(self, dir_: str) -> None:
        self.file(f"{dir_}/.wh..wh..opq", b"", 0o644)


# ------------------------------------------------------------------ layers

def busybox_layer(path: Path, busybox: Path | None = None) -> Path:
    busybox = busybox or find_busybox()
    applets = sorted({a.strip() for a in run(busybox, "--list").stdout.split()} - {"busybox", ""})
    with LayerWriter(path) as t:
        for d in ("bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin",
                  "var", "var/tmp"):
            t.dir(d, 0o1777 if d == "var/tmp" else 0o755)
        t.dir("home/app", 0o755, uid=1000, gid=1000)
        t.dir("root", 0o700)
        t.dir("tmp", 0o1777)
        t.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
        for a in applets:
            t.symlink(f"bin/{a}", "busybox")
        t.symlink("usr/bin/env", "../../bin/busybox")
        t.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                             "app:x:1000:1000:app:/home/app:/bin/sh\n"
                             "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        t.file("etc/group", "root:x:0:\napp:x:1000:\nstaff:x:2000:app\nnogroup:x:65534:\n")
        t.file("etc/shadow", "root:*:19000:0:99999:7:::\napp:*:19000:0:99999:7:::\n"
                             "nobody:*:19000:0:99999:7:::\n", 0o640)
        t.file("etc/os-release", 'NAME="dockish test busybox"\nID=busybox\n')
    return path


def _parents(t: LayerWriter, *dirs: str) -> None:
    for d in dirs:
        t.dir(d)


def layered_layers(target: Path) -> list[Path]:
    """The five layers that `layered` adds on top of busybox."""
    target.mkdir(parents=True, exist_ok=True)
    paths = [target / f"layer{i}.tar" for i in range(1, 6)]

    # layer 1: the base content
    with LayerWriter(paths[0]) as t:
        t.dir("data")
        t.file(L_MODIFIED, "version 1, from layer 1\n")
        t.file(L_DELETED_FILE, "deleted in layer 2\n")
        t.dir(L_DELETED_DIR)
        t.file(f"{L_DELETED_DIR}/a", "a\n")
        t.dir(f"{L_DELETED_DIR}/sub")
        t.file(f"{L_DELETED_DIR}/sub/b", "b\n")
        t.dir(L_OPAQUE)
        t.file(f"{L_OPAQUE}/lower1", "lower 1\n")
        t.file(f"{L_OPAQUE}/lower2", "lower 2\n")
        t.dir(f"{L_OPAQUE}/sub")
        t.file(f"{L_OPAQUE}/sub/x", "x\n")
        t.dir("data/hl")
        t.file(L_HL_ORIG, "hardlinked within layer 1\n")
        t.hardlink(L_HL_LINK, L_HL_ORIG)
        t.file(L_HL_LOWER, "hardlinked from layer 2\n")
        t.dir(L_DIR2FILE)
        t.file(f"{L_DIR2FILE}/inner", "inner\n")
        t.file(L_FILE2DIR, "a file in layer 1, a directory in layer 2\n")
        t.file(L_META_ONLY, "metadata changes in layer 5\n", 0o644)
        t.dir("home/app", 0o755, uid=1000, gid=1000)
        t.file(L_APP_HOME, "owned by app:staff\n", 0o640, uid=1000, gid=2000)
        t.file(L_BIGID, "owned by a high id\n", 0o644, uid=200_000, gid=300_000)
        t.dir("usr/local")
        t.dir("usr/local/bin")
        t.file(L_SUID, "#!/bin/sh\nid\n", 0o4755)
        t.dir(L_SGID_DIR, 0o2775, gid=2000)
        t.file(f"{L_SGID_DIR}/f", "in the setgid dir\n", 0o664, gid=2000)
        t.dir(L_STICKY_DIR, 0o1777)
        t.dir("data/special")
        t.fifo(L_FIFO)
        t.chardev(L_CHR, 1, 3)
        t.blockdev(L_BLK, 7, 0)
        t.file(L_XATTR, "with xattrs\n", xattrs=[XATTR_USER, XATTR_CAP])

    # layer 2: changes, deletes, type changes, cross-layer hardlink
    with LayerWriter(paths[1]) as t:
        t.dir("data")
        t.file(L_MODIFIED, "version 2, from layer 2\n")
        t.whiteout(L_DELETED_FILE)
        t.whiteout(L_DELETED_DIR)
        t.dir("data/hl")
        t.hardlink(L_HL_CROSS, L_HL_LOWER)
        t.file(L_DIR2FILE, "a directory in layer 1, a file in layer 2\n")
        t.dir(L_FILE2DIR)
        t.file(f"{L_FILE2DIR}/child", "child\n")
        t.file(L_MODE0, "mode 0000\n", 0o000)
        t.dir(L_PRIVATE_DIR, 0o700)
        t.file(L_PRIVATE_FILE, "private\n", 0o600)
        t.dir("data/links")
        for name, target_ in LINK_TARGETS.items():
            t.symlink(name, target_)
        t.dir("data/long")
        t.file(L_LONGNAME, "a 255-byte name\n")

    # layer 3: an opaque directory (umoci never writes these: made by hand)
    with LayerWriter(paths[2]) as t:
        t.dir("data")
        t.dir(L_OPAQUE)
        t.opaque(L_OPAQUE)
        t.file(f"{L_OPAQUE}/newchild", "new in layer 3\n")

    # layer 4: another modification, the deep tree, times, empty and big files
    with LayerWriter(paths[3]) as t:
        t.dir("data")
        t.file(L_MODIFIED, L_MODIFIED_FINAL)
        parts = L_DEEP.split("/")
        for i in range(2, len(parts)):
            t.dir("/".join(parts[:i]))
        t.file(L_DEEP, "deep\n")
        t.dir("data/times")
        for name, mt in MTIMES.items():
            t.file(name, f"{name}\n", mtime=mt)
        t.file(L_EMPTY, b"")
        t.file(L_BIG, big_bytes())

    # layer 5: a metadata-only change and a late file
    with LayerWriter(paths[4]) as t:
        t.dir("data")
        t.file(L_META_ONLY, "metadata changes in layer 5\n", 0o600, uid=1000, gid=2000)
        t.dir("etc")
        t.file(L_LATE, "layered 5\n")
    return paths


# ------------------------------------------------------------------ images

def _oci_image(layout: Path, layers: list[Path], created_by: list[str]) -> None:
    run("umoci", "init", "--layout", layout)
    ref = f"{layout}:{TAG}"
    run("umoci", "new", "--image", ref)
    for tar, what in zip(layers, created_by, strict=True):
        run("umoci", "raw", "add-layer", "--image", ref, "--history.created_by", what,
            "--history.created", "2023-11-14T22:13:20Z", tar)
    run("umoci", "config", "--image", ref, "--config.cmd", "sh", "--config.env", PATH_ENV,
        "--created", "2023-11-14T22:13:20Z", "--no-history")
    run("umoci", "gc", "--layout", layout)


def _variants(img: TestImage) -> TestImage:
    run("skopeo", "copy", "--quiet", img.oci, f"docker-archive:{img.docker_archive}:{img.repo}")
    # recompress into a fresh layout (skopeo reuses existing blobs otherwise)
    run("skopeo", "copy", "--quiet", "--dest-compress-format", "zstd", img.oci, img.zstd)
    return img


def build_busybox(target: Path) -> TestImage:
    """``busybox``: one layer, Cmd ["sh"]."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    layer = busybox_layer(target / "busybox-layer.tar")
    img = TestImage("busybox", target / "oci", target / "docker-archive.tar", target / "zstd",
                    [layer], repo="docker.io/dockish-test/busybox:latest")
    _oci_image(img.oci_dir, img.layers, ["busybox"])
    return _variants(img)


def build_layered(target: Path, busybox_layer_tar: Path | None = None) -> TestImage:
    """``layered``: busybox plus five layers (see the ``L_*`` constants)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    if busybox_layer_tar is None:
        busybox_layer_tar = busybox_layer(target / "busybox-layer.tar")
    layers = [Path(busybox_layer_tar)] + layered_layers(target / "layers")
    img = TestImage("layered", target / "oci", target / "docker-archive.tar", target / "zstd",
                    layers, repo="docker.io/dockish-test/layered:latest")
    _oci_image(img.oci_dir, layers, ["busybox"] + [f"layered {i}" for i in range(1, 6)])
    return _variants(img)


BUILDERS = {"busybox": build_busybox, "layered": build_layered}


class ImageFactory:
    """Builds each image once, on first use, under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._cache: dict[str, TestImage] = {}

    def get(self, name: str) -> TestImage:
        if name not in self._cache:
            if name == "busybox":
                img = build_busybox(self.root / "busybox")
            elif name == "layered":
                img = build_layered(self.root / "layered", self.get("busybox").layers[0])
            else:
                raise KeyError(f"no test image {name!r}; known: {', '.join(BUILDERS)}")
            self._cache[name] = img
        return self._cache[name]

    __getitem__ = get


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()



def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: images.py DIR", file=sys.stderr)
        return 2
    f = ImageFactory(Path(argv[0]))
    for name in BUILDERS:
        img = f.get(name)
        print(f"{name}: {img.oci}  {img.docker}  {img.zstd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
