r"""The storage of a simulated Windows Server: disks, partitions, volumes, and the content of the volumes.

Disks follow EC2: on Nitro every EBS volume is an NVMe disk whose serial is the volume id (``vol`` + 17 hex +
``_00000001.``, FriendlyName ``NVMe Amazon Elastic B``); on Xen an ``AWS PVDISK`` whose serial is the id without
its dash and whose ``Win32_DiskDrive.SCSITargetId`` comes from the device name (``/dev/sda1`` -> 0, ``xvdb`` ..
``xvdz`` -> 1..25). The root disk is MBR with C:, data disks are GPT with a Microsoft Reserved partition and one NTFS
partition at the topology's ``drive`` (a letter such as ``D:`` or a mount folder such as ``C:\Mounts\Data``).
Volumes whose topology entries share a ``span`` (``{"name": "Pool1", "kind": "storage_pool" | "dynamic"}``) form one
Windows volume over several EBS volumes. Volume GUIDs are derived from the EBS volume ids, so they are stable.

The files of every volume live in the lab's BlockStore (:class:`VolumeContent`), so that an EBS snapshot captures
them (lab.windows.files reaches them by Windows path). Paths in a volume image are relative to the volume root, with
backslashes and no drive (``SQLData\shop.mdf``).
On a spanned volume every file lives on ONE member, chosen by a hash of its path, and every member carries
``$LAB\span.json`` with the span's generation: restoring only some members, or members from different points in time,
loses files or shows mismatched generations, as it would corrupt a real spanned volume.

Disks come and go at run time (:meth:`Storage.attach`, :meth:`Storage.detach`: the host follows EC2's attachments).
What a disk says about itself is written on it (``VolumeImage.disk``: partition style, disk GUID or MBR signature,
the volume GUID, label, size), so a volume created from a snapshot brings the identity of the disk it was cloned from.
A disk whose id is that of a disk already online stays offline (``OfflineReason`` 4, signature collision) and
bringing it online re-signs it: new disk and volume GUIDs, no drive letter of its own (FACTS.md "Disk signature
collisions"). The host's MountedDevices (:attr:`Storage.mounted_devices`, volume GUID -> drive letter or folder) gives
a volume that comes back with the same id the same drive letter; a volume it does not know gets the first free letter
from D:. A new disk arrives online unless the host's SAN policy is ``offline_all`` (``OfflineReason`` 1).
"""

import json
import re
import zlib

from .catalog import stable_guid

GIB = 1 << 30
MIB = 1 << 20
MSR_OFFSET = 17408
MSR_SIZE = 16 * MIB - MSR_OFFSET
ROOT_USED_BYTES = 22 * GIB
NVME_UNIQUE_ID = "%s0001Amazon Elastic Block Store              1D0F"
SPAN_HEADER = "$LAB\\span.json"
SYSTEM_VOLUME_INFORMATION = "System Volume Information\\"

# CIM enumerations as ConvertTo-Json writes them (MSFT_Disk, MSFT_PhysicalDisk, MSFT_Volume, Win32 DriveType).
BUS_TYPES = {"SCSI": 1, "Spaces": 16, "NVMe": 17}
PARTITION_STYLES = {"RAW": 0, "MBR": 1, "GPT": 2}
DISK_ONLINE = 53264  # 0xD010
DISK_OFFLINE = 53267  # 0xD013
HEALTHY = 0
DRIVE_TYPE_FIXED = 3
GPT_BASIC_DATA = "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}"
GPT_MSR = "{e3c9e316-0b5c-4db8-817d-f92df00215ae}"
GPT_LDM_METADATA = "{5808c8aa-7e8f-42e0-85d2-e1e90434cfb3}"
GPT_LDM_DATA = "{af9b60a0-1431-4f62-bc68-3311714a69ad}"
MBR_IFS = 7
# MSFT_Disk.OfflineReason: 1 policy, 4 signature collision with another disk that is online.
OFFLINE_POLICY = 1
OFFLINE_COLLISION = 4
SAN_POLICIES = ("online_all", "offline_all")
FREE_LETTERS = "DEFGHIJKLMNOPQRSTUVWXYZ"
BLANK_DISK_SIZE = GIB


def normalize(path):
    """``\\SQLData/x.mdf`` -> ``SQLData\\x.mdf``."""
    return path.replace("/", "\\").lstrip("\\")


