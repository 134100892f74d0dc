"""Volume content shared by the AWS and Windows halves of the lab.

An EBS volume is modelled as a :class:`VolumeImage`: the files on it and the persistent VSS shadow copies stored
inside it (their diff area lives on the volume). An EBS snapshot freezes a deep copy of the image at the moment
CreateSnapshot(s) returns; a volume created from a snapshot starts from that copy. This is what lets a test
prove that orchestration order is right instead of assuming it.
"""

import copy
import threading
from dataclasses import dataclass, field


@dataclass
class VolumeImage:
    """Files (path -> bytes) on a volume, the shadow copies (shadow id -> frozen files) stored in it, and what its
    disk says about itself (``disk``: partition style, disk GUID, volume GUID, label, size, as written on the disk):
    a volume created from a snapshot carries the identity of the disk the snapshot was taken of. ``security`` holds
    the NTFS metadata of files and folders that have their own (path -> owner, explicit entries, inheritance,
    timestamps: lab.windows.files); ``shadow_security`` the same, frozen with each shadow copy."""

    files: dict = field(default_factory=dict)
    shadows: dict = field(default_factory=dict)
    disk: dict = field(default_factory=dict)
    security: dict = field(default_factory=dict)
    shadow_security: dict = field(default_factory=dict)

    def clone(self):
        return copy.deepcopy(self)


class BlockStore:
    """Thread-safe content store keyed by EBS volume id and snapshot id."""

    def __init__(self):
        self._lock = threading.RLock()
        self._volumes = {}
        self._snapshots = {}

    def volume(self, volume_id):
        """The live image of a volume (created empty on first use); callers mutate it under :meth:`locked`."""
        with self._lock:
            return self._volumes.setdefault(volume_id, VolumeImage())

    def locked(self):
        return self._lock

    def capture_snapshot(self, snapshot_id, volume_id):
        """Freeze the volume's content as the snapshot's point in time."""
        with self._lock:
            self._snapshots[snapshot_id] = self.volume(volume_id).clone()

    def snapshot(self, snapshot_id):
        with self._lock:
            return self._snapshots.get(snapshot_id)

    def copy_snapshot(self, copy_id, snapshot_id):
        """A copied snapshot (CopySnapshot, any Region or account) holds its source's content."""
        with self._lock:
            source = self._snapshots.get(snapshot_id)
            self._snapshots[copy_id] = source.clone() if source else VolumeImage()

    def restore_volume(self, volume_id, snapshot_id):
        """A new volume created from a snapshot starts with the snapshot's content."""
        with self._lock:
            source = self._snapshots.get(snapshot_id)
            self._volumes[volume_id] = source.clone() if source else VolumeImage()

    def reset(self):
        with self._lock:
            self._volumes.clear()
            self._snapshots.clear()
