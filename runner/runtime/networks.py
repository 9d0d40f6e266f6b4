"""User networks on disk: ``ROOT/networks/NAME.json``, one record each
(``runner.runtime.netconf.NetworkRecord``), written whole (mkstemp + rename) so a
crash never leaves half a record. What runs (the shared namespace, bridges,
veths) is ``runner.runtime.netns``'s and lives in the runtime dir, not here.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConflictError, NotFoundError, UsageError
from .netconf import (
    NetworkRecord,
    check_ipam,
    check_name,
    choose_subnet,
    netavark_input,
    next_interface,
)


class Networks:
    """The store's user networks."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "networks"

    def all(self) -> list[NetworkRecord]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            if n.endswith(".json"):
                try:
                    out.append(NetworkRecord.from_dict(json.loads((self.dir / n).read_text())))
                except (OSError, ValueError, TypeError):
                    continue
        return out

    def find(self, ref: str) -> NetworkRecord:
        """By name, full id or a unique id prefix (as Docker)."""
        recs = self.all()
        for r in recs:
            if ref in (r.name, r.id):
                return r
        matches = [r for r in recs if ref and r.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise NotFoundError(f"network {ref} not found")

    def exists(self, ref: str) -> bool:
        try:
            self.find(ref)
        except NotFoundError:
            return False
        return True

    def create(self, name: str, subnet: str | None = None, gateway: str | None = None,
               internal: bool = False, labels: dict | None = None,
               driver: str = "bridge", ip_range: str | None = None,
               aux: dict | None = None, options: dict | None = None) -> NetworkRecord:
        check_name(name)
        if (ip_range or aux) and not subnet:
            raise UsageError("--ip-range and --aux-address need --subnet")
        with self._deciding():
            recs = self.all()
            if any(r.name == name for r in recs):
                raise ConflictError(f"network with name {name} already exists")
            sub, gw = choose_subnet(subnet, gateway, [r.subnet for r in recs])
            rng, aux, options = check_ipam(sub, ip_range, aux or {}, options or {})
            rec = NetworkRecord(name=name, id=secrets.token_hex(32), subnet=sub, gateway=gw,
                                interface=next_interface([r.interface for r in recs]),
                                driver=driver, internal=internal, labels=dict(labels or {}),
                                created=time.time(), ip_range=rng, aux=aux, options=options)
            self._write(rec)
        return rec

    @contextlib.contextmanager
    def _deciding(self) -> Iterator[None]:
        """Held (``networks/.lock``, exclusive) from reading the records to
        writing a new one: creates side by side (several compose projects
        at once) each chose the first free subnet and bridge, the same one,
        and a second create of one name replaced the first's record."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def remove(self, rec: NetworkRecord) -> None:
        try:
            (self.dir / f"{rec.name}.json").unlink()
        except FileNotFoundError:
            pass

    def netavark_inputs(self, cfg) -> dict[str, dict]:
        """netavark's input per user network of a container config (its
        published ports go with its first network, as in Podman)."""
        out = {}
        for i, (name, ep) in enumerate(cfg.networks.items()):
            out[name] = netavark_input(cfg.id, cfg.name, self.find(name), ep["ip"],
                                       ep.get("aliases", []), f"eth{i}",
                                       cfg.ports if i == 0 else [], cfg.dns,
                                       # --mac-address: the first network's, as Docker's
                                       (cfg.process.get("mac_address") or "") if i == 0
                                       else "")
        return out

    def _write(self, rec: NetworkRecord) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(rec.to_dict(), f)
            os.replace(tmp, self.dir / f"{rec.name}.json")
        except BaseException:
            os.unlink(tmp)
            raise
