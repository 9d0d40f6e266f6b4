"""The merged tree: every name the union view shows, held in memory.

Built once per mount from the layer indexes (bottom to top), then changed only
through journal records. A change to the writable layer is expressed as
records (see ``Rec``) and applied with ``Tree.apply``; mount-time recovery
replays the same records through the same method, so the live path and crash
recovery share one implementation of the union's rules.

Whiteouts are not nodes: a directory remembers in ``low`` the names the lower
layers gave it, so a name in ``low`` that is no longer a child is deleted (an
OCI ``.wh.NAME``), and a new directory standing on such a name is opaque.
"""
from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator

from .entry import GID, HARDLINK, LINK, MODE, MTIME, OFFSET, PATH, RDEV, SIZE, UID, XATTRS
from .tarindex import LayerError
from .whiteout import hidden_name, is_opaque, is_whiteout

ROOT_INO = 1


class Rec:
    """Journal record kinds (first element of each msgpack array)."""

    INODE = 0     # [0, uino, mode, uid, gid, rdev, size, atime, mtime, ctime, xattrs, target, data]
    BIND = 1      # [1, path, uino]: the node at path (keeping children) is now upper inode uino
    PLACE = 2     # [2, path, uino]: name path now refers to upper inode uino
    UNLINK = 3    # [3, path]
    RENAME = 4    # [4, old, new, flags]
    HEADER = 6    # [6, version, [layer diff_ids]]


RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


class Node:
    """One inode of the view. ``layer`` is the lower layer holding the data
    (``None``: the writable layer's data file named by ``uino``)."""

    __slots__ = ("ino", "mode", "uid", "gid", "rdev", "size", "atime", "mtime", "ctime",
                 "xattrs", "target", "children", "subdirs", "links", "layer", "offset",
                 "uino", "low", "lookups", "opens", "attr", "dirty")

    def __init__(self, ino: int, mode: int, uid: int = 0, gid: int = 0, *, rdev: int = 0,
                 size: int = 0, mtime: int = 0, xattrs: dict | None = None,
                 target: bytes | None = None, layer: int | None = None, offset: int = 0,
                 uino: int | None = None) -> None:
        self.ino = ino
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.rdev = rdev
        self.size = size
        self.atime = self.mtime = self.ctime = mtime
        self.xattrs = xattrs
        self.target = target
        self.children: dict[bytes, Node] | None = {} if stat.S_ISDIR(mode) else None
        self.subdirs = 0
        self.links: tuple[tuple[Node, bytes], ...] = ()    # see _link
        self.layer = layer
        self.offset = offset
        self.uino = uino
        self.low: set[bytes] | None = None
        self.lookups = 0
        self.opens = 0
        self.attr = None      # cached EntryAttributes, dropped on every change
        self.dirty = False    # data written since the last INODE record

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    @property
    def nlink(self) -> int:
        if self.children is not None:
            return 2 + self.subdirs if self.links or self.ino == ROOT_INO else 0
        return len(self.links)

    def changed(self) -> None:
        self.attr = None


def _link(node: Node, parent: Node, name: bytes) -> None:
    """Give ``node`` the name ``name`` in ``parent``. A node's names are a
    tuple, not a list: nearly every node has one, and a 1-tuple takes 48
    bytes where a list took 88 (0.8 MiB of a container's daemon after an
    apt-get install of build-essential, python3 and git: 20.7k nodes)."""
    node.links = (*node.links, (parent, name))


def _unlink(node: Node, parent: Node, name: bytes) -> None:
    """Take ``name`` in ``parent`` from ``node``'s names (ValueError if it
    has no such name, as list.remove)."""
    links = list(node.links)
    links.remove((parent, name))
    node.links = tuple(links)


