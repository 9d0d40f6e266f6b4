"""Worker for the differential tests: runs as root of a fresh user and mount
namespace (``unshare -Urm``), like a container, so both trees are served to
a root-like caller. Mounts the union writable, applies one operation list to
the union and to a plain directory holding the same merged tree, and prints
the per-operation results and both final trees as JSON.

Usage: diffworker.py DOCKISH IMAGE PLAIN_DIR WORK_DIR OPS_JSON
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys


def run_op(root: str, op: list, fds: dict) -> list:
    """Apply one operation under root; return ["ok", result] or ["err", ERRNO]."""
    kind, args = op[0], op[1:]

    def p(rel: str) -> str:
        return os.path.join(root, rel)

    try:
        if kind == "write":
            rel, data, how, off = args
            flags = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     "r+": os.O_RDWR}[how]
            fd = os.open(p(rel), flags, 0o644)
            try:
                if how == "r+":
                    os.pwrite(fd, data.encode(), off)
                else:
                    os.write(fd, data.encode())
            finally:
                os.close(fd)
            return ["ok", None]
        if kind == "read":
            with open(p(args[0]), "rb") as f:
                return ["ok", hashlib.sha256(f.read()).hexdigest()]
        if kind == "truncate":
            os.truncate(p(args[0]), args[1])
        elif kind == "mkdir":
            os.mkdir(p(args[0]), args[1])
        elif kind == "rmdir":
            os.rmdir(p(args[0]))
        elif kind == "unlink":
            os.unlink(p(args[0]))
        elif kind == "rename":
            os.rename(p(args[0]), p(args[1]))
        elif kind == "symlink":
            os.symlink(args[0], p(args[1]))
        elif kind == "link":
            os.link(p(args[0]), p(args[1]), follow_symlinks=False)
        elif kind == "chmod":
            os.chmod(p(args[0]), args[1], follow_symlinks=True)
        elif kind == "utime":
            os.utime(p(args[0]), ns=(args[1], args[1]), follow_symlinks=False)
            return ["ok", os.lstat(p(args[0])).st_mtime_ns]
        elif kind == "setxattr":
            os.setxattr(p(args[0]), args[1], args[2].encode(), follow_symlinks=False)
        elif kind == "removexattr":
            os.removexattr(p(args[0]), args[1], follow_symlinks=False)
        elif kind == "mkfifo":
            os.mkfifo(p(args[0]), 0o644)
        elif kind == "listdir":
            return ["ok", sorted(os.listdir(p(args[0])))]
        elif kind == "stat":
            st = os.lstat(p(args[0]))
            return ["ok", [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                           st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                           st.st_nlink]]
        elif kind == "open_unlink":
            # an open file that is unlinked stays readable and writable, nlink 0
            rel, data = args
            fd = os.open(p(rel), os.O_RDWR | os.O_CREAT, 0o644)
            os.unlink(p(rel))
            os.write(fd, data.encode())
            os.lseek(fd, 0, 0)
            got = os.read(fd, 1 << 20)
            nlink = os.fstat(fd).st_nlink
            os.close(fd)
            return ["ok", [hashlib.sha256(got).hexdigest(), nlink]]
        else:
            raise ValueError(f"unknown op {kind}")
        return ["ok", None]
    except OSError as e:
        return ["err", errno.errorcode.get(e.errno, str(e.errno))]


def _read(path: str, st: os.stat_result) -> bytes:
    """A file's bytes; a mode-0000 file of our own (as rootless unpackers
    leave them) is opened for a moment with u+r."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        if st.st_uid != os.getuid():
            raise
        os.chmod(path, stat.S_IMODE(st.st_mode) | stat.S_IRUSR)
        try:
            with open(path, "rb") as f:
                return f.read()
        finally:
            os.chmod(path, stat.S_IMODE(st.st_mode))


def snapshot(root: str) -> dict:
    """Every entry's type, mode, size, content hash, link target, link count,
    user xattrs; plus which names share an inode."""
    out: dict = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            item = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode)}
            if stat.S_ISREG(st.st_mode):
                item["sha"] = hashlib.sha256(_read(full, st)).hexdigest()
                item["size"] = st.st_size
                item["nlink"] = st.st_nlink
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                item["nlink"] = st.st_nlink
            try:
                names = os.listxattr(full, follow_symlinks=False)
            except OSError:
                names = []
            item["xattrs"] = {n: os.getxattr(full, n, follow_symlinks=False).hex()
                              for n in sorted(names) if n.startswith("user.")
                              and n != "user.rootlesscontainers"}
            out[rel] = item
    out["#hardlinks"] = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
    return out


def main() -> int:
    dockish, image, plain, work, ops_json = sys.argv[1:6]
    ops = json.loads(ops_json)
    mnt, upper = os.path.join(work, "mnt"), os.path.join(work, "upper")
    os.makedirs(mnt, exist_ok=True)
    subprocess.run([dockish, "mount", "--rw", "--upper", upper, image, mnt], check=True,
                   stdout=subprocess.DEVNULL)
    result: dict = {}
    try:
        fds: dict = {}
        result["union_ops"] = [run_op(mnt, op, fds) for op in ops]
        result["plain_ops"] = [run_op(plain, op, fds) for op in ops]
        result["union"] = snapshot(mnt)
        result["plain"] = snapshot(plain)
    finally:
        subprocess.run([dockish, "umount", mnt], check=True, stdout=subprocess.DEVNULL)
    # the writable layer must come back exactly after a remount
    subprocess.run([dockish, "mount", "--rw", "--upper", upper, image, mnt], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        result["remount"] = snapshot(mnt)
    finally:
        subprocess.run([dockish, "umount", mnt], check=True, stdout=subprocess.DEVNULL)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
