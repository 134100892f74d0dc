"""The shadow copies of a simulated Windows Server, their shadow storage (diff areas) and their exposures.

Every NTFS volume keeps its diff area on itself (MaxSpace 10 %) unless set otherwise (``set_storage``). A shadow
copy's frozen files and its Win32_ShadowCopy record live in the **diff volume's** image (``System Volume
Information\\{id}{3808876b-...}``), so an EBS snapshot of that volume carries them (DESIGN.md section 1) and a
volume restored from it finds them. One shadow copy set is created at a time (``creating_set``).

A restored volume's shadow copies are listed once its disk is online read-write (the volume exists on the host, and
not on a read-only disk); after a re-sign they are listed under the volume's new GUID (an inference: no source says
how VSS names them then). Every first change of a file a shadow copy froze copies the old bytes into that shadow's diff
area (``DiffBytes`` in its record); when the shadows stored on a volume need more than its association's MaxSpace, VSS
deletes the oldest ones until they fit (FACTS.md: writes before a revert can delete the shadow copy).
"""

import datetime
import json
import uuid

from . import catalog
from .storage import MIB, SYSTEM_VOLUME_INFORMATION, normalize, volume_unique_id

# Initial diff area a shadow copy needs on its storage volume (vssadmin: a MaxSize below 320 MB is refused).
DIFF_AREA_MINIMUM = 320 * MIB