def _text(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def split(path: bytes) -> tuple[bytes, bytes]:
    parent, _, name = path.rpartition(b"/")
    return parent, name


def join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


class Tree:
    """The view's inodes plus the rules for changing them."""

    def __init__(self) -> None:
        self.root = Node(ROOT_INO, stat.S_IFDIR | 0o755)
        self.nodes: dict[int, Node] = {ROOT_INO: self.root}
        self.uinodes: dict[int, Node] = {}
        self.next_ino = ROOT_INO + 1
        self.next_uino = 1
        self.pending: list[list] = []    # records made by live changes, not yet journaled
        self._dircache: dict[bytes, Node] = {b"": self.root}

    # -- building from lower layers ------------------------------------------------

    def add_layer(self, layer: int, entries: list) -> None:
        """Merge one layer's index: its whiteouts and opaque markers first (they
        only hide lower layers, whatever the tar order), then its entries."""
        for e in entries:
            parent_path, name = split(e[PATH])
            if not is_whiteout(name):
                continue
            parent = self._find(parent_path)
            if parent is None or not parent.is_dir:
                continue
            if is_opaque(name):
                for child_name, child in list(parent.children.items()):
                    self._detach(parent, child_name, child)
            else:
                child = parent.children.get(hidden_name(name))
                if child is not None:
                    self._detach(parent, hidden_name(name), child)
        for e in entries:
            path = e[PATH]
            if not path:
                self._set_entry_attrs(self.root, e)
                continue
            parent_path, name = split(path)
            if is_whiteout(name):
                continue
            parent = self._mkdirs(parent_path)
            old = parent.children.get(name)
            if e[HARDLINK] is not None:
                target = self._find(e[HARDLINK])
                if target is None or target.is_dir:
                    raise LayerError(f"hardlink {_text(path)} points at missing "
                                     f"{_text(e[HARDLINK])}")
                if old is not target:
                    if old is not None:
                        self._detach(parent, name, old)
                    self._attach(parent, name, target)
                continue
            mode = e[MODE]
            if stat.S_ISLNK(mode):
                mode = stat.S_IFLNK | 0o777      # as Linux shows every symlink
            if old is not None and old.is_dir and stat.S_ISDIR(mode):
                self._set_entry_attrs(old, e)
                continue
            if old is not None:
                self._detach(parent, name, old)
            node = Node(self._alloc_ino(), mode, e[UID], e[GID], rdev=e[RDEV], size=e[SIZE],
                        mtime=e[MTIME], xattrs=e[XATTRS] or None, target=e[LINK],
                        layer=layer, offset=e[OFFSET])
            if node.target is not None:
                node.size = len(node.target)
            self._attach(parent, name, node)
            if node.is_dir:
                self._dircache[path] = node

    def finish_lower(self) -> None:
        """Remember what the lower layers hold, so deletions become whiteouts."""
        self._dircache.clear()
        stack = [self.root]
        while stack:
            d = stack.pop()
            d.low = set(d.children)
            stack.extend(c for c in d.children.values() if c.is_dir)

    def _set_entry_attrs(self, node: Node, e: list) -> None:
        node.mode = e[MODE]
        node.uid, node.gid = e[UID], e[GID]
        node.atime = node.mtime = node.ctime = e[MTIME]
        node.xattrs = e[XATTRS] or None

    def _find(self, path: bytes) -> Node | None:
        node = self._dircache.get(path)
        if node is not None:
            return node
        node = self.root
        for part in path.split(b"/") if path else ():
            if not node.is_dir:
                return None
            node = node.children.get(part)
            if node is None:
                return None
        return node

    def _mkdirs(self, path: bytes) -> Node:
        """The directory at path, made (as Docker does) where a layer omits it."""
        node = self._dircache.get(path)
        if node is not None:
            return node
        node = self.root
        done = b""
        for part in path.split(b"/") if path else ():
            done = join(done, part)
            child = node.children.get(part)
            if child is None or not child.is_dir:
                if child is not None:
                    self._detach(node, part, child)
                child = Node(self._alloc_ino(), stat.S_IFDIR | 0o755)
                self._attach(node, part, child)
            node = child
        self._dircache[path] = node
        return node

    # -- primitive link bookkeeping --------------------------------------------------

    def _alloc_ino(self) -> int:
        ino = self.next_ino
        self.next_ino += 1
        return ino

    def alloc_uino(self) -> int:
        uino = self.next_uino
        self.next_uino += 1
        return uino

    def _attach(self, parent: Node, name: bytes, node: Node) -> None:
        parent.children[name] = node
        _link(node, parent, name)
        if node.is_dir:
            parent.subdirs += 1
        if node.ino not in self.nodes:
            self.nodes[node.ino] = node
        node.attr = None
        parent.attr = None

    def _detach(self, parent: Node, name: bytes, node: Node) -> None:
        del parent.children[name]
        _unlink(node, parent, name)
        if node.is_dir:
            parent.subdirs -= 1
            self._dircache.clear()
        node.attr = None
        parent.attr = None
        if not node.links:
            self._release_subtree(node)

    def _release_subtree(self, node: Node) -> None:
        """A node with no names left: drop it (and, for a removed directory,
        everything below it) unless the kernel or an open file still holds it."""
        stack = [node]
        while stack:
            n = stack.pop()
            if n.is_dir:
                for cname, child in list(n.children.items()):
                    del n.children[cname]
                    _unlink(child, n, cname)
                    if not child.links:
                        stack.append(child)
                n.subdirs = 0
            self.maybe_forget(n)

    def maybe_forget(self, node: Node) -> bool:
        """Drop an unlinked node once nothing refers to it; True if dropped."""
        if node.links or node.lookups or node.opens or node is self.root:
            return False
        self.nodes.pop(node.ino, None)
        if node.uino is not None and self.uinodes.get(node.uino) is node:
            del self.uinodes[node.uino]
        return True

    # -- paths ----------------------------------------------------------------------

    def path_of(self, node: Node) -> bytes:
        parts = []
        while node is not self.root:
            parent, name = node.links[0]
            parts.append(name)
            node = parent
        return b"/".join(reversed(parts))

    def child_path(self, parent: Node, name: bytes) -> bytes:
        return join(self.path_of(parent), name)

    def resolve(self, path: bytes) -> Node:
        node = self._find(path)
        if node is None:
            raise LayerError(f"journal names a missing path {path!r}")
        return node

    # -- records --------------------------------------------------------------------

    def inode_record(self, node: Node) -> list:
        if node.layer is None:
            data = None if not stat.S_ISREG(node.mode) else 0
        else:
            data = [node.layer, node.offset]
        return [Rec.INODE, node.uino, node.mode, node.uid, node.gid, node.rdev, node.size,
                node.atime, node.mtime, node.ctime, node.xattrs, node.target, data]

    def apply(self, rec: list) -> None:
        """Apply one record: the only way the writable layer changes the tree."""
        kind = rec[0]
        if kind == Rec.INODE:
            self._apply_inode(rec)
        elif kind == Rec.BIND:
            node = self.resolve(rec[1])
            node.uino = rec[2]
            self.uinodes[rec[2]] = node
            self.next_uino = max(self.next_uino, rec[2] + 1)
        elif kind == Rec.PLACE:
            parent_path, name = split(rec[1])
            parent = self.resolve(parent_path)
            node = self.uinodes[rec[2]]
            old = parent.children.get(name)
            if old is not node:
                if old is not None:
                    self._detach(parent, name, old)
                self._attach(parent, name, node)
        elif kind == Rec.UNLINK:
            parent_path, name = split(rec[1])
            parent = self.resolve(parent_path)
            self._detach(parent, name, parent.children[name])
        elif kind == Rec.RENAME:
            self._apply_rename(rec[1], rec[2], rec[3])
        elif kind == Rec.HEADER:
            pass
        else:
            raise LayerError(f"unknown journal record {kind!r}")

    def _apply_inode(self, rec: list) -> None:
        (_, uino, mode, uid, gid, rdev, size, atime, mtime, ctime, xattrs, target, data) = rec
        node = self.uinodes.get(uino)
        if node is None:
            node = Node(self._alloc_ino(), mode, uino=uino)
            if node.is_dir:
                node.low = None
            self.uinodes[uino] = node
            self.nodes[node.ino] = node
            self.next_uino = max(self.next_uino, uino + 1)
        node.mode, node.uid, node.gid, node.rdev, node.size = mode, uid, gid, rdev, size
        node.atime, node.mtime, node.ctime = atime, mtime, ctime
        node.xattrs, node.target = xattrs or None, target
        if isinstance(data, list):
            node.layer, node.offset = data
        else:
            node.layer = None
        node.attr = None

    def _apply_rename(self, old: bytes, new: bytes, flags: int) -> None:
        sp_path, sname = split(old)
        dp_path, dname = split(new)
        sp, dp = self.resolve(sp_path), self.resolve(dp_path)
        node = sp.children[sname]
        if flags & RENAME_EXCHANGE:
            other = dp.children[dname]
            del sp.children[sname]
            del dp.children[dname]
            _unlink(node, sp, sname)
            _unlink(other, dp, dname)
            sp.children[sname] = other
            _link(other, sp, sname)
            dp.children[dname] = node
            _link(node, dp, dname)
            if node.is_dir != other.is_dir:
                delta = 1 if node.is_dir else -1
                dp.subdirs += delta
                sp.subdirs -= delta
            self._dircache.clear()
            for n in (node, other, sp, dp):
                n.attr = None
            self._moved(other)
        else:
            target = dp.children.get(dname)
            # attach the new name before dropping the old, so a hardlinked
            # node never passes through "no names" and is never released
            if target is not None:
                self._detach(dp, dname, target)
            self._attach(dp, dname, node)
            self._detach(sp, sname, node)
        self._moved(node)

    def _moved(self, node: Node) -> None:
        """A moved directory no longer stands where lower layers put it."""
        if not node.is_dir or node.low is None:
            return
        stack = [node]
        while stack:
            d = stack.pop()
            d.low = None
            stack.extend(c for c in d.children.values() if c.is_dir and c.low is not None)

    # -- live changes (each emits records, applied at once) --------------------------

    def emit(self, rec: list) -> None:
        self.pending.append(rec)
        self.apply(rec)

    def record(self, node: Node) -> None:
        """Journal a node's current metadata, copying it up (metadata only) first."""
        named = bool(node.links) or node is self.root
        if node.uino is None:
            uino = self.alloc_uino()
            if named:
                self.emit([Rec.BIND, self.path_of(node), uino])
            else:                    # an unlinked open file: nothing to journal
                node.uino = uino
                self.uinodes[uino] = node
        node.attr = None
        node.dirty = False
        if named:
            self.pending.append(self.inode_record(node))

    def new_node(self, mode: int, uid: int, gid: int, now: int, *, rdev: int = 0,
                 target: bytes | None = None) -> Node:
        """A fresh upper inode (not yet named)."""
        node = Node(self._alloc_ino(), mode, uid, gid, rdev=rdev, mtime=now, target=target,
                    uino=self.alloc_uino())
        if target is not None:
            node.size = len(target)
        self.uinodes[node.uino] = node
        self.nodes[node.ino] = node
        self.pending.append(self.inode_record(node))
        return node

    def place(self, parent: Node, name: bytes, node: Node) -> None:
        self.emit([Rec.PLACE, self.child_path(parent, name), node.uino])

    def unlink(self, parent: Node, name: bytes) -> None:
        self.emit([Rec.UNLINK, self.child_path(parent, name)])

    def rename(self, sp: Node, sname: bytes, dp: Node, dname: bytes, flags: int) -> None:
        """Move a name; whatever moves away from where lower layers put it is
        copied up (metadata only) first, so the journal can name it."""
        for moving in (sp.children[sname], dp.children.get(dname) if flags & RENAME_EXCHANGE
                       else None):
            if moving is not None:
                for n in self._subtree(moving):
                    if n.uino is None:
                        self.record(n)
        self.emit([Rec.RENAME, self.child_path(sp, sname), self.child_path(dp, dname), flags])

    def _subtree(self, node: Node) -> Iterator[Node]:
        stack = [node]
        while stack:
            n = stack.pop()
            yield n
            if n.is_dir:
                stack.extend(n.children.values())

    def take_pending(self) -> list[list]:
        out, self.pending = self.pending, []
        return out

    # -- whole-state views -----------------------------------------------------------

    def snapshot_records(self) -> Iterable[list]:
        """Records that rebuild the current writable layer over the lower
        layers alone: what a compacted journal holds."""
        done: set[int] = set()
        stack: list[tuple[Node, bytes]] = [(self.root, b"")]
        while stack:
            d, dpath = stack.pop()
            for name in sorted(d.low - d.children.keys()) if d.low else ():
                yield [Rec.UNLINK, join(dpath, name)]
            for name, child in d.children.items():
                path = join(dpath, name)
                if child.uino is not None:
                    if child.is_dir and child.low is not None:
                        yield [Rec.BIND, path, child.uino]
                        yield self.inode_record(child)
                    else:
                        if child.uino not in done:
                            done.add(child.uino)
                            yield self.inode_record(child)
                        yield [Rec.PLACE, path, child.uino]
                if child.is_dir:
                    stack.append((child, path))
        if self.root.uino is not None:
            yield [Rec.BIND, b"", self.root.uino]
            yield self.inode_record(self.root)

    def changes(self) -> Iterator[tuple[str, bytes, Node | None]]:
        """The writable layer as Docker's diff sees it: (A|C|D, path, node),
        parents before children. ``A`` for names the lower layers lack, ``C``
        for changed ones (``node.low is None`` on a dir that replaced a lower
        name marks it opaque), ``D`` for deletions."""
        stack: list[tuple[Node, bytes]] = [(self.root, b"")]
        while stack:
            d, dpath = stack.pop()
            low = d.low or ()
            for name in sorted(set(low) - d.children.keys()):
                yield "D", join(dpath, name), None
            for name in sorted(d.children):
                child = d.children[name]
                path = join(dpath, name)
                if child.uino is not None:
                    yield ("C" if name in low else "A"), path, child
                if child.is_dir:
                    stack.append((child, path))