def scsi_target_id(device):
    """Xen: ``/dev/sda1`` -> 0, ``xvdb``..``xvdz`` (or ``sdb``..) -> 1..25."""
    match = re.fullmatch(r"(?:/dev/)?(?:xvd|sd)([a-z])\d*", device)
    if match:
        target = ord(match.group(1)) - ord("a")
        if target <= 25:
            return target
    raise ValueError("no SCSI target id for device %r (expected /dev/sda1 or xvdb..xvdz)" % device)


def volume_unique_id(guid):
    return "\\\\?\\Volume{%s}\\" % guid


class VolumeContent:
    """The files of one Windows volume, stored in the images of its member EBS volumes."""

    def __init__(self, blockstore, volume_ids, span_name=None, observer=None):
        if not volume_ids:
            raise ValueError("a volume needs at least one EBS volume")
        self.blockstore = blockstore
        self.volume_ids = list(volume_ids)
        self.span_name = span_name
        # observer(content, path, old bytes) before a file changes: the copy-on-write of the shadow copies on it.
        self.observer = observer

    def _changing(self, path):
        if self.observer is not None:
            old = self.image(self.member_for(path)).files.get(path)
            if old is not None:
                self.observer(self, path, old)

    @property
    def spanned(self):
        return len(self.volume_ids) > 1

    def image(self, index=0):
        return self.blockstore.volume(self.volume_ids[index])

    def member_for(self, path):
        if not self.spanned:
            return 0
        return zlib.crc32(normalize(path).lower().encode("utf-8")) % len(self.volume_ids)

    def initialize_span(self):
        if not self.spanned:
            return
        with self.blockstore.locked():
            for index in range(len(self.volume_ids)):
                self._write_header(index, 0)

    def _write_header(self, index, generation):
        header = {"span": self.span_name, "member": index, "members": self.volume_ids, "generation": generation}
        self.image(index).files[SPAN_HEADER] = json.dumps(header, sort_keys=True).encode("utf-8")

    def _bump_generation(self):
        if not self.spanned:
            return
        generation = max(json.loads(self.image(i).files.get(SPAN_HEADER, b'{"generation": 0}'))["generation"]
                         for i in range(len(self.volume_ids))) + 1
        for index in range(len(self.volume_ids)):
            self._write_header(index, generation)

    def write(self, path, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = normalize(path)
        with self.blockstore.locked():
            self._changing(path)
            self.image(self.member_for(path)).files[path] = bytes(data)
            self._bump_generation()

    def append(self, path, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = normalize(path)
        with self.blockstore.locked():
            self._changing(path)
            files = self.image(self.member_for(path)).files
            files[path] = files.get(path, b"") + bytes(data)
            self._bump_generation()

    def read(self, path):
        path = normalize(path)
        with self.blockstore.locked():
            return self.image(self.member_for(path)).files.get(path)

    def delete(self, path):
        path = normalize(path)
        with self.blockstore.locked():
            self._changing(path)
            self.image(self.member_for(path)).files.pop(path, None)
            self.image(0).security.pop(path.lower(), None)
            self._bump_generation()

    def security(self):
        """The NTFS metadata of the volume's files and folders that have their own (lower-case path -> record)."""
        with self.blockstore.locked():
            return {path: dict(record) for path, record in self.image(0).security.items()}

    def set_security(self, path, record):
        """A file's or folder's own metadata (lab.windows.files.FileSystem.set_info), kept on the first member."""
        with self.blockstore.locked():
            self.image(0).security[normalize(path).rstrip("\\").lower()] = dict(record, path=normalize(path).rstrip("\\"))

    def files(self, include_system=False):
        """Every file of the volume (path -> bytes), merged over the members; the lab's own headers left out."""
        merged = {}
        with self.blockstore.locked():
            for index in range(len(self.volume_ids)):
                for path, data in self.image(index).files.items():
                    if path == SPAN_HEADER:
                        continue
                    if not include_system and path.startswith(SYSTEM_VOLUME_INFORMATION):
                        continue
                    merged[path] = data
        return merged

    def used_bytes(self):
        with self.blockstore.locked():
            return sum(len(data) for index in range(len(self.volume_ids)) for data in self.image(index).files.values())


class Disk:  # pylint: disable=too-many-instance-attributes
    """A disk as Get-Disk, Get-PhysicalDisk and Win32_DiskDrive show it."""

    def __init__(self, number, size, style, volume_id=None, device=None):
        self.number = number
        self.size = size
        self.style = style
        self.volume_id = volume_id
        self.device = device
        self.partition_style = "GPT"
        self.is_boot = False
        self.offline = False
        self.virtual_name = None
        self.pool = None
        self.dynamic = False
        self.disk_guid = None
        self.offline_reason = None
        self.read_only = False

    @property
    def mbr_signature(self):
        """The 4-byte MBR signature (offset 0x1B8) derived from the disk's id, as Get-Disk's ``Signature``."""
        return int(self.disk_guid.replace("-", "")[:8], 16) if self.disk_guid and self.partition_style == "MBR" else None

    @property
    def hex_id(self):
        return self.volume_id.replace("-", "") if self.volume_id else None

    @property
    def serial(self):
        if self.virtual_name:
            return stable_guid("virtual-disk", self.virtual_name, self.pool).replace("-", "")[:20].upper()
        if self.style == "xen":
            return self.hex_id
        return "%s_00000001." % self.hex_id

    @property
    def friendly_name(self):
        if self.virtual_name:
            return self.virtual_name
        return "AWS PVDISK" if self.style == "xen" else "NVMe Amazon Elastic B"

    @property
    def manufacturer(self):
        if self.virtual_name:
            return "Msft"
        return "AWS" if self.style == "xen" else "NVMe"

    @property
    def model(self):
        if self.virtual_name:
            return "Storage Space"
        return "PVDISK" if self.style == "xen" else "Amazon Elastic Block Store"

    @property
    def bus_type(self):
        if self.virtual_name:
            return "Spaces"
        return "SCSI" if self.style == "xen" else "NVMe"

    @property
    def unique_id(self):
        if self.virtual_name:
            return stable_guid("virtual-disk-uid", self.virtual_name).replace("-", "").upper()
        if self.style == "xen":
            return "SCSI\\DISK&VEN_AWS&PROD_PVDISK\\000%d00" % self.scsi_target
        return NVME_UNIQUE_ID % self.hex_id

    @property
    def scsi_target(self):
        return scsi_target_id(self.device) if self.device else 0

    def location(self):
        if self.virtual_name:
            return ""
        if self.style == "xen":
            return "PCI Slot 3 : Adapter 0 : Port 0 : Target %d : LUN 0" % self.scsi_target
        return "PCI Slot %d : Bus 0 : Device %d : Function 0 : Adapter %d : Port 0 : Target 0 : LUN 0" % (
            self.number + 4, self.number + 4, self.number)

    def describe(self):
        """Get-Disk, with the properties the agent selects (enumerations as numbers, as ConvertTo-Json writes them)."""
        return {
            "Number": self.number,
            "SerialNumber": self.serial,
            "AdapterSerialNumber": None if self.style == "xen" or self.virtual_name else self.serial,
            "FriendlyName": self.friendly_name,
            "Manufacturer": self.manufacturer,
            "Model": self.model,
            "BusType": BUS_TYPES[self.bus_type],
            "PartitionStyle": PARTITION_STYLES[self.partition_style],
            "OperationalStatus": [DISK_OFFLINE if self.offline else DISK_ONLINE],
            "HealthStatus": HEALTHY,
            "IsOffline": self.offline,
            "OfflineReason": (self.offline_reason or OFFLINE_POLICY) if self.offline else None,
            "IsReadOnly": self.read_only,
            "Guid": "{%s}" % self.disk_guid if self.disk_guid and self.partition_style == "GPT" else None,
            "Signature": self.mbr_signature,
            "IsBoot": self.is_boot,
            "IsSystem": self.is_boot,
            "IsClustered": False,
            "Size": self.size,
            "Location": self.location(),
            "Path": "\\\\?\\%s#{53f56307-b6bf-11d0-94f2-00a0c91efb8b}" % self.describe_drive()["PNPDeviceID"].replace("\\", "#").lower(),
            "UniqueId": self.unique_id,
        }

    def describe_physical(self):
        """Get-PhysicalDisk of a storage pool member (hidden from Get-Disk)."""
        return {
            "DeviceId": str(self.number),
            "SerialNumber": self.serial,
            "AdapterSerialNumber": None if self.style == "xen" else self.serial,
            "FriendlyName": self.friendly_name,
            "Model": self.model,
            "BusType": BUS_TYPES[self.bus_type],
            "Size": self.size,
            "UniqueId": self.unique_id,
        }

    def describe_drive(self):
        """Win32_DiskDrive."""
        if self.virtual_name:
            model, pnp = "Microsoft Storage Space Device", "STORAGE\\DISK\\{%s}" % stable_guid("pnp", self.virtual_name)
            target, port = 0, 0
        elif self.style == "xen":
            model = "AWS PVDISK SCSI Disk Device"
            pnp = "SCSI\\DISK&VEN_AWS&PROD_PVDISK\\1&1C121344&0&0000%02X" % self.scsi_target
            target, port = self.scsi_target, 0
        else:
            model = "NVMe Amazon Elastic B"
            pnp = "SCSI\\DISK&VEN_NVME&PROD_AMAZON_ELASTIC_B\\5&%08X&0&000000" % (self.number + 0x1A2B3C00)
            target, port = 0, self.number
        return {
            "Index": self.number,
            "DeviceID": "\\\\.\\PHYSICALDRIVE%d" % self.number,
            "Caption": model,
            "Model": model,
            "SerialNumber": self.serial,
            "InterfaceType": "SCSI",
            "SCSIPort": port,
            "SCSIBus": 0,
            "SCSITargetId": target,
            "SCSILogicalUnit": 0,
            "PNPDeviceID": pnp,
            "Size": self.size,
        }


class WindowsVolume:  # pylint: disable=too-many-instance-attributes
    """An NTFS volume as Get-Volume sees it, backed by one or more EBS volumes (its content)."""

    def __init__(self, guid, size, label, content, drive=None, is_root=False, span_kind=None):
        self.guid = guid
        self.size = size
        self.label = label or ""
        self.content = content
        self.drive_letter = None
        self.mount_paths = []
        self.is_root = is_root
        self.span_kind = span_kind
        self.disk_numbers = []
        if drive:
            if len(drive) == 2 and drive[1] == ":":
                self.drive_letter = drive[0].upper()
            else:
                self.mount_paths.append(drive.rstrip("\\") + "\\")

    @property
    def unique_id(self):
        return volume_unique_id(self.guid)

    @property
    def volume_ids(self):
        return list(self.content.volume_ids)

    @property
    def display_name(self):
        """What diskshadow prints in brackets: ``D:\\`` or the mount folder."""
        if self.drive_letter:
            return "%s:\\" % self.drive_letter
        return self.mount_paths[0] if self.mount_paths else self.unique_id

    def access_paths(self):
        paths = ["%s:\\" % self.drive_letter] if self.drive_letter else []
        return paths + list(self.mount_paths) + [self.unique_id]

    def size_remaining(self):
        used = self.content.used_bytes() + (ROOT_USED_BYTES if self.is_root else 64 * MIB)
        return max(0, self.size - used)

    def describe(self):
        """Get-Volume, with the properties the agent selects."""
        return {
            "UniqueId": self.unique_id,
            "Path": self.unique_id,
            "DriveLetter": self.drive_letter,
            "FileSystem": "NTFS",
            "FileSystemLabel": self.label,
            "DriveType": DRIVE_TYPE_FIXED,
            "HealthStatus": HEALTHY,
            "Size": self.size,
            "SizeRemaining": self.size_remaining(),
        }

    def summary(self):
        return {"unique_id": self.unique_id, "drive_letter": self.drive_letter, "mount_paths": list(self.mount_paths),
                "label": self.label, "volume_ids": self.volume_ids, "span": self.span_kind}


def _partition(disk, number, offset, size, partition_type, volume, gpt_type=None, mbr_type=None):  # pylint: disable=too-many-arguments
    """Get-Partition, with the properties the agent selects."""
    return {
        "DiskNumber": disk.number,
        "PartitionNumber": number,
        "DriveLetter": volume.drive_letter if volume else None,
        "AccessPaths": volume.access_paths() if volume else [],
        "Offset": offset,
        "Size": size,
        "Type": partition_type,
        "GptType": gpt_type,
        "MbrType": mbr_type,
        "IsBoot": bool(volume and volume.is_root),
        "IsSystem": bool(volume and volume.is_root),
        "IsHidden": partition_type == "Reserved",
        "IsOffline": False,
        "IsReadOnly": False,
    }


class Storage:  # pylint: disable=too-many-instance-attributes
    """The disks, partitions, volumes and storage pools of one host, built from its seeded EBS volumes; disks of
    EBS volumes attached later come and go with :meth:`attach` and :meth:`detach` (callers hold the host's lock)."""

    def __init__(self, blockstore, style, volumes, root_device, san_policy="online_all"):
        if san_policy not in SAN_POLICIES:
            raise ValueError("san_policy must be one of %s, not %r" % (", ".join(SAN_POLICIES), san_policy))
        self.blockstore = blockstore
        self.style = style
        self.san_policy = san_policy
        self.disks = []
        self.partitions = []
        self.volumes = []
        self.storage_pools = []
        self.mounted_devices = {}
        # Set by the host's shadow copies: called before a file of a volume changes (copy-on-write).
        self.content_observer = None
        spans = {}
        for index, entry in enumerate(volumes):
            disk = Disk(index, int(entry["size"]) * GIB, style, entry["volume_id"], entry["device"])
            disk.offline = bool(entry.get("offline"))
            self.disks.append(disk)
            span = entry.get("span")
            if span:
                spans.setdefault(span["name"], {"kind": span.get("kind", "storage_pool"), "entries": []})["entries"].append((disk, entry))
                continue
            if entry["device"] == root_device:
                self._add_root(disk, entry)
            elif entry.get("drive") and not disk.offline:
                self._add_data_volume(disk, entry)
            else:
                disk.partition_style = "RAW"
        for name, span in spans.items():
            self._add_span(name, span["kind"], span["entries"])

    def _content(self, volume_id):
        return VolumeContent(self.blockstore, [volume_id], observer=self._observe)

    def _observe(self, content, path, old):
        if self.content_observer is not None:
            self.content_observer(content, path, old)

    def _stamp(self, disk, volume, layout):
        """Write the disk's identity on it (what a snapshot of it, and every volume restored from that, carries)."""
        disk.disk_guid = stable_guid("disk", disk.volume_id)
        self.blockstore.volume(disk.volume_id).disk = {
            "partition_style": disk.partition_style, "disk_guid": disk.disk_guid, "volume_guid": volume.guid,
            "label": volume.label, "size": disk.size, "layout": layout}
        self.mounted_devices[volume.guid] = volume.drive_letter + ":" if volume.drive_letter else volume.mount_paths[0]

    def _add_root(self, disk, entry):
        disk.partition_style = "MBR"
        disk.is_boot = True
        size = disk.size - MIB
        content = self._content(disk.volume_id)
        volume = WindowsVolume(stable_guid("volume", disk.volume_id), size, entry.get("label", ""), content,
                               entry.get("drive", "C:"), is_root=True)
        volume.disk_numbers = [disk.number]
        self.volumes.append(volume)
        self.partitions.append(_partition(disk, 1, MIB, size, "IFS", volume, mbr_type=MBR_IFS))
        self._stamp(disk, volume, "root")

    def _add_data_volume(self, disk, entry):
        volume = WindowsVolume(stable_guid("volume", disk.volume_id), disk.size - 16 * MIB - MIB, entry.get("label", ""),
                               self._content(disk.volume_id), entry["drive"])
        self._mount(disk, volume)
        self._stamp(disk, volume, "data")

    def _mount(self, disk, volume):
        """The volume on its disk's partitions (GPT: Microsoft Reserved, then the data; MBR: one IFS partition)."""
        volume.disk_numbers = [disk.number]
        self.volumes.append(volume)
        self._partitions_of(disk, volume)

    def _partitions_of(self, disk, volume):
        self.partitions = [p for p in self.partitions if p["DiskNumber"] != disk.number]
        if disk.partition_style == "MBR":
            self.partitions.append(_partition(disk, 1, MIB, disk.size - MIB, "IFS", volume, mbr_type=MBR_IFS))
        elif disk.partition_style == "GPT":
            self.partitions.append(_partition(disk, 1, MSR_OFFSET, MSR_SIZE, "Reserved", None, GPT_MSR))
            self.partitions.append(_partition(disk, 2, 16 * MIB, disk.size - 16 * MIB - MIB, "Basic", volume, GPT_BASIC_DATA))

    # ------------------------------------------------------------------------------------------ disks at run time
    def disk_of(self, volume_id):
        return next((disk for disk in self.disks if disk.volume_id == volume_id and not disk.virtual_name), None)

    def find_volume_of(self, volume_id):
        """The Windows volume on the disk of an EBS volume, or None."""
        disk = self.disk_of(volume_id)
        return self.volume_on(disk) if disk is not None else None

    def disk_by_number(self, number):
        disk = next((disk for disk in self.disks if disk.number == number), None)
        if disk is None:
            raise KeyError("no disk %s" % number)
        return disk

    def volume_on(self, disk):
        return next((volume for volume in self.volumes if disk.number in volume.disk_numbers), None)

    def _colliding_disk(self, disk):
        return next((other for other in self.disks if other is not disk and not other.offline and other.disk_guid
                     and other.disk_guid == disk.disk_guid), None)

    def attach(self, volume_id, device):
        """The disk of an EBS volume that EC2 attached (None when the host has it already)."""
        if self.disk_of(volume_id) is not None:
            return None
        used = {disk.number for disk in self.disks}
        number = next(n for n in range(len(self.disks) + 1) if n not in used)
        identity = dict(self.blockstore.volume(volume_id).disk)
        disk = Disk(number, int(identity.get("size") or BLANK_DISK_SIZE), self.style, volume_id, device)
        self.disks.append(disk)
        if not identity:
            disk.partition_style = "RAW"
            disk.offline = self.san_policy == "offline_all"
            return disk
        disk.partition_style = identity["partition_style"]
        disk.disk_guid = identity["disk_guid"]
        if self._colliding_disk(disk) is not None:
            disk.offline, disk.offline_reason = True, OFFLINE_COLLISION
        elif self.san_policy == "offline_all":
            disk.offline, disk.offline_reason = True, OFFLINE_POLICY
        else:
            self._bring_up(disk)
        return disk

    def detach(self, volume_id):
        """EC2 took the volume away: its disk, partitions and volume are gone (None when the host had no such disk)."""
        disk = self.disk_of(volume_id)
        if disk is None:
            return None
        self._take_down(disk)
        self.disks.remove(disk)
        return disk

    def set_offline(self, disk):
        disk.offline, disk.offline_reason = True, OFFLINE_POLICY
        self._take_down(disk)

    def set_online(self, disk, read_only=False):
        """``Set-Disk -IsOffline $false``: a disk that collides with an online disk is re-signed on the way.
        Returns True when it was re-signed."""
        resigned = False
        if disk.offline and disk.disk_guid and self._colliding_disk(disk) is not None:
            image = self.blockstore.volume(disk.volume_id)
            old = dict(image.disk)
            disk.disk_guid = stable_guid("resigned-disk", disk.volume_id, old["disk_guid"])
            image.disk = dict(old, disk_guid=disk.disk_guid,
                              volume_guid=stable_guid("resigned-volume", disk.volume_id, old["volume_guid"]),
                              origin_volume_guid=old.get("origin_volume_guid", old["volume_guid"]))
            resigned = True
        disk.offline, disk.offline_reason, disk.read_only = False, None, bool(read_only)
        if self.volume_on(disk) is None:
            self._bring_up(disk)
        return resigned

    def _take_down(self, disk):
        volume = self.volume_on(disk)
        if volume is not None:
            self.volumes.remove(volume)
        self.partitions = [p for p in self.partitions if p["DiskNumber"] != disk.number]

    def _bring_up(self, disk):
        identity = self.blockstore.volume(disk.volume_id).disk
        if not identity or disk.partition_style == "RAW":
            return None
        guid = identity["volume_guid"]
        volume = WindowsVolume(guid, disk.size - 17 * MIB, identity.get("label", ""), self._content(disk.volume_id))
        remembered = self.mounted_devices.get(guid)
        if remembered and len(remembered) == 2 and remembered[0] not in self._letters_in_use():
            volume.drive_letter = remembered[0]
        elif remembered and len(remembered) > 2:
            volume.mount_paths.append(remembered.rstrip("\\") + "\\")
        else:
            volume.drive_letter = next((letter for letter in FREE_LETTERS if letter not in self._letters_in_use()), None)
            if volume.drive_letter:
                self.mounted_devices[guid] = volume.drive_letter + ":"
        self._mount(disk, volume)
        return volume

    def _letters_in_use(self):
        return {volume.drive_letter for volume in self.volumes if volume.drive_letter}

    def set_drive_letter(self, volume, letter):
        """``Set-Partition -NewDriveLetter``: refused when another volume has that letter."""
        letter = letter.rstrip(":\\").upper()
        if letter in self._letters_in_use() and volume.drive_letter != letter:
            raise ValueError("the drive letter %s: is in use" % letter)
        volume.drive_letter = letter
        self.mounted_devices[volume.guid] = letter + ":"
        self._partitions_of(self.disk_by_number(volume.disk_numbers[0]), volume)

    def add_access_path(self, volume, path):
        """``Add-PartitionAccessPath``: a mount folder on another volume."""
        path = path.rstrip("\\") + "\\"
        if path.lower() not in (p.lower() for p in volume.mount_paths):
            volume.mount_paths.append(path)
        self._partitions_of(self.disk_by_number(volume.disk_numbers[0]), volume)

    def _add_span(self, name, kind, entries):
        if kind not in ("storage_pool", "dynamic"):
            raise ValueError("span kind must be storage_pool or dynamic, not %r" % kind)
        disks = [disk for disk, dummy in entries]
        first = entries[0][1]
        volume_ids = [disk.volume_id for disk in disks]
        content = VolumeContent(self.blockstore, volume_ids, span_name=name, observer=self._observe)
        total = sum(disk.size for disk in disks)
        guid = stable_guid("span", name, *volume_ids)
        if kind == "dynamic":
            volume = WindowsVolume(guid, total - len(disks) * 2 * MIB, first.get("label", name), content,
                                   first.get("drive"), span_kind=kind)
            volume.disk_numbers = [disk.number for disk in disks]
            for disk in disks:
                disk.dynamic = True
                self.partitions.append(_partition(disk, 1, MSR_OFFSET, MSR_SIZE, "Reserved", None, GPT_MSR))
                self.partitions.append(_partition(disk, 2, 16 * MIB, MIB, "Unknown", None, GPT_LDM_METADATA))
                self.partitions.append(_partition(disk, 3, 17 * MIB, disk.size - 18 * MIB, "Unknown", None, GPT_LDM_DATA))
        else:
            for disk in disks:
                disk.pool = name
                disk.partition_style = "RAW"
            virtual_name = first.get("virtual_disk", "%s-VDisk" % name)
            virtual = Disk(len(self.disks), total - len(disks) * 256 * MIB, self.style)
            virtual.virtual_name = virtual_name
            virtual.pool = name
            self.disks.append(virtual)
            size = virtual.size - 16 * MIB - MIB
            volume = WindowsVolume(guid, size, first.get("label", name), content, first.get("drive"), span_kind=kind)
            volume.disk_numbers = [virtual.number]
            self.partitions.append(_partition(virtual, 1, MSR_OFFSET, MSR_SIZE, "Reserved", None, GPT_MSR))
            self.partitions.append(_partition(virtual, 2, 16 * MIB, size, "Basic", volume, GPT_BASIC_DATA))
            self.storage_pools.append({
                "FriendlyName": name,
                "UniqueId": "{%s}" % stable_guid("pool", name, *volume_ids),
                "PhysicalDiskNumbers": [disk.number for disk in disks],
                "PhysicalDisks": [disk.describe_physical() for disk in disks],
                "VirtualDisks": [virtual_name],
                "VirtualDiskNumbers": [virtual.number],
                "VolumeUniqueIds": [volume.unique_id],
            })
        self.volumes.append(volume)

    def find_volume(self, path):
        """The volume holding ``path`` (``D:``, ``D:\\x``, ``C:\\Mounts\\Data\\x`` or ``\\\\?\\Volume{..}\\``), or None."""
        best = None
        best_length = -1
        lowered = path.lower().replace("/", "\\")
        if len(lowered) == 2 and lowered[1] == ":":
            lowered += "\\"
        for volume in self.volumes:
            for access in volume.access_paths():
                candidate = access.lower()
                if (lowered.startswith(candidate) or lowered + "\\" == candidate) and len(candidate) > best_length:
                    best, best_length = volume, len(candidate)
        return best

    def volume_by_guid(self, guid):
        for volume in self.volumes:
            if volume.guid == guid:
                return volume
        raise KeyError(guid)

    def visible_disks(self):
        """Get-Disk: storage pool members are hidden, the pool's virtual disk is shown."""
        return [disk for disk in self.disks if disk.pool is None or disk.virtual_name]

    def dynamic_disks(self):
        return [{"DiskNumber": disk.number,
                 "VolumeUniqueIds": [v.unique_id for v in self.volumes if disk.number in v.disk_numbers]}
                for disk in self.disks if disk.dynamic]
