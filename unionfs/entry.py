"""The layer index entry: one record per tar member, the contract between the
layer importer (which writes ``index.msgpack`` next to each stored layer tar)
and the union filesystem (which loads it at mount time and never rescans tars).

An index file is a msgpack map::

    {"version": 1, "entries": [ENTRY, ...]}

Each ENTRY is a msgpack array, in tar order (the order matters: hardlinks name
earlier members, and OCI whiteouts only hide what lower layers hold)::

    [path, mode, uid, gid, size, mtime_ns, link, hardlink, rdev, xattrs, offset]

- ``path`` (bytes): normalized, relative, no leading ``/`` or ``./``, no
  trailing ``/``, no ``.``/``..`` components; ``b""`` is the layer's root dir.
  Whiteouts (``.wh.NAME``, ``.wh..wh..opq``) are kept as ordinary entries: the
  merge interprets them.
- ``mode`` (int): full ``st_mode``, file type bits included (``S_IFREG``,
  ``S_IFDIR``, ``S_IFLNK``, ``S_IFCHR``, ``S_IFBLK``, ``S_IFIFO``,
  ``S_IFSOCK``) plus permission, setuid/setgid and sticky bits.
- ``uid``, ``gid`` (int): numeric owners from the tar header.
- ``size`` (int): data size for regular files, else 0.
- ``mtime_ns`` (int): nanoseconds since the epoch (PAX ``mtime`` keeps
  fractions; may be negative).
- ``link`` (bytes or None): symlink target, verbatim.
- ``hardlink`` (bytes or None): for a tar hardlink member, the normalized path
  of the member it links to (``mode`` is then ``S_IFREG|perm``, ``size`` 0).
- ``rdev`` (int): ``os.makedev(major, minor)`` for device nodes, else 0.
- ``xattrs`` (dict bytes->bytes or None): from PAX ``SCHILY.xattr.*``.
- ``offset`` (int): byte offset of the member's data inside the stored,
  uncompressed layer tar (read with ``os.pread``).
"""
from __future__ import annotations

INDEX_VERSION = 1

PATH, MODE, UID, GID, SIZE, MTIME, LINK, HARDLINK, RDEV, XATTRS, OFFSET = range(11)

WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