def wmi_datetime(moment):
    """A WMI DMTF datetime in UTC: ``20240531130959.884752+000``."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y%m%d%H%M%S.%f") + "+000"


def diff_area_path(shadow_id):
    return SYSTEM_VOLUME_INFORMATION + shadow_id + catalog.DIFF_AREA_SUFFIX


class ShadowCopies:  # pylint: disable=too-many-instance-attributes
    """The shadow copies of one host (``server.shadows``); thread-safe under the host's lock."""

    def __init__(self, server, configured_storage=None):
        self.server = server
        self.counter = 0
        self.exposures = {}
        self.creating_set = None
        self.reverting = False
        self.storage_associations = {}
        for volume in server.storage.volumes:
            self.association(volume)
        for source, target in (configured_storage or {}).items():
            self.set_storage(source, target)
        server.storage.content_observer = self.copy_on_write

    def association(self, volume):
        """The volume's shadow storage association; a volume that has none keeps its diff area on itself."""
        return self.storage_associations.setdefault(volume.guid, {"diff": volume.guid, "max": volume.size // 10})

    @property
    def _blockstore(self):
        return self.server.blockstore

    def set_storage(self, volume, storage_volume, max_space=None):
        """Put ``volume``'s diff area on ``storage_volume`` (both as drive, mount folder or volume name)."""
        storage = self.server.storage
        with self.server.lock:
            source = storage.find_volume(volume)
            target = storage.find_volume(storage_volume)
            if source is None or target is None:
                raise ValueError("%s: no such volume %r or %r" % (self.server.name, volume, storage_volume))
            self.storage_associations[source.guid] = {
                "diff": target.guid, "max": max_space if max_space is not None else target.size // 10}

    def storage_rows(self):
        """Win32_ShadowStorage: one association per volume (its diff volume, used and maximum space)."""
        rows = []
        for volume in self.server.storage.volumes:
            association = self.association(volume)
            used = self._diff_area_bytes(volume.guid)
            rows.append({"Volume": volume.unique_id, "DiffVolume": volume_unique_id(association["diff"]),
                         "UsedSpace": used, "AllocatedSpace": used, "MaxSpace": association["max"]})
        return rows

    def _diff_area_bytes(self, guid):
        used = 0
        for shadow in self.list():
            volume_guid = shadow["VolumeName"].split("{", 1)[1].split("}", 1)[0]
            if self.storage_associations.get(volume_guid, {}).get("diff") == guid:
                frozen = self.content(shadow["ID"]) or {}
                used += sum(len(data) for data in frozen.values())
        return used

    def diff_area_problem(self, volumes):
        """Why the shadow storage of these volumes cannot take a new shadow copy, or None: the storage volume's
        free space and the association's MaxSpace, less what its shadows already use, must hold the initial diff
        area (and at least the frozen copy of the volume's files, which is what the lab stores)."""
        storage = self.server.storage
        with self.server.lock, self._blockstore.locked():
            needed = {}
            for volume in volumes:
                association = self.association(volume)
                frozen = sum(len(data) for data in volume.content.files().values())
                needed.setdefault(association["diff"], []).append((volume, frozen))
            for guid, entries in needed.items():
                diff_volume = storage.volume_by_guid(guid)
                used = self._diff_area_bytes(guid)
                wanted = sum(max(DIFF_AREA_MINIMUM, frozen) for dummy, frozen in entries)
                limits = [diff_volume.size_remaining()]
                for volume, dummy in entries:
                    limits.append(self.association(volume)["max"] - used)
                if min(limits) < wanted:
                    return "the shadow storage on %s cannot hold the diff area of %s (needs %d bytes, %d available)" % (
                        diff_volume.display_name, ", ".join(v.display_name for v, dummy in entries), wanted, max(0, min(limits)))
        return None

    def create_set(self, volumes, *, persistent=True, no_writers=False, client_accessible=False):
        """Shadow copies of ``volumes`` at one point in time; the diff areas (frozen content) go to each volume's
        shadow storage volume, inside its EBS image. Returns ``{"set_id", "shadows": [{"id", "volume"}]}``."""
        storage = self.server.storage
        with self.server.lock, self._blockstore.locked():
            targets = []
            for name in volumes:
                volume = storage.find_volume(name)
                if volume is None:
                    raise ValueError("%s: no volume %r" % (self.server.name, name))
                if volume not in targets:
                    targets.append(volume)
            set_id = "{%s}" % uuid.uuid4()
            now = self.server.clock()
            created = []
            for volume in targets:
                self.counter += 1
                shadow_id = "{%s}" % uuid.uuid4()
                attributes = []
                if persistent:
                    attributes += ["No_Auto_Release", "Persistent"]
                if client_accessible:
                    attributes.append("Client_accessible")
                if no_writers:
                    attributes.append("No_Writers")
                attributes.append("Differential")
                record = {
                    "ID": shadow_id,
                    "SetID": set_id,
                    "VolumeName": volume.unique_id,
                    "DeviceObject": "\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy%d" % self.counter,
                    "InstallDate": wmi_datetime(now),
                    "ClientAccessible": client_accessible,
                    "Persistent": persistent,
                    "NoAutoRelease": persistent,
                    "NoWriters": no_writers,
                    "ProviderID": catalog.SYSTEM_PROVIDER_ID,
                    "State": 12,
                    "Count": len(targets),
                    "OriginatingMachine": self.server.hostname,
                    "ServiceMachine": self.server.hostname,
                    "Attributes": attributes,
                }
                diff_volume = storage.volume_by_guid(self.association(volume)["diff"])
                image = diff_volume.content.image(0)
                image.shadows[shadow_id] = volume.content.files()
                image.shadow_security[shadow_id] = volume.content.security()
                image.files[diff_area_path(shadow_id)] = json.dumps(record, sort_keys=True).encode("utf-8")
                created.append({"id": shadow_id, "volume": volume.unique_id})
            return {"set_id": set_id, "shadows": created}

    def _records(self, volume):
        """The shadow copy records stored on a volume, the shadows of the volume itself under its current name."""
        image = volume.content.image(0)
        moved = {image.disk.get("origin_volume_guid"), image.disk.get("volume_guid")} - {None, volume.guid}
        for path, data in sorted(image.files.items()):
            if path.startswith(SYSTEM_VOLUME_INFORMATION) and path.endswith(catalog.DIFF_AREA_SUFFIX):
                record = json.loads(data)
                if record["ID"] in image.shadows:
                    if record["VolumeName"].split("{", 1)[1].split("}", 1)[0] in moved:
                        record["VolumeName"] = volume.unique_id
                    yield path, record

    def list(self):
        """Win32_ShadowCopy: every shadow copy whose diff area is on one of this host's volumes that are online
        read-write."""
        shadows = []
        storage = self.server.storage
        with self._blockstore.locked():
            for volume in storage.volumes:
                if any(disk.read_only for disk in storage.disks if disk.number in volume.disk_numbers):
                    continue
                shadows.extend(record for dummy, record in self._records(volume))
        shadows.sort(key=lambda record: (record["InstallDate"], record["DeviceObject"]))
        return shadows

    def record(self, shadow_id):
        for record in self.list():
            if record["ID"].lower() == shadow_id.lower():
                return record
        return None

    def content(self, shadow_id):
        """The frozen files of a shadow copy (path -> bytes), or None."""
        with self._blockstore.locked():
            for volume in self.server.storage.volumes:
                frozen = volume.content.image(0).shadows.get(shadow_id)
                if frozen is not None:
                    return dict(frozen)
        return None

    def security(self, shadow_id):
        """The NTFS metadata frozen with a shadow copy (lower-case path -> record), or None."""
        with self._blockstore.locked():
            for volume in self.server.storage.volumes:
                image = volume.content.image(0)
                if shadow_id in image.shadows:
                    return {path: dict(record) for path, record in image.shadow_security.get(shadow_id, {}).items()}
        return None

    def delete(self, shadow_id):
        """Delete a shadow copy and its exposure; True if it existed."""
        with self.server.lock, self._blockstore.locked():
            for name in [n for n, s in self.exposures.items() if s.lower() == shadow_id.lower()]:
                del self.exposures[name]
            for volume in self.server.storage.volumes:
                image = volume.content.image(0)
                if shadow_id in image.shadows:
                    del image.shadows[shadow_id]
                    image.shadow_security.pop(shadow_id, None)
                    image.files.pop(diff_area_path(shadow_id), None)
                    return True
        return False

    def copy_on_write(self, content, path, old):
        """A file of ``content`` is about to change: each shadow of that volume stored on it that still shares the
        old bytes copies them into its diff area; past MaxSpace the oldest shadows are deleted."""
        volume = next((v for v in self.server.storage.volumes if v.content.volume_ids == content.volume_ids), None)
        if volume is None or content.spanned or self.reverting:
            return
        image = content.image(0)
        grown = False
        for diff_path, record in list(self._records(volume)):
            frozen = image.shadows.get(record["ID"], {})
            if record["VolumeName"] == volume.unique_id and frozen.get(path) == old and path not in record.get("Copied", []):
                stored = json.loads(image.files[diff_path])
                stored["DiffBytes"] = stored.get("DiffBytes", 0) + len(old)
                stored["Copied"] = stored.get("Copied", []) + [path]
                image.files[diff_path] = json.dumps(stored, sort_keys=True).encode("utf-8")
                grown = True
        if grown:
            self._trim(volume)

    def _trim(self, volume):
        image = volume.content.image(0)
        records = sorted((record for dummy, record in self._records(volume)), key=lambda r: r["InstallDate"])
        maximum = self.association(volume)["max"]
        while records and sum(r.get("DiffBytes", 0) for r in records) > maximum:
            oldest = records.pop(0)
            image.shadows.pop(oldest["ID"], None)
            image.shadow_security.pop(oldest["ID"], None)
            image.files.pop(diff_area_path(oldest["ID"]), None)
            self.server.vss_events.record("shadow_deleted", shadow_id=oldest["ID"], reason="diff area full")

    def exposed_path(self, path):
        """``(shadow id, path relative to the exposure)`` for a path under an exposed shadow copy, else None."""
        lowered = path.replace("/", "\\")
        with self.server.lock:
            for name, shadow_id in self.exposures.items():
                if lowered.lower().startswith(name.lower()):
                    return shadow_id, lowered[len(name):]
        return None

    def exposure_of(self, shadow_id):
        with self.server.lock:
            for name, exposed in self.exposures.items():
                if exposed.lower() == shadow_id.lower():
                    return name
        return None

    def revert_problem(self, record):
        """Why no tool can revert this shadow copy on this host, as ``(VSS symbol, text)``, or None: revert is for
        Windows Server only and never for the system volume (it cannot be dismounted while Windows runs from it)."""
        volume = self.server.storage.find_volume(record["VolumeName"])
        if not self.server.os.is_server:
            return "VSS_E_UNSUPPORTED_CONTEXT", "Reverting a shadow copy needs Windows Server."
        if volume is None or volume.is_root:
            return "VSS_E_VOLUME_NOT_SUPPORTED", "The system volume cannot be reverted while Windows runs from it."
        return None

    def revert(self, shadow_id):
        """The volume's files become the shadow's frozen files; that shadow and the later ones of the volume go."""
        record = self.record(shadow_id)
        if record is None:
            raise KeyError(shadow_id)
        frozen = self.content(shadow_id)
        frozen_security = self.security(shadow_id)
        volume = self.server.storage.find_volume(record["VolumeName"])
        with self.server.lock, self._blockstore.locked():
            self.reverting = True
            try:
                for path in list(volume.content.files()):
                    volume.content.delete(path)
                for path, data in frozen.items():
                    volume.content.write(normalize(path), data)
                volume.content.image(0).security = frozen_security
            finally:
                self.reverting = False
            later = [r["ID"] for r in self.list()
                     if r["VolumeName"] == record["VolumeName"] and r["InstallDate"] >= record["InstallDate"]]
            for other in later:
                self.delete(other)
        return later
